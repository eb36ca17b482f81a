// The pages behind the links in mfagate's e-mails: read the key from the address, post it (and a
// new password, where one is asked for) to the API on a click, and say what happened. A click,
// not a post on load: mail scanners open links, and must not spend the key.
(function () {
  "use strict";
  var form = document.getElementById("link-form");
  var result = document.getElementById("result");
  var key = new URLSearchParams(window.location.search).get("key");
  function say(text, failed) {
    result.textContent = text;
    result.className = failed ? "failed" : "";
  }
  if (!key) {
    form.hidden = true;
    say("This link has no key. Open the link from the e-mail again, whole.", true);
    return;
  }
  // The key should not stay in the address bar, the history or a copied URL.
  window.history.replaceState(null, "", window.location.pathname);
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var body = { key: key };
    var field = form.dataset.fields;
    if (field) {
      var password = form.elements.password.value;
      if (password !== form.elements.again.value) {
        say("The two passwords differ; type the same one twice.", true);
        return;
      }
      body[field] = password;
    }
    var button = form.querySelector("button");
    button.disabled = true;
    say("One moment…", false);
    fetch(form.dataset.api, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(body)
    })
      .then(function (response) {
        return response.json().then(function (json) {
          return { ok: response.ok, json: json };
        });
      })
      .then(function (answer) {
        if (answer.ok) {
          form.hidden = true;
          say(form.dataset.done, false);
          return;
        }
        var problems = answer.json.fields || {};
        var detail = Object.keys(problems).map(function (name) {
          return problems[name];
        }).join("; ");
        say((detail || answer.json.detail || "That did not work.") +
          (answer.json.error === "invalid_key" ? " Ask for a new e-mail." : ""), true);
        button.disabled = answer.json.error === "invalid_key";
      })
      .catch(function () {
        button.disabled = false;
        say("The server could not be reached; try again.", true);
      });
  });
})();
