// The passkey page: every call is the public API, as any client would make it. Options go to
// the browser through PublicKeyCredential.parse*OptionsFromJSON and answers come back as
// credential.toJSON() (WebAuthn Level 3), with a small fallback for browsers without them.
(function () {
  "use strict";
  var root = document.getElementById("passkeys");
  var api = root.dataset.api;
  var result = document.getElementById("result");
  var access = null;

  function $(id) { return document.getElementById(id); }
  function say(text, failed) {
    result.textContent = text;
    result.className = failed ? "failed" : "";
  }
  function call(path, body, token) {
    var headers = { "Content-Type": "application/json" };
    if (token) { headers.Authorization = "Bearer " + token; }
    return fetch(api + path, {
      method: body === undefined ? "GET" : "POST",
      headers: headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (json) {
        if (!response.ok) { throw new Error(json.detail || json.error || response.statusText); }
        return json;
      });
    });
  }

  // base64url <-> bytes, for browsers without the JSON helpers.
  function bytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    return Uint8Array.from(atob(b64), function (c) { return c.charCodeAt(0); });
  }
  function text(buffer) {
    var s = String.fromCharCode.apply(null, new Uint8Array(buffer));
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function creationOptions(json) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    var o = Object.assign({}, json);
    o.challenge = bytes(json.challenge);
    o.user = Object.assign({}, json.user, { id: bytes(json.user.id) });
    o.excludeCredentials = (json.excludeCredentials || []).map(function (c) {
      return Object.assign({}, c, { id: bytes(c.id) });
    });
    return o;
  }
  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    var o = Object.assign({}, json);
    o.challenge = bytes(json.challenge);
    o.allowCredentials = (json.allowCredentials || []).map(function (c) {
      return Object.assign({}, c, { id: bytes(c.id) });
    });
    return o;
  }
  function toJSON(credential) {
    if (credential.toJSON) { return credential.toJSON(); }
    var r = credential.response;
    var response = { clientDataJSON: text(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = text(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = text(r.authenticatorData);
      response.signature = text(r.signature);
      response.userHandle = r.userHandle ? text(r.userHandle) : null;
    }
    return { id: credential.id, rawId: text(credential.rawId), type: credential.type,
             response: response, clientExtensionResults: credential.getClientExtensionResults() };
  }

  function signedIn(tokens) {
    access = tokens.access;
    return call("/user", undefined, access).then(function (user) {
      var amr = JSON.parse(atob(access.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).amr;
      say("Signed in as " + user.username + " (" + amr.join(" ") + ")", false);
      return listFactors();
    });
  }
  function listFactors() {
    return call("/mfa/factors", undefined, access).then(function (answer) {
      var list = $("factors");
      list.textContent = "";
      answer.factors.forEach(function (factor) {
        var item = document.createElement("li");
        item.textContent = factor.name + " (" + factor.kind + ")";
        list.appendChild(item);
      });
    });
  }
  function failed(error) { say(error.message || String(error), true); }

  $("login").addEventListener("click", function () {
    say("One moment…", false);
    call("/login", { username: $("username").value, password: $("password").value })
      .then(function (answer) {
        if (answer.access) { return signedIn(answer); }
        if (answer.mfa_required && answer.webauthn) {
          return navigator.credentials.get({ publicKey: requestOptions(answer.webauthn) })
            .then(function (credential) {
              return call("/mfa/verify", { ephemeral_token: answer.ephemeral_token,
                                           credential: toJSON(credential) });
            })
            .then(signedIn);
        }
        throw new Error("This account asks for a code (" + (answer.methods || []).join(", ") +
                        "); this page only answers with passkeys.");
      })
      .catch(failed);
  });

  $("passkey-login").addEventListener("click", function () {
    say("One moment…", false);
    var name = $("username").value.trim();
    call("/passkey/begin", name ? { username: name } : {})
      .then(function (begun) {
        return navigator.credentials.get({ publicKey: requestOptions(begun.options) })
          .then(function (credential) {
            return call("/passkey/finish", { passkey_token: begun.passkey_token,
                                             credential: toJSON(credential) });
          });
      })
      .then(signedIn)
      .catch(failed);
  });

  $("add").addEventListener("click", function () {
    if (!access) { say("Sign in first.", true); return; }
    say("One moment…", false);
    var name = $("name").value;
    call("/mfa/factors", { kind: "webauthn", name: name }, access)
      .then(function (begun) {
        return navigator.credentials.create({ publicKey: creationOptions(begun.options) })
          .then(function (credential) {
            return call("/mfa/factors/" + encodeURIComponent(begun.factor.id) + "/verify",
                        { credential: toJSON(credential) }, access);
          });
      })
      .then(function (verified) {
        // Enrolment opens a new session with the passkey in it.
        access = verified.access;
        say("Passkey '" + verified.factor.name + "' added", false);
        return listFactors();
      })
      .catch(failed);
  });

  $("logout").addEventListener("click", function () {
    access = null;
    $("factors").textContent = "";
    say("Signed out on this page.", false);
  });
}());
