"""Drive the SEB console in Debian's Chromium with Playwright for Python and the DevTools
Protocol's virtual authenticator (one per approver, user verification on).

Usage: console_session.py scenario.json

The scenario names the console's base URL, the approvers (each gets its own browser context
and virtual authenticator; a credential may be injected with WebAuthn.addCredential, or
created through the enrolment page), and the steps to run in order. Every step appends to
`<out>/transcript.json`; screenshots go to `<out>/`. Exit status 0 and "SESSION OK" on stdout
when every step passed; a failed step raises with what the page showed.
"""

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import time

from playwright.async_api import async_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Failed(Exception):
    pass


class Session:
    def __init__(self, scenario):
        self.s = scenario
        self.base = scenario["base"].rstrip("/")
        self.out = scenario["out"]
        self.transcript = []
        self.approvers = {}
        self.responses = []
        self.console_errors = []
        self.vars = {}

    def log(self, step, **kw):
        kw["step"] = step
        self.transcript.append(kw)
        print(json.dumps(kw)[:400], flush=True)

    async def approver(self, name):
        if name in self.approvers:
            return self.approvers[name]
        spec = self.s["approvers"][name]
        ctx = await self.browser.new_context(
            viewport=spec.get("viewport", {"width": 1280, "height": 900}),
            ignore_https_errors=False,
        )
        page = await ctx.new_page()
        page.on(
            "response",
            lambda r: self.responses.append((name, r)) if "/console" in r.url or "/v1/admission/enrolments" in r.url else None,
        )
        page.on("console", lambda m: self.console_errors.append((name, m.type, m.text)) if m.type == "error" else None)
        cdp = await ctx.new_cdp_session(page)
        await cdp.send("WebAuthn.enable", {"enableUI": False})
        r = await cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "automaticPresenceSimulation": True,
                }
            },
        )
        aid = r["authenticatorId"]
        inject = spec.get("inject")
        if inject:
            await cdp.send(
                "WebAuthn.addCredential",
                {
                    "authenticatorId": aid,
                    "credential": {
                        "credentialId": inject["credential_id"],
                        "isResidentCredential": True,
                        "rpId": inject["rp_id"],
                        "privateKey": inject["private_key"],
                        "userHandle": inject["user_handle"],
                        "signCount": 0,
                    },
                },
            )
        a = {"ctx": ctx, "page": page, "cdp": cdp, "aid": aid}
        self.approvers[name] = a
        return a

    async def text(self, page):
        return await page.inner_text("body")

    async def expect_texts(self, page, expect, absent=()):
        body = await self.text(page)
        for t in expect:
            if t not in body:
                raise Failed(f"expected {t!r} on {page.url}; page shows:\n{body[:3000]}")
        for t in absent:
            if t in body:
                raise Failed(f"did not expect {t!r} on {page.url}")
        return body

    async def shot(self, page, name):
        if not name:
            return None
        path = os.path.join(self.out, name)
        await page.screenshot(path=path, full_page=True)
        return path

    async def press_until_focused(self, page, selector, limit=40):
        """Tab through the page (keyboard only) until `selector` has focus."""
        for _ in range(limit):
            await page.keyboard.press("Tab")
            if await page.evaluate(f"document.activeElement && document.activeElement.matches({json.dumps(selector)})"):
                return
        raise Failed(f"{selector} never got keyboard focus on {page.url}")

    # ---------------------------------------------------------------- steps

    async def step_enrol(self, st):
        a = await self.approver(st["who"])
        page = a["page"]
        await page.goto(st["url"])
        await page.wait_for_selector("#enrol-button:not([disabled])", timeout=15000)
        await self.expect_texts(page, [st["who"]])
        if st.get("keyboard"):
            await self.press_until_focused(page, "#enrol-button")
            await page.keyboard.press("Enter")
        else:
            await page.click("#enrol-button")
        try:
            await page.wait_for_selector("#to-signin", timeout=15000)
        except Exception:
            raise Failed("enrolment did not finish: " + await page.inner_text("#status"))
        creds = await a["cdp"].send("WebAuthn.getCredentials", {"authenticatorId": a["aid"]})
        self.log("enrol", who=st["who"], credentials=len(creds["credentials"]), shot=await self.shot(page, st.get("shot")))

    async def step_signin(self, st):
        a = await self.approver(st["who"])
        page = a["page"]
        await page.goto(self.base + "/console/signin")
        await self.expect_texts(page, ["Sign in with a passkey"], absent=st.get("absent", []))
        async with page.expect_response(lambda r: r.url.endswith("/console/signin") and r.request.method == "POST") as info:
            if st.get("keyboard"):
                await self.press_until_focused(page, "#signin")
                await page.keyboard.press("Enter")
            else:
                await page.click("#signin")
        resp = await info.value
        headers = await resp.all_headers()
        set_cookie = [h["value"] for h in await resp.headers_array() if h["name"].lower() == "set-cookie"]
        if resp.status != 200:
            raise Failed(f"sign-in refused: {resp.status} {await resp.text()}")
        await page.wait_for_url("**/console/proposals", timeout=15000)
        cookies = await a["ctx"].cookies()
        self.log(
            "signin",
            who=st["who"],
            status=resp.status,
            set_cookie=set_cookie,
            csp=headers.get("content-security-policy"),
            cookies=[{k: c[k] for k in ("name", "httpOnly", "secure", "sameSite", "path")} for c in cookies],
            js_sees_cookie=await page.evaluate("document.cookie"),
        )

    async def step_list(self, st):
        a = await self.approver(st["who"])
        page = a["page"]
        if st.get("viewport"):
            await page.set_viewport_size(st["viewport"])
        resp = await page.goto(self.base + "/console/proposals" + st.get("query", ""))
        body = await self.expect_texts(page, st.get("expect", []), st.get("absent", []))
        headers = await resp.all_headers()
        self.log("list", who=st["who"], status=resp.status, csp=headers.get("content-security-policy"), shot=await self.shot(page, st.get("shot")), body=body[:2000])

    async def step_filter(self, st):
        """Use the filter form with the keyboard: choose values, submit, check the result."""
        a = await self.approver(st["who"])
        page = a["page"]
        await page.goto(self.base + "/console/proposals")
        for name, value in st["choose"].items():
            await page.select_option(f"select[name={name}]", value)
        await page.focus("form.filters button[type=submit]")
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        body = await self.expect_texts(page, st.get("expect", []), st.get("absent", []))
        self.log("filter", who=st["who"], url=page.url, body=body[:1500])

    async def step_open(self, st):
        a = await self.approver(st["who"])
        page = a["page"]
        if st.get("viewport"):
            await page.set_viewport_size(st["viewport"])
        resp = await page.goto(self.base + "/console/proposals/" + st["id"])
        body = await self.expect_texts(page, st.get("expect", []), st.get("absent", []))
        decidable = await page.query_selector("#decide") is not None
        if "decidable" in st and st["decidable"] != decidable:
            raise Failed(f"{st['id']}: decidable {decidable}, expected {st['decidable']}:\n{body[:2000]}")
        self.log("open", who=st["who"], id=st["id"], status=resp.status, decidable=decidable, shot=await self.shot(page, st.get("shot")), body=body[:3000])

    async def step_decide(self, st):
        a = await self.approver(st["who"])
        page = a["page"]
        await page.goto(self.base + "/console/proposals/" + st["id"])
        await page.wait_for_selector("#decide")
        if st.get("keyboard"):
            await self.press_until_focused(page, "#comment")
            await page.keyboard.type(st.get("comment", ""))
            await self.press_until_focused(page, f"button[value={st['decision']}]")
            await page.keyboard.press("Enter")
        else:
            await page.fill("#comment", st.get("comment", ""))
            await page.click(f"button[value={st['decision']}]")
        if st.get("expect_error"):
            await page.wait_for_function(
                "t => document.getElementById('decide-status').textContent.includes(t)",
                arg=st["expect_error"],
                timeout=15000,
            )
            self.log("decide", who=st["who"], id=st["id"], refused=await page.inner_text("#decide-status"))
            return
        try:
            await page.wait_for_function(
                "() => !document.getElementById('decide')", timeout=15000
            )
        except Exception:
            status = await page.inner_text("#decide-status") if await page.query_selector("#decide-status") else ""
            raise Failed(f"decision on {st['id']} not recorded: {status}")
        body = await self.expect_texts(page, st.get("expect", []), st.get("absent", []))
        self.log("decide", who=st["who"], id=st["id"], decision=st["decision"], shot=await self.shot(page, st.get("shot")), body=body[:2000])

    async def step_csp(self, st):
        """An injected inline script must not run (the CSP forbids it)."""
        a = await self.approver(st["who"])
        page = a["page"]
        await page.goto(self.base + "/console/proposals")
        violations = await page.evaluate(
            """() => new Promise(resolve => {
                 const seen = [];
                 document.addEventListener('securitypolicyviolation', e => seen.push(e.violatedDirective));
                 const s = document.createElement('script');
                 s.textContent = 'window.__inline_ran = true';
                 document.body.appendChild(s);
                 const d = document.createElement('div');
                 d.setAttribute('onclick', 'window.__handler_ran = true');
                 document.body.appendChild(d);
                 d.click();
                 setTimeout(() => resolve({seen, inline: !!window.__inline_ran, handler: !!window.__handler_ran}), 300);
               })"""
        )
        if violations["inline"] or violations["handler"]:
            raise Failed(f"inline script ran: {violations}")
        self.log("csp", who=st["who"], **violations)

    async def step_signout(self, st):
        a = await self.approver(st["who"])
        page = a["page"]
        await page.goto(self.base + "/console/proposals")
        await page.click("header .signout button")
        await page.wait_for_url("**/console/signin")
        resp = await page.goto(self.base + "/console/proposals")
        self.log("signout", who=st["who"], after=page.url, cookies=[c["name"] for c in await a["ctx"].cookies()])
        if not page.url.endswith("/console/signin"):
            raise Failed("still signed in after sign-out")

    async def step_run(self, st):
        started = time.time()
        p = subprocess.run(st["argv"], capture_output=True, text=True, env=self.s.get("env"), timeout=st.get("timeout", 60))
        rec = {"name": st.get("name"), "rc": p.returncode, "stdout": p.stdout[-4000:], "stderr": p.stderr[-4000:], "secs": round(time.time() - started, 2)}
        if st.get("capture"):
            m = re.search(st["capture"]["regex"], p.stdout)
            if not m:
                raise Failed(f"{st.get('name')}: nothing matching {st['capture']['regex']!r} in:\n{p.stdout}\n{p.stderr}")
            self.vars[st["capture"]["var"]] = m.group(0)
            rec["captured"] = {st["capture"]["var"]: "<captured>"}
        self.log("run", **rec)
        if "expect_rc" in st and p.returncode != st["expect_rc"]:
            raise Failed(f"{st.get('name')}: exit {p.returncode}, expected {st['expect_rc']}:\n{p.stdout}\n{p.stderr}")
        for t in st.get("expect", []):
            if t not in p.stdout + p.stderr:
                raise Failed(f"{st.get('name')}: {t!r} not in output:\n{p.stdout}\n{p.stderr}")

    async def step_sleep_until(self, st):
        while time.time() < st["unix_s"]:
            await asyncio.sleep(0.2)
        self.log("sleep_until", unix_s=st["unix_s"])

    def substitute(self, v):
        """Replace `{var}` in every string of a step by a value captured earlier."""
        if isinstance(v, str):
            for k, x in self.vars.items():
                v = v.replace("{" + k + "}", x)
            return v
        if isinstance(v, list):
            return [self.substitute(x) for x in v]
        if isinstance(v, dict):
            return {k: self.substitute(x) for k, x in v.items()}
        return v

    def trust_ca(self):
        """A fresh NSS database trusting the scenario's CA, in a HOME of our own: Chromium on
        Linux reads $HOME/.pki/nssdb, so the console's TLS is valid (WebAuthn refuses pages with
        certificate errors)."""
        env = dict(os.environ)
        if not self.s.get("ca"):
            return env
        home = os.path.join(self.out, "home")
        nssdb = os.path.join(home, ".pki", "nssdb")
        os.makedirs(nssdb, exist_ok=True)
        if not os.path.exists(os.path.join(nssdb, "cert9.db")):
            subprocess.run(["certutil", "-d", "sql:" + nssdb, "-N", "--empty-password"], check=True)
        subprocess.run(["certutil", "-d", "sql:" + nssdb, "-A", "-t", "C,,", "-n", "seb-test-ca", "-i", self.s["ca"]], check=True)
        env["HOME"] = home
        return env

    async def run(self):
        env = self.trust_ca()
        async with async_playwright() as p:
            self.browser = await p.chromium.launch(executable_path=self.s.get("chromium", "/usr/bin/chromium"), args=CHROMIUM_ARGS, env=env)
            self.log("browser", version=self.browser.version)
            try:
                for st in self.s["steps"]:
                    st = self.substitute(st)
                    await getattr(self, "step_" + st["do"])(st)
            finally:
                self.log(
                    "responses",
                    responses=[
                        {"who": who, "url": r.url, "status": r.status, "headers": await r.all_headers()}
                        for who, r in self.responses
                    ][-200:],
                    console_errors=self.console_errors,
                )
                with open(os.path.join(self.out, "transcript.json"), "w") as f:
                    json.dump(self.transcript, f, indent=1, default=str)
                await self.browser.close()


def main():
    with open(sys.argv[1]) as f:
        scenario = json.load(f)
    os.makedirs(scenario["out"], exist_ok=True)
    asyncio.run(Session(scenario).run())
    print("SESSION OK")


if __name__ == "__main__":
    main()
