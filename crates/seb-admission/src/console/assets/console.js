// SEB console: the only script of the console (served from the binary, CSP script-src 'self').
// It does the WebAuthn calls the server cannot: sign-in, approve/deny, enrolment.
"use strict";

(function () {
  function b64urlEncode(buf) {
    var bytes = new Uint8Array(buf);
    var s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function b64Encode(buf) {
    var bytes = new Uint8Array(buf);
    var s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s);
  }
  function b64urlDecode(str) {
    var s = str.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function csrf() {
    var m = document.querySelector('meta[name="seb-csrf"]');
    return m ? m.getAttribute("content") : "";
  }
  function say(el, text, bad) {
    if (!el) return;
    el.textContent = text;
    el.className = bad ? "error" : "";
  }
  async function postJson(url, body, withCsrf) {
    var headers = { "content-type": "application/json" };
    if (withCsrf) headers["x-seb-csrf"] = csrf();
    var r = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: headers,
      body: JSON.stringify(body || {}),
    });
    var data = {};
    try { data = await r.json(); } catch (e) { data = {}; }
    if (!r.ok) {
      var msg = (data && (data.detail || data.error)) || ("HTTP " + r.status);
      throw new Error(msg);
    }
    return data;
  }
  function supported(status) {
    if (!window.PublicKeyCredential || !navigator.credentials) {
      say(status, "This browser does not support passkeys.", true);
      return false;
    }
    return true;
  }

  // ---- sign-in
  async function signIn(button, status) {
    if (!supported(status)) return;
    button.disabled = true;
    try {
      say(status, "Waiting for your passkey…");
      var ch = await postJson("/console/signin/challenge", {}, false);
      var cred = await navigator.credentials.get({
        publicKey: {
          challenge: b64urlDecode(ch.challenge),
          rpId: ch.rp_id,
          userVerification: "required",
          timeout: ch.timeout_ms,
        },
      });
      var r = cred.response;
      var res = await postJson("/console/signin", {
        credential_id: b64urlEncode(cred.rawId),
        authenticator_data: b64urlEncode(r.authenticatorData),
        client_data_json: b64urlEncode(r.clientDataJSON),
        signature: b64urlEncode(r.signature),
        user_handle: r.userHandle ? b64urlEncode(r.userHandle) : null,
      }, false);
      say(status, "Signed in as " + res.approver + ".");
      window.location.assign(res.next);
    } catch (e) {
      say(status, "Sign-in failed: " + e.message, true);
      button.disabled = false;
      button.focus();
    }
  }

  // ---- approve / deny
  async function decide(form, decision) {
    var status = document.getElementById("decide-status");
    if (!supported(status)) return;
    var comment = form.querySelector("#comment").value;
    if (decision === "deny" && comment.trim() === "") {
      say(status, "A denial needs a reason.", true);
      form.querySelector("#comment").focus();
      return;
    }
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    var id = form.getAttribute("data-proposal");
    var base = "/console/proposals/" + encodeURIComponent(id);
    try {
      say(status, "Preparing the " + decision + " statement…");
      var st = await postJson(base + "/statement", { decision: decision, comment: comment }, true);
      say(status, "Confirm with your passkey…");
      var cred = await navigator.credentials.get({
        publicKey: {
          challenge: b64urlDecode(st.challenge),
          rpId: st.rp_id,
          allowCredentials: [{ type: "public-key", id: b64urlDecode(st.credential_id) }],
          userVerification: "required",
          timeout: 120000,
        },
      });
      var r = cred.response;
      var envelope = {
        payloadType: st.payload_type,
        payload: st.payload,
        signatures: [{
          keyid: st.keyid,
          sig: b64Encode(r.signature),
          webauthn: {
            authenticator_data: b64urlEncode(r.authenticatorData),
            client_data_json: b64urlEncode(r.clientDataJSON),
          },
        }],
      };
      var res = await postJson(base + "/decision", envelope, true);
      say(status, "Recorded: the proposal is " + res.status + ".");
      window.location.assign(res.next);
    } catch (e) {
      say(status, "Not recorded: " + e.message, true);
      buttons.forEach(function (b) { b.disabled = false; });
    }
  }

  // ---- enrolment
  async function enrolLoad(box) {
    var token = box.getAttribute("data-token");
    var invite = document.getElementById("invite");
    var button = document.getElementById("enrol-button");
    var status = document.getElementById("status");
    var info;
    try {
      var r = await fetch("/v1/admission/enrolments/" + encodeURIComponent(token), { credentials: "same-origin" });
      if (!r.ok) throw new Error(r.status === 404 ? "this invitation is unknown, used or expired" : "HTTP " + r.status);
      info = await r.json();
    } catch (e) {
      say(invite, "Invitation not usable: " + e.message, true);
      return;
    }
    invite.textContent = "";
    var p = document.createElement("p");
    p.appendChild(document.createTextNode("You are invited as "));
    var strong = document.createElement("strong");
    strong.textContent = info.name;
    p.appendChild(strong);
    p.appendChild(document.createTextNode(" (role " + info.role + ") for " + info.rp_id + "."));
    invite.appendChild(p);
    if (!supported(status)) return;
    button.disabled = false;
    button.addEventListener("click", async function () {
      button.disabled = true;
      try {
        say(status, "Creating your passkey…");
        var cred = await navigator.credentials.create({
          publicKey: {
            rp: { id: info.rp_id, name: "SEB approvals" },
            user: { id: b64urlDecode(info.user_id), name: info.name, displayName: info.name },
            challenge: b64urlDecode(info.challenge),
            pubKeyCredParams: [{ type: "public-key", alg: -7 }, { type: "public-key", alg: -8 }],
            authenticatorSelection: { residentKey: "required", userVerification: "required" },
            attestation: "none",
            timeout: 120000,
          },
        });
        var r = cred.response;
        var spki = r.getPublicKey();
        if (!spki) throw new Error("the authenticator's key type is not supported");
        await postJson("/v1/admission/enrolments/" + encodeURIComponent(token), {
          credential_id: b64urlEncode(cred.rawId),
          public_key: b64urlEncode(spki),
          alg: r.getPublicKeyAlgorithm(),
          client_data_json: b64urlEncode(r.clientDataJSON),
          authenticator_data: b64urlEncode(r.getAuthenticatorData()),
        }, false);
        say(status, "Enrolled. You can now sign in.");
        var a = document.createElement("a");
        a.href = "/console/signin";
        a.id = "to-signin";
        a.textContent = "Go to sign-in";
        status.appendChild(document.createTextNode(" "));
        status.appendChild(a);
        a.focus();
      } catch (e) {
        say(status, "Enrolment failed: " + e.message, true);
        button.disabled = false;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var signin = document.getElementById("signin");
    if (signin) {
      signin.addEventListener("click", function () { signIn(signin, document.getElementById("status")); });
    }
    var form = document.getElementById("decide");
    if (form) {
      var chosen = "approve";
      form.querySelectorAll("button[name=decision]").forEach(function (b) {
        b.addEventListener("click", function () { chosen = b.value; });
      });
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var d = (ev.submitter && ev.submitter.value) || chosen;
        decide(form, d);
      });
    }
    var enrol = document.getElementById("enrol");
    if (enrol) enrolLoad(enrol);
  });
})();
