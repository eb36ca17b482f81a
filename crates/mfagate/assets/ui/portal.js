// The account portal. Every call is the public API (API.md), made as any client would, with one
// addition: each request asks for cookie mode (X-Mfagate-Cookies: 1), so the refresh token and a
// remembered device's token are HttpOnly cookies the page never sees. The access token lives in
// a variable of this script only: a reload gets a new one from the refresh cookie.
(function () {
  "use strict";

  var API = meta("mfagate-api");
  var access = null;      // the access token
  var claims = null;      // its decoded claims (amr, sid, auth_time)
  var refreshing = null;  // the refresh in flight: one at a time, or rotation would see reuse
  var setupToken = null;  // required mode: the token that enrols the first factor

  function meta(name) {
    var element = document.querySelector('meta[name="' + name + '"]');
    return element ? element.content : "";
  }
  function $(id) { return document.getElementById(id); }

  // ---- messages and views ------------------------------------------------------------------

  function clearMessages() {
    $("error").hidden = true;
    $("notice").hidden = true;
  }
  function showError(error) {
    var text = error && error.message ? error.message : String(error);
    $("error").textContent = text;
    $("error").hidden = false;
    $("notice").hidden = true;
  }
  function showNotice(text) {
    $("notice").textContent = text;
    $("notice").hidden = false;
    $("error").hidden = true;
  }
  function show(name) {
    var views = document.querySelectorAll("main > section");
    for (var i = 0; i < views.length; i++) { views[i].hidden = views[i].id !== "view-" + name; }
    var heading = document.querySelector("#view-" + name + " h1");
    if (heading) { heading.focus(); }
  }

  // A button stays disabled while its action runs; a failure is shown with the API's detail.
  function action(button, work) {
    return function (event) {
      if (event) { event.preventDefault(); }
      clearMessages();
      if (button) { button.disabled = true; }
      Promise.resolve()
        .then(work)
        .catch(function (error) {
          if (error && error.cancelled) { return; }
          if (error && error.signedOut) { signedOut(); }
          showError(error);
        })
        .then(function () { if (button) { button.disabled = false; } });
    };
  }

  // ---- the API --------------------------------------------------------------------------------

  function ApiError(status, body) {
    var detail = body.detail || body.error || ("the server answered " + status);
    if (body.attempts_remaining !== undefined) {
      detail += " (" + body.attempts_remaining + " attempt" +
        (body.attempts_remaining === 1 ? "" : "s") + " left)";
    }
    if (body.fields) {
      // "some fields are invalid; see 'fields'" speaks to programs; people get the fields.
      detail = "Please check: " + Object.keys(body.fields).map(function (field) {
        return field.replace(/_/g, " ") + " " + body.fields[field];
      }).join("; ") + ".";
    }
    var error = new Error(detail);
    error.status = status;
    error.code = body.error;
    error.body = body;
    return error;
  }

  function request(method, path, body, token) {
    var headers = { "X-Mfagate-Cookies": "1" };
    if (body !== undefined) { headers["Content-Type"] = "application/json"; }
    if (token) { headers.Authorization = "Bearer " + token; }
    return fetch(API + path, {
      method: method,
      headers: headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (json) {
        if (!response.ok) { throw ApiError(response.status, json); }
        return json;
      });
    }, function () {
      throw new Error("The server cannot be reached. Check your connection and try again.");
    });
  }

  function setTokens(tokens) {
    access = tokens.access;
    var part = access.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    claims = JSON.parse(atob(part));
  }

  // A new access token from the refresh cookie; fails when there is no live session.
  function refresh() {
    if (!refreshing) {
      refreshing = request("POST", "/token/refresh", {})
        .then(setTokens)
        .catch(function (error) {
          access = null;
          var ended = new Error("Your session has ended. Sign in again.");
          ended.signedOut = true;
          ended.cause = error;
          throw ended;
        })
        .then(function () { refreshing = null; }, function (error) {
          refreshing = null;
          throw error;
        });
    }
    return refreshing;
  }

  // A call as the signed-in user: an expired access token is refreshed once, and a call that
  // wants a recent second factor asks for one (step-up), then is made again.
  function authed(method, path, body) {
    return request(method, path, body, access).catch(function (error) {
      if (error.status === 401 && error.code === "invalid_token") {
        return refresh().then(function () { return request(method, path, body, access); });
      }
      if (error.code === "reauthentication_required") {
        return stepUp().then(function () { return request(method, path, body, access); });
      }
      throw error;
    });
  }

  // ---- WebAuthn: W3C JSON options in, credential.toJSON() out -------------------------------

  function bytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    return Uint8Array.from(atob(b64), function (c) { return c.charCodeAt(0); });
  }
  function base64url(buffer) {
    var s = String.fromCharCode.apply(null, new Uint8Array(buffer));
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function passkeysAvailable() {
    if (!window.PublicKeyCredential) {
      throw new Error("This browser cannot use passkeys here (they need https, or http on localhost).");
    }
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
    var response = { clientDataJSON: base64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = base64url(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = base64url(r.authenticatorData);
      response.signature = base64url(r.signature);
      response.userHandle = r.userHandle ? base64url(r.userHandle) : null;
    }
    return { id: credential.id, rawId: base64url(credential.rawId), type: credential.type,
             response: response, clientExtensionResults: credential.getClientExtensionResults() };
  }
  function passkeyAnswer(options) {
    passkeysAvailable();
    return navigator.credentials.get({ publicKey: requestOptions(options) }).then(toJSON, function () {
      throw new Error("No passkey was used. Try again, or use another way.");
    });
  }
  function newPasskey(options) {
    passkeysAvailable();
    return navigator.credentials.create({ publicKey: creationOptions(options) }).then(toJSON, function () {
      throw new Error("No passkey was made. Try again when your device asks.");
    });
  }

  // ---- the second step: a login's challenge, or a step-up --------------------------------

  // The access token's amr values (RFC 8176), as people say them.
  var AMR_WORDS = { pwd: "password", otp: "authenticator app", hwk: "passkey",
                    eml: "e-mailed code", rec: "recovery code", swk: "remembered device" };
  var METHOD_NAMES = { totp: "a code from your authenticator app", webauthn: "a passkey",
                       email: "a code we e-mail you", recovery_code: "a recovery code" };

  // Shows `answer`'s challenge and resolves with the token pair its answer earns.
  var abandonChallenge = null;  // the challenge on screen, if any, so a new one replaces it

  function challenge(answer, purpose) {
    if (abandonChallenge) { abandonChallenge(); }
    return new Promise(function (resolve, reject) {
      var methods = answer.methods || [];
      var codes = methods.filter(function (m) { return m !== "webauthn"; });
      $("challenge-title").textContent = purpose === "stepup" ? "Confirm it is you" : "Second step";
      $("challenge-intro").textContent = (purpose === "stepup"
        ? "This needs a recent second factor. Use " : "Finish signing in with ") +
        methods.map(function (m) { return METHOD_NAMES[m] || m; }).join(", or ") + ".";
      $("challenge-passkey").hidden = methods.indexOf("webauthn") < 0 || !answer.webauthn;
      $("challenge-email").hidden = methods.indexOf("email") < 0;
      $("challenge-form").hidden = codes.length === 0;
      $("challenge-code-label").textContent = codes.indexOf("totp") >= 0
        ? "Code from your authenticator app" : (codes.indexOf("email") >= 0 ? "Code from the e-mail" : "Recovery code");
      $("challenge-hint").textContent = codes.indexOf("recovery_code") >= 0
        ? "Lost your device? Type one of your recovery codes instead." : "";
      $("challenge-remember-row").hidden = purpose === "stepup";
      $("challenge-remember").checked = false;
      $("challenge-code").value = "";
      show("challenge");
      if (answer.email_sent) { showNotice("We e-mailed you a code."); }

      function verify(proof) {
        proof.ephemeral_token = answer.ephemeral_token;
        proof.remember_device = purpose !== "stepup" && $("challenge-remember").checked;
        return request("POST", "/mfa/verify", proof).then(finish, function (error) {
          // A dead challenge cannot be answered any more: start again.
          if (error.code === "too_many_attempts" || error.status === 401) { stop(error); }
          throw error;
        });
      }
      function finish(tokens) { detach(); resolve(tokens); }
      function stop(error) { detach(); reject(error); }
      var onCode = action($("challenge-submit"), function () {
        return verify({ code: $("challenge-code").value.trim() });
      });
      var onPasskey = action($("challenge-passkey"), function () {
        return passkeyAnswer(answer.webauthn).then(function (credential) {
          return verify({ credential: credential });
        });
      });
      var onEmail = action($("challenge-email"), function () {
        return request("POST", "/mfa/email/send", { ephemeral_token: answer.ephemeral_token })
          .then(function () { showNotice("We e-mailed you a code."); $("challenge-code").focus(); });
      });
      // Given up: by the Cancel button (back where the user came from), or because the page
      // moved on (another challenge, another view), which leaves the view alone.
      function giveUp(toView) {
        detach();
        if (toView) { show(purpose === "stepup" ? "account" : "signin"); }
        var e = new Error("cancelled");
        e.cancelled = true;
        reject(e);
      }
      var onCancel = function () { giveUp(true); };
      $("challenge-form").addEventListener("submit", onCode);
      $("challenge-passkey").addEventListener("click", onPasskey);
      $("challenge-email").addEventListener("click", onEmail);
      $("challenge-cancel").addEventListener("click", onCancel);
      abandonChallenge = function () { giveUp(false); };
      function detach() {
        abandonChallenge = null;
        $("challenge-form").removeEventListener("submit", onCode);
        $("challenge-passkey").removeEventListener("click", onPasskey);
        $("challenge-email").removeEventListener("click", onEmail);
        $("challenge-cancel").removeEventListener("click", onCancel);
      }
    });
  }

  // Step-up: a challenge that continues this session with a fresh second factor.
  function stepUp() {
    return request("POST", "/reauthenticate", {}, access).then(function (answer) {
      if (answer.access) { setTokens(answer); return; }
      return challenge(answer, "stepup").then(function (tokens) {
        setTokens(tokens);
        show("account");
      }, function (error) {
        if (!error.cancelled) { show("account"); }
        throw error;
      });
    });
  }

  // What a correct password (or a registration, or an invitation) leads to.
  function afterPassword(answer) {
    if (answer.access) { setTokens(answer); return enterAccount(); }
    if (answer.mfa_required) {
      return challenge(answer, "signin").then(function (tokens) {
        setTokens(tokens);
        return enterAccount();
      }, function (error) {
        if (!error.cancelled) { show("signin"); }
        throw error;
      });
    }
    if (answer.mfa_setup_required) {
      setupToken = answer.setup_token;
      show("setup");
      return;
    }
    show("signin");
    if (answer.detail) { showNotice(answer.detail); }
  }

  // ---- enrolling a factor (account page, or required mode's setup) ------------------------

  function enrolPanel(container) {
    var purpose = container.dataset.purpose;
    container.appendChild($("enrol-template").content.cloneNode(true));
    function part(cls) { return container.querySelector("." + cls); }
    var name = part("enrol-name");
    name.id = purpose + "-enrol-name";
    part("enrol-name-label").htmlFor = name.id;
    var code = part("enrol-code");
    code.id = purpose + "-enrol-code";
    part("enrol-code-label").htmlFor = code.id;
    part("enrol-totp").id = purpose + "-add-totp";
    part("enrol-passkey").id = purpose + "-add-passkey";
    part("enrol-confirm-submit").id = purpose + "-enrol-confirm";
    var pending = null;

    // The setup token in required mode; the access token (with refresh and step-up) otherwise.
    function call(method, path, body) {
      return purpose === "setup" ? request(method, path, body, setupToken) : authed(method, path, body);
    }
    function begin(kind) {
      var label = name.value.trim() || (kind === "totp" ? "Authenticator" : "Passkey");
      return call("POST", "/mfa/factors", { kind: kind, name: label });
    }
    function done(verified, what) {
      // Enrolment opens a new session with the factor in it.
      setTokens(verified);
      setupToken = null;
      name.value = "";
      code.value = "";
      part("enrol-qr").hidden = true;
      pending = null;
      var message = what + " '" + verified.factor.name + "' added.";
      if (verified.recovery_codes) { return showCodes(verified.recovery_codes, message); }
      return enterAccount().then(function () { showNotice(message); });
    }
    part("enrol-form").addEventListener("submit", action(part("enrol-totp"), function () {
      return begin("totp").then(function (begun) {
        pending = begun.factor;
        part("qr").src = begun.qr_code_data_uri;
        part("enrol-secret").textContent = begun.secret;
        part("enrol-qr").hidden = false;
        code.focus();
      });
    }));
    part("enrol-confirm").addEventListener("submit", action(part("enrol-confirm-submit"), function () {
      if (!pending) { throw new Error("Add an authenticator app first."); }
      return call("POST", "/mfa/factors/" + encodeURIComponent(pending.id) + "/verify",
                  { code: code.value.trim() })
        .then(function (verified) { return done(verified, "Authenticator app"); });
    }));
    part("enrol-passkey").addEventListener("click", action(part("enrol-passkey"), function () {
      return begin("webauthn").then(function (begun) {
        return newPasskey(begun.options).then(function (credential) {
          return call("POST", "/mfa/factors/" + encodeURIComponent(begun.factor.id) + "/verify",
                      { credential: credential });
        });
      }).then(function (verified) { return done(verified, "Passkey"); });
    }));
  }

  function showCodes(codes, message) {
    var list = $("codes-list");
    list.textContent = "";
    codes.forEach(function (c) {
      var item = document.createElement("li");
      item.textContent = c;
      list.appendChild(item);
    });
    show("codes");
    if (message) { showNotice(message); }
  }

  // ---- the account page -----------------------------------------------------------------------

  function when(text) {
    if (!text) { return "never"; }
    var date = new Date(text);
    return isNaN(date) ? text : date.toLocaleString();
  }
  function element(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) { e.textContent = text; }
    if (cls) { e.className = cls; }
    return e;
  }
  function button(text, cls, onClick) {
    var b = element("button", text, cls);
    b.type = "button";
    b.addEventListener("click", action(b, onClick));
    return b;
  }

  // The account page appears once its data is in, never half filled.
  function enterAccount() {
    return loadAccount().then(function () { show("account"); });
  }

  function loadAccount() {
    return authed("GET", "/user").then(function (user) {
      $("whoami").textContent = "Signed in as " + user.username;
      $("whoami").hidden = false;
      $("account-summary").textContent = "Signed in as " + user.username + " (" + user.email +
        "). This sign-in used: " + (claims.amr || []).filter(function (m) { return m !== "mfa"; })
        .map(function (m) { return AMR_WORDS[m] || m; }).join(", ") + ".";
      $("account-unverified").hidden = user.email_verified;
      return Promise.all([
        authed("GET", "/mfa/factors").then(renderFactors, mfaOff),
        authed("GET", "/mfa/status").then(renderStatus, mfaOff),
        authed("GET", "/sessions").then(renderSessions)
      ]);
    });
  }
  // Mode `disabled`: no second factors here, so their sections go.
  function mfaOff(error) {
    if (error.code !== "mfa_disabled") { throw error; }
    var parts = document.querySelectorAll(".mfa-only");
    for (var i = 0; i < parts.length; i++) { parts[i].hidden = true; }
  }

  var PREFERENCES = { totp: "A code from my authenticator app", webauthn: "A passkey",
                      email: "A code by e-mail", none: "None: switch e-mailed codes off" };

  function renderStatus(status) {
    var select = $("method-select");
    select.textContent = "";
    var choices = status.methods.filter(function (m) { return m === "totp" || m === "webauthn"; });
    choices.push("email");
    // Switching e-mailed codes off is for an account with no app or passkey (the API says so).
    if (status.methods.indexOf("email") >= 0 && choices.length === 1) { choices.push("none"); }
    choices.forEach(function (m) {
      var option = element("option", PREFERENCES[m]);
      option.value = m;
      option.selected = m === status.preferred_method;
      select.appendChild(option);
    });
    $("codes-remaining").textContent = status.mfa_enabled
      ? status.recovery_codes_remaining + " unused recovery codes."
      : "Recovery codes come with your first second factor.";
    $("codes-show").hidden = !status.mfa_enabled;
    // Replacing them needs a factor (an app or a passkey) and a code from the app or the set.
    $("codes-regenerate-form").hidden =
      status.methods.indexOf("totp") < 0 && status.methods.indexOf("webauthn") < 0;
  }

  function renderFactors(answer) {
    var list = $("factor-list");
    list.textContent = "";
    $("factor-none").hidden = answer.factors.length > 0;
    answer.factors.forEach(function (factor) {
      var item = element("li");
      item.dataset.factor = factor.id;
      item.appendChild(element("strong", factor.name, "factor-name"));
      item.appendChild(document.createTextNode(" · " +
        (factor.kind === "webauthn" ? "Passkey" : "Authenticator app")));
      item.appendChild(element("div", "Added " + when(factor.created_at) + ", last used " +
        when(factor.last_used_at), "meta"));
      item.appendChild(button("Rename", "secondary rename", function () { renameForm(item, factor); }));
      var remove = button("Remove", "danger remove", function () {
        if (remove.dataset.armed !== "yes") {
          remove.dataset.armed = "yes";
          remove.textContent = "Really remove " + factor.name + "?";
          return;
        }
        return authed("DELETE", "/mfa/factors/" + encodeURIComponent(factor.id)).then(function () {
          return loadAccount().then(function () { showNotice("'" + factor.name + "' removed."); });
        });
      });
      item.appendChild(remove);
      list.appendChild(item);
    });
  }

  function renameForm(item, factor) {
    if (item.querySelector("form")) { return; }
    var form = element("form");
    var id = "rename-" + factor.id;
    var label = element("label", "New name for " + factor.name);
    label.htmlFor = id;
    var input = element("input");
    input.id = id;
    input.value = factor.name;
    input.maxLength = 64;
    var save = element("button", "Save");
    save.type = "submit";
    form.appendChild(label);
    form.appendChild(input);
    form.appendChild(save);
    form.addEventListener("submit", action(save, function () {
      return authed("PATCH", "/mfa/factors/" + encodeURIComponent(factor.id), { name: input.value.trim() })
        .then(function (answer) {
          return loadAccount().then(function () { showNotice("Renamed to '" + answer.factor.name + "'."); });
        });
    }));
    item.appendChild(form);
    input.focus();
  }

  function renderSessions(answer) {
    var list = $("session-list");
    list.textContent = "";
    answer.sessions.forEach(function (session) {
      var item = element("li");
      item.dataset.session = session.id;
      item.appendChild(element("strong", session.current ? "This browser" : (session.user_agent || "Unknown browser")));
      item.appendChild(element("div", (session.ip || "unknown address") + " · signed in " +
        when(session.created_at) + " · last active " + when(session.last_used_at), "meta"));
      if (!session.current) {
        item.appendChild(button("End this session", "secondary end-session", function () {
          return authed("DELETE", "/sessions/" + encodeURIComponent(session.id)).then(function () {
            return loadAccount().then(function () { showNotice("The session is ended."); });
          });
        }));
      }
      list.appendChild(item);
    });
  }

  function signedOut(message) {
    access = null;
    claims = null;
    $("whoami").hidden = true;
    $("account-summary").textContent = "";
    show("signin");
    if (message) { showNotice(message); }
  }

  // ---- wiring ----------------------------------------------------------------------------------

  function wire() {
    $("signin-form").addEventListener("submit", action($("signin-submit"), function () {
      return request("POST", "/login", {
        username: $("signin-username").value.trim(),
        password: $("signin-password").value
      }).then(function (answer) {
        $("signin-password").value = "";
        return afterPassword(answer);
      });
    }));
    $("passkey-signin").addEventListener("click", action($("passkey-signin"), function () {
      var name = $("signin-username").value.trim();
      return request("POST", "/passkey/begin", name ? { username: name } : {}).then(function (begun) {
        return passkeyAnswer(begun.options).then(function (credential) {
          return request("POST", "/passkey/finish", { passkey_token: begun.passkey_token, credential: credential });
        });
      }).then(function (tokens) { setTokens(tokens); return enterAccount(); });
    }));
    $("register-form").addEventListener("submit", action($("register-submit"), function () {
      return request("POST", "/register", {
        username: $("register-username").value.trim(),
        email: $("register-email").value.trim(),
        password: $("register-password").value
      }).then(function (answer) {
        $("register-password").value = "";
        // Leave #register without a hashchange (which would show the sign-in page).
        history.replaceState(null, "", location.pathname);
        return afterPassword(answer);
      });
    }));
    $("forgot-form").addEventListener("submit", action($("forgot-submit"), function () {
      return request("POST", "/password/reset", { email: $("forgot-email").value.trim() })
        .then(function (answer) { showNotice(answer.detail + ". The link in it opens a page to choose a new password."); });
    }));
    $("codes-done").addEventListener("click", action($("codes-done"), function () {
      $("codes-list").textContent = "";
      return enterAccount();
    }));
    $("method-form").addEventListener("submit", action($("method-save"), function () {
      return authed("POST", "/mfa/method", { method: $("method-select").value }).then(function (answer) {
        return loadAccount().then(function () {
          showNotice("Saved: " + (PREFERENCES[answer.preferred_method] || answer.preferred_method) + ".");
        });
      });
    }));
    $("codes-show").addEventListener("click", action($("codes-show"), function () {
      return authed("GET", "/mfa/recovery-codes").then(function (answer) {
        showCodes(answer.recovery_codes, "These are your unused recovery codes.");
      });
    }));
    $("codes-regenerate-form").addEventListener("submit", action($("codes-regenerate"), function () {
      return authed("POST", "/mfa/recovery-codes/regenerate", { code: $("codes-regenerate-code").value.trim() })
        .then(function (answer) {
          $("codes-regenerate-code").value = "";
          showCodes(answer.recovery_codes, "New recovery codes: the old ones no longer work.");
        });
    }));
    $("resend-verification").addEventListener("click", action($("resend-verification"), function () {
      return authed("POST", "/register/resend-verification", {}).then(function (answer) { showNotice(answer.detail); });
    }));
    $("logout-all").addEventListener("click", action($("logout-all"), function () {
      return authed("POST", "/logout/all", {}).then(function (answer) {
        signedOut("Signed out everywhere (" + answer.revoked + " session" + (answer.revoked === 1 ? "" : "s") + ").");
      });
    }));
    $("password-form").addEventListener("submit", action($("password-submit"), function () {
      return authed("POST", "/password/change", {
        old_password: $("password-old").value,
        new_password: $("password-new").value
      }).then(function () {
        $("password-old").value = "";
        $("password-new").value = "";
        signedOut("Password changed and every session ended. Sign in with your new password.");
      });
    }));
    $("logout").addEventListener("click", action($("logout"), function () {
      return request("POST", "/logout", {}).catch(function () {}).then(function () { signedOut("Signed out."); });
    }));
    var panels = document.querySelectorAll(".enrol");
    for (var i = 0; i < panels.length; i++) { enrolPanel(panels[i]); }
    window.addEventListener("hashchange", route);
  }

  // #register and #forgot are pages of their own; anything else is the account or sign-in.
  function route() {
    clearMessages();
    if (abandonChallenge) { abandonChallenge(); }
    var hash = location.hash.replace("#", "");
    if (hash === "register" || hash === "forgot") { show(hash); return Promise.resolve(); }
    if (access) { return enterAccount(); }
    show("signin");
    return Promise.resolve();
  }

  function start() {
    wire();
    var hash = location.hash.replace("#", "");
    if (hash === "register" || hash === "forgot") { route(); return; }
    // A live session in the refresh cookie signs this page in.
    refresh().then(enterAccount, function () { show("signin"); }).catch(showError);
  }

  start();
}());
