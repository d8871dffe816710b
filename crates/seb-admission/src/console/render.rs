//! Server-rendered pages of the console. Pure: every function takes the data and the time and
//! returns HTML text. Every value that did not come from this file goes through [`esc`]; the
//! pages carry no inline script or style (the CSP forbids both), only the embedded
//! `/console/assets/console.css` and `/console/assets/console.js`.
//!
//! Pages read proposal views as JSON ([`serde_json::Value`]), so fields added to the view
//! later (such as `related` from net-effect scoring) are shown when present without a change
//! here beyond the section that renders them.

use std::fmt::Write as _;

use serde_json::Value;

use super::effect;

/// HTML-escape text for element content and double-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encode a path segment or query value (RFC 3986 unreserved kept).
pub fn url_enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn u(v: &Value, p: &str) -> Option<u64> {
    v.pointer(p).and_then(Value::as_u64)
}

/// A JSON value as compact text, escaped.
fn jv(v: &Value) -> String {
    match v {
        Value::String(s) => esc(s),
        other => esc(&other.to_string()),
    }
}

fn pretty(v: &Value) -> String {
    esc(&serde_json::to_string_pretty(v).unwrap_or_default())
}

/// `12 min 5 s left`, `expired`.
pub fn time_left(deadline_ms: Option<u64>, now_ms: u64) -> String {
    let Some(d) = deadline_ms else { return "no deadline".into() };
    if d <= now_ms {
        return "expired".into();
    }
    let secs = (d - now_ms) / 1000;
    let (h, m, sec) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h} h {m} min left")
    } else if m > 0 {
        format!("{m} min {sec} s left")
    } else {
        format!("{sec} s left")
    }
}

/// UTC time of a Unix-ms timestamp, `2026-12-07 05:40:12 UTC`.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm), for days since 1970-01-01.
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Who is signed in, for the page header.
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    pub approver: &'a str,
    pub csrf: &'a str,
}

/// The whole page around `body`.
pub fn page(title: &str, viewer: Option<Viewer<'_>>, body: &str) -> String {
    let nav = match viewer {
        Some(v) => format!(
            r#"<nav aria-label="Main"><a href="/console/proposals">Pending</a> <a href="/console/decisions">Decisions</a></nav>
<form class="signout" method="post" action="/console/signout"><input type="hidden" name="csrf" value="{csrf}"><span class="who">Signed in as <strong>{who}</strong></span> <button type="submit">Sign out</button></form>"#,
            csrf = esc(v.csrf),
            who = esc(v.approver)
        ),
        None => String::new(),
    };
    let csrf_meta = viewer
        .map(|v| format!(r#"<meta name="seb-csrf" content="{}">"#, esc(v.csrf)))
        .unwrap_or_default();
    format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
{csrf_meta}
<title>{title} · SEB console</title>
<link rel="icon" href="/console/assets/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/console/assets/console.css">
<script src="/console/assets/console.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header><span class="brand">SEB approvals</span>{nav}</header>
<main id="main" tabindex="-1">
{body}
</main>
</body>
</html>
"##,
        title = esc(title)
    )
}

/// The sign-in page: nothing but the button (no data before sign-in).
pub fn signin(message: Option<&str>) -> String {
    let msg = message.map(|m| format!(r#"<p class="notice">{}</p>"#, esc(m))).unwrap_or_default();
    page(
        "Sign in",
        None,
        &format!(
            r#"<h1>Sign in</h1>
{msg}
<p>Approvers sign in with the passkey they enrolled.</p>
<button type="button" id="signin" class="primary">Sign in with a passkey</button>
<p id="status" role="status" aria-live="polite"></p>
<noscript><p class="notice">Passkeys need JavaScript: this page's only script is served by this console.</p></noscript>"#
        ),
    )
}

/// An error page.
pub fn error(viewer: Option<Viewer<'_>>, title: &str, detail: &str) -> String {
    page(
        title,
        viewer,
        &format!(
            r#"<h1>{}</h1><p role="alert">{}</p><p><a href="/console/proposals">Back to pending proposals</a></p>"#,
            esc(title),
            esc(detail)
        ),
    )
}

/// The list filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub level: Option<u8>,
    pub agent: Option<String>,
    pub platform: Option<String>,
}

impl Filter {
    /// Whether a proposal view passes.
    pub fn matches(&self, v: &Value) -> bool {
        self.level.is_none_or(|l| u(v, "/score/level") == Some(u64::from(l)))
            && self.agent.as_deref().is_none_or(|a| s(v, "/agent") == a)
            && self.platform.as_deref().is_none_or(|p| s(v, "/proposal/platform") == p)
    }
}

fn level(v: &Value) -> String {
    u(v, "/score/level").map_or_else(|| "–".into(), |l| format!("L{l}"))
}

fn needed(v: &Value) -> (u64, u64, u64, u64) {
    let need_v = u(v, "/requirement/validators").unwrap_or(0);
    let need_h = u(v, "/requirement/humans").unwrap_or(0);
    let approvals = v.get("approvals").and_then(Value::as_array).cloned().unwrap_or_default();
    let count = |role: &str| {
        let n = approvals
            .iter()
            .filter(|a| s(a, "/decision") == "approve" && s(a, "/role") == role)
            .count();
        u64::try_from(n).unwrap_or(u64::MAX)
    };
    (count("validator"), need_v, count("human"), need_h)
}

/// `1 of 2 humans`, `0 of 1 validator`.
fn progress(v: &Value) -> String {
    let (gv, nv, gh, nh) = needed(v);
    let mut parts = Vec::new();
    if nh > 0 {
        parts.push(format!("{} of {nh} human{}", gh.min(nh), if nh == 1 { "" } else { "s" }));
    }
    if nv > 0 {
        parts.push(format!("{} of {nv} validator{}", gv.min(nv), if nv == 1 { "" } else { "s" }));
    }
    if parts.is_empty() { "none needed".into() } else { parts.join(", ") }
}

fn target_text(v: &Value) -> String {
    let t = v.pointer("/contract/target").or_else(|| v.pointer("/proposal/target"));
    match t {
        Some(Value::Object(m)) => {
            let kind = m.get("kind").and_then(Value::as_str);
            let ns = m.get("namespace").and_then(Value::as_str);
            let name = m.get("name").and_then(Value::as_str);
            match (kind, name) {
                (Some(k), Some(n)) => match ns {
                    Some(ns) => format!("{k} {ns}/{n}"),
                    None => format!("{k} {n}"),
                },
                _ => Value::Object(m.clone()).to_string(),
            }
        }
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn select(name: &str, label: &str, current: Option<&str>, options: &[String]) -> String {
    let mut o = format!(
        r#"<label>{label} <select name="{name}"><option value="">any</option>"#,
        label = esc(label),
        name = esc(name)
    );
    for opt in options {
        let sel = if current == Some(opt.as_str()) { " selected" } else { "" };
        let _ = write!(o, r#"<option value="{v}"{sel}>{v}</option>"#, v = esc(opt));
    }
    o.push_str("</select></label>");
    o
}

/// The pending list. `views` are pending proposal views, oldest first; `all_agents` and
/// `all_platforms` fill the filter choices.
pub fn pending(
    viewer: Viewer<'_>,
    views: &[Value],
    filter: &Filter,
    all_agents: &[String],
    all_platforms: &[String],
    now_ms: u64,
) -> String {
    let levels: Vec<String> = (0..=5).map(|l| l.to_string()).collect();
    let lvl = filter.level.map(|l| l.to_string());
    let mut b = String::from("<h1>Pending proposals</h1>");
    let _ = write!(
        b,
        r#"<form class="filters" method="get" action="/console/proposals" role="search" aria-label="Filter proposals">{}{}{}<button type="submit">Filter</button> <a href="/console/proposals">Clear</a></form>"#,
        select("level", "Level", lvl.as_deref(), &levels),
        select("agent", "Agent", filter.agent.as_deref(), all_agents),
        select("platform", "Platform", filter.platform.as_deref(), all_platforms),
    );
    let shown: Vec<&Value> = views.iter().filter(|v| filter.matches(v)).collect();
    if shown.is_empty() {
        b.push_str(r#"<p class="empty">Nothing is waiting for approvers.</p>"#);
        return page("Pending", Some(viewer), &b);
    }
    b.push_str(r#"<table class="list"><caption>Waiting for approvers</caption><thead><tr><th scope="col">Proposal</th><th scope="col">Agent</th><th scope="col">Change</th><th scope="col">Level</th><th scope="col">Approvals</th><th scope="col">Time left</th></tr></thead><tbody>"#);
    for v in shown {
        let id = s(v, "/proposal_id");
        let _ = write!(
            b,
            r#"<tr><td data-h="Proposal"><a href="/console/proposals/{href}">{id}</a></td><td data-h="Agent">{agent}</td><td data-h="Change">{platform} <code>{op}</code> {target}</td><td data-h="Level"><span class="lvl l{lnum}">{level}</span></td><td data-h="Approvals">{progress}</td><td data-h="Time left">{left}</td></tr>"#,
            href = url_enc(id),
            id = esc(id),
            agent = esc(s(v, "/agent")),
            platform = esc(s(v, "/proposal/platform")),
            op = esc(s(v, "/proposal/op")),
            target = esc(&target_text(v)),
            lnum = u(v, "/score/level").unwrap_or(0),
            level = esc(&level(v)),
            progress = esc(&progress(v)),
            left = esc(&time_left(u(v, "/deadline_ms"), now_ms)),
        );
    }
    b.push_str("</tbody></table>");
    page("Pending", Some(viewer), &b)
}

fn opt(v: Option<&Value>) -> String {
    match v {
        None => r#"<span class="absent">absent</span>"#.into(),
        Some(x) => format!("<code>{}</code>", jv(x)),
    }
}

fn factors(v: &Value) -> String {
    let Some(f) = v.pointer("/score/factors").and_then(Value::as_object) else {
        return String::new();
    };
    let mut o =
        String::from(r#"<table class="factors"><caption>Score factors (0–1)</caption><tbody>"#);
    for (name, x) in f {
        let m = x.as_u64().unwrap_or(0);
        let _ = write!(
            o,
            r#"<tr><th scope="row">{n}</th><td><meter min="0" max="1000" value="{m}">{m}</meter> {val}</td></tr>"#,
            n = esc(&name.replace('_', " ")),
            val = esc(&format!("{}.{:03}", m / 1000, m % 1000)),
        );
    }
    o.push_str("</tbody></table>");
    o
}

fn list_items(items: Option<&Value>) -> String {
    let items: Vec<&Value> =
        items.and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
    if items.is_empty() {
        return "<p class=\"empty\">none</p>".into();
    }
    let mut o = String::from("<ul>");
    for i in items {
        let _ = write!(o, "<li>{}</li>", jv(i));
    }
    o.push_str("</ul>");
    o
}

fn approvals_table(v: &Value) -> String {
    let approvals = v.get("approvals").and_then(Value::as_array).cloned().unwrap_or_default();
    if approvals.is_empty() {
        return r#"<p class="empty">No approvals yet.</p>"#.into();
    }
    let mut o = String::from(
        r#"<table class="approvals"><thead><tr><th scope="col">Approver</th><th scope="col">Role</th><th scope="col">Decision</th><th scope="col">Comment</th><th scope="col">At</th></tr></thead><tbody>"#,
    );
    for a in &approvals {
        let _ = write!(
            o,
            r#"<tr><td data-h="Approver">{}</td><td data-h="Role">{}</td><td data-h="Decision"><span class="dec {d}">{d}</span></td><td data-h="Comment">{}</td><td data-h="At">{}</td></tr>"#,
            esc(s(a, "/approver")),
            esc(s(a, "/role")),
            esc(s(a, "/comment")),
            esc(&u(a, "/at_ms").map(utc).unwrap_or_default()),
            d = esc(s(a, "/decision")),
        );
    }
    o.push_str("</tbody></table>");
    o
}

fn related(v: &Value) -> String {
    // Net-effect scoring (spec 5.2) adds the related recent changes to the view.
    let r = v.get("related").or_else(|| v.pointer("/net_effect/related"));
    let items: Vec<&Value> =
        r.and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
    let mut o = String::from(
        r#"<section aria-labelledby="h-related"><h2 id="h-related">Related recent changes</h2>"#,
    );
    if items.is_empty() {
        o.push_str(r#"<p class="empty">None recorded for this scope.</p>"#);
    } else {
        o.push_str("<ul>");
        for i in items {
            let id = i.get("proposal_id").and_then(Value::as_str);
            let what = match id {
                Some(id) => format!(
                    r#"<a href="/console/proposals/{}">{}</a> {}"#,
                    url_enc(id),
                    esc(id),
                    esc(&i.get("at_ms").and_then(Value::as_u64).map(utc).unwrap_or_default())
                ),
                None => String::new(),
            };
            let _ = write!(o, "<li>{what} <code>{}</code></li>", jv(i));
        }
        o.push_str("</ul>");
    }
    // The two scores of net-effect scoring: alone, and as the net effect of the window.
    if let (Some(alone), Some(net)) = (
        v.pointer("/net_effect/alone/level").and_then(Value::as_u64),
        v.pointer("/net_effect/net_score/level").and_then(Value::as_u64),
    ) {
        let decided = v.pointer("/net_effect/decided_by").and_then(Value::as_str).unwrap_or("");
        let count = v.pointer("/net_effect/related_count").and_then(Value::as_u64).unwrap_or(0);
        let _ = write!(
            o,
            "<p>Scored alone: <strong>L{alone}</strong>; as the net effect of the window \
             ({count} related): <strong>L{net}</strong>; decided by <code>{}</code>.</p>",
            esc(decided)
        );
    }
    o.push_str("</section>");
    o
}

/// What the signed-in approver may do on this proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decidable {
    /// Pending, not yet decided by this approver.
    Yes,
    /// Why not (already decided, not pending, expired, own agent…).
    No(String),
}

/// The proposal page.
pub fn proposal(viewer: Viewer<'_>, v: &Value, decidable: &Decidable, now_ms: u64) -> String {
    let id = s(v, "/proposal_id");
    let status = s(v, "/status");
    let mut b = String::new();
    let _ = write!(
        b,
        r#"<h1>Proposal <code>{id}</code></h1>
<dl class="summary">
<dt>Status</dt><dd><span class="status {status}" id="status-value">{status}</span></dd>
<dt>Agent</dt><dd>{agent}</dd>
<dt>Change</dt><dd>{platform} <code>{op}</code> {target}</dd>
<dt>Level</dt><dd><span class="lvl l{lnum}">{level}</span> (score {score})</dd>
<dt>Path</dt><dd>{path}</dd>
<dt>Approvals</dt><dd id="progress">{progress}</dd>
<dt>Time left</dt><dd>{left}</dd>
<dt>Received</dt><dd>{received}</dd>
</dl>"#,
        id = esc(id),
        status = esc(status),
        agent = esc(s(v, "/agent")),
        platform = esc(s(v, "/proposal/platform")),
        op = esc(s(v, "/proposal/op")),
        target = esc(&target_text(v)),
        lnum = u(v, "/score/level").unwrap_or(0),
        level = esc(&level(v)),
        score = esc(&u(v, "/score/score_milli")
            .map_or_else(|| "–".into(), |m| format!("{}.{:03}", m / 1000, m % 1000))),
        path = esc(s(v, "/requirement/path")),
        progress = esc(&progress(v)),
        left = esc(&if status == "pending" {
            time_left(u(v, "/deadline_ms"), now_ms)
        } else {
            "–".into()
        }),
        received = esc(&u(v, "/received_at_ms").map(utc).unwrap_or_default()),
    );
    if let Some(r) = v.get("reason").and_then(Value::as_str) {
        let _ =
            write!(b, r#"<p class="reason" role="note"><strong>Reason:</strong> {}</p>"#, esc(r));
    }
    // What the change does.
    b.push_str(r#"<section aria-labelledby="h-effect"><h2 id="h-effect">What the change does to the live object</h2>"#);
    let projection: std::collections::BTreeMap<String, Value> = v
        .pointer("/evidence/projection")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, x)| (k.clone(), x.clone())).collect())
        .unwrap_or_default();
    let params = v
        .pointer("/contract/params")
        .or_else(|| v.pointer("/proposal/params"))
        .cloned()
        .unwrap_or(Value::Null);
    match effect::changes(s(v, "/proposal/platform"), s(v, "/proposal/op"), &params, &projection) {
        Some(cs) if !cs.is_empty() => {
            b.push_str(r#"<table class="effect"><thead><tr><th scope="col">Field</th><th scope="col">Before (observed)</th><th scope="col" aria-label="becomes"></th><th scope="col">After</th></tr></thead><tbody>"#);
            for c in &cs {
                let _ = write!(
                    b,
                    r#"<tr><th scope="row"><code>{}</code></th><td data-h="Before">{}</td><td class="arrow" aria-hidden="true">→</td><td data-h="After">{}</td></tr>"#,
                    esc(&c.field),
                    opt(c.before.as_ref()),
                    opt(c.after.as_ref())
                );
            }
            b.push_str("</tbody></table>");
        }
        Some(_) => b.push_str(r#"<p class="empty">The operation leaves the observed fields as they are.</p>"#),
        None => b.push_str(r#"<p class="empty">The effect cannot be computed for this operation: compare the params with the evidence below.</p>"#),
    }
    let _ = write!(
        b,
        r#"<p class="meta">Observed {} · evidence digest <code>{}</code></p></section>"#,
        esc(&u(v, "/evidence/observed_at_ms").map(utc).unwrap_or_default()),
        esc(s(v, "/evidence/digest"))
    );
    // Score.
    let _ = write!(
        b,
        r#"<section aria-labelledby="h-score"><h2 id="h-score">Level {level}: why</h2>{}<h3>Rules that set the factors</h3>{}</section>"#,
        factors(v),
        list_items(v.pointer("/score/reasons")),
        level = esc(&level(v)),
    );
    // Policy.
    let _ = write!(
        b,
        r#"<section aria-labelledby="h-policy"><h2 id="h-policy">Policies that decided the path</h2><p>Policy epoch {epoch}, digest <code>{digest}</code>; escalations: {esc_}</p>{reasons}{errors}</section>"#,
        epoch = u(v, "/policy/policy_epoch").unwrap_or(0),
        digest = esc(s(v, "/policy/policy_digest")),
        esc_ = esc(&v
            .pointer("/policy/escalations")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
            .filter(|x| !x.is_empty())
            .unwrap_or_else(|| "none".into())),
        reasons = list_items(v.pointer("/policy/reasons")),
        errors =
            if v.pointer("/policy/errors").and_then(Value::as_array).is_some_and(|a| !a.is_empty())
            {
                format!(
                    "<h3>Evaluation errors (each made the outcome stricter)</h3>{}",
                    list_items(v.pointer("/policy/errors"))
                )
            } else {
                String::new()
            },
    );
    b.push_str(&related(v));
    // Approvals.
    let _ = write!(
        b,
        r#"<section aria-labelledby="h-approvals"><h2 id="h-approvals">Approvals: {}</h2>{}</section>"#,
        esc(&progress(v)),
        approvals_table(v)
    );
    // Rationale: untrusted.
    let _ = write!(
        b,
        r#"<section aria-labelledby="h-rationale" class="untrusted"><h2 id="h-rationale">The agent's rationale <span class="tag">untrusted text written by the agent</span></h2><blockquote><pre>{}</pre></blockquote></section>"#,
        esc(s(v, "/proposal/rationale"))
    );
    // Contract.
    let _ = write!(
        b,
        r#"<section aria-labelledby="h-contract"><h2 id="h-contract">Contract</h2><p>Digest <code id="contract-digest">{}</code></p><details><summary>Contract as admitted</summary><pre>{}</pre></details><details><summary>Evidence (observed projection)</summary><pre>{}</pre></details></section>"#,
        esc(s(v, "/contract_digest")),
        pretty(v.get("contract").unwrap_or(&Value::Null)),
        pretty(v.pointer("/evidence/projection").unwrap_or(&Value::Null)),
    );
    // Decide.
    b.push_str(r#"<section aria-labelledby="h-decide"><h2 id="h-decide">Your decision</h2>"#);
    match decidable {
        Decidable::Yes => {
            let _ = write!(
                b,
                r#"<form id="decide" data-proposal="{id}" method="post" action="/console/proposals/{href}/decision">
<label for="comment">Reason (required to deny; recorded and shown to the agent)</label>
<textarea id="comment" name="comment" rows="3" maxlength="1000"></textarea>
<div class="buttons"><button type="submit" name="decision" value="approve" class="primary">Approve with passkey</button> <button type="submit" name="decision" value="deny" class="danger">Deny with passkey</button></div>
<p id="decide-status" role="status" aria-live="polite"></p>
</form>"#,
                id = esc(id),
                href = url_enc(id)
            );
        }
        Decidable::No(why) => {
            let _ = write!(b, r#"<p class="notice" id="not-decidable">{}</p>"#, esc(why));
        }
    }
    b.push_str("</section>");
    if let Some(r) = v.get("record_id").and_then(Value::as_str) {
        let _ = write!(
            b,
            r#"<p class="meta">Ledger record of the decision: <code>{}</code></p>"#,
            esc(r)
        );
    }
    if let Some(c) = v.get("cid").and_then(Value::as_str) {
        let _ = write!(b, r#"<p class="meta">Certificate id: <code>{}</code></p>"#, esc(c));
    }
    page(&format!("Proposal {id}"), Some(viewer), &b)
}

/// Past decisions, newest first.
pub fn decisions(viewer: Viewer<'_>, views: &[Value]) -> String {
    let mut b = String::from("<h1>Past decisions</h1>");
    if views.is_empty() {
        b.push_str(r#"<p class="empty">No decisions yet.</p>"#);
        return page("Decisions", Some(viewer), &b);
    }
    b.push_str(r#"<table class="list"><caption>Decided proposals and their ledger records</caption><thead><tr><th scope="col">Proposal</th><th scope="col">Agent</th><th scope="col">Change</th><th scope="col">Level</th><th scope="col">Outcome</th><th scope="col">Approvers</th><th scope="col">Ledger record</th></tr></thead><tbody>"#);
    for v in views {
        let id = s(v, "/proposal_id");
        let approvers: Vec<String> = v
            .get("approvals")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter().map(|x| format!("{} ({})", s(x, "/approver"), s(x, "/decision"))).collect()
            })
            .unwrap_or_default();
        let outcome = match v.get("reason").and_then(Value::as_str) {
            Some(r) => format!("{}: {r}", s(v, "/status")),
            None => s(v, "/status").to_owned(),
        };
        let _ = write!(
            b,
            r#"<tr><td data-h="Proposal"><a href="/console/proposals/{href}">{id}</a></td><td data-h="Agent">{agent}</td><td data-h="Change">{platform} <code>{op}</code> {target}</td><td data-h="Level">{level}</td><td data-h="Outcome">{outcome}</td><td data-h="Approvers">{approvers}</td><td data-h="Ledger record"><code>{record}</code></td></tr>"#,
            href = url_enc(id),
            id = esc(id),
            agent = esc(s(v, "/agent")),
            platform = esc(s(v, "/proposal/platform")),
            op = esc(s(v, "/proposal/op")),
            target = esc(&target_text(v)),
            level = esc(&level(v)),
            outcome = esc(&outcome),
            approvers = esc(&approvers.join(", ")),
            record = esc(s(v, "/record_id")),
        );
    }
    b.push_str("</tbody></table>");
    page("Decisions", Some(viewer), &b)
}

/// The enrolment page: the script reads the invitation from the enrolment route with the
/// token in this page's address and registers a passkey.
pub fn enrol(token: &str) -> String {
    page(
        "Enrol a passkey",
        None,
        &format!(
            r#"<h1>Enrol a passkey</h1>
<div id="enrol" data-token="{}">
<p id="invite">Reading the invitation…</p>
<button type="button" id="enrol-button" class="primary" disabled>Create a passkey for this console</button>
<p id="status" role="status" aria-live="polite"></p>
</div>
<noscript><p class="notice">Passkeys need JavaScript: this page's only script is served by this console.</p></noscript>"#,
            esc(token)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const V: Viewer<'static> = Viewer { approver: "alice", csrf: "tok" };

    fn view() -> Value {
        json!({
            "proposal_id": "p-1", "agent": "bot<script>", "status": "pending",
            "proposal": {"platform": "kubernetes", "op": "scale", "rationale": "</pre><script>alert(1)</script>",
                         "target": {"kind":"Deployment","namespace":"prod","name":"web"}, "params": {"replicas": 6}},
            "received_at_ms": 1_000, "deadline_ms": 61_000,
            "contract": {"platform":"kubernetes","op":"scale","target":{"kind":"Deployment","namespace":"prod","name":"web"},"params":{"replicas":6},"constraints":[],"risk_level":4},
            "contract_digest": "sha256:00",
            "evidence": {"digest":"sha256:11","observed_at_ms":1000,"projection":{"":{"spec":{"replicas":2}}}},
            "score": {"level": 4, "score_milli": 700, "factors": {"blast_radius": 700, "uncertainty": 0}, "reasons": ["sets 6 replicas"]},
            "policy": {"permitted": true, "escalations": ["human"], "reasons": ["prod-needs-humans"], "errors": [], "policy_epoch": 1, "policy_digest": "sha256:22"},
            "requirement": {"path": "human", "validators": 0, "humans": 2},
            "approvals": [{"approver":"alice","role":"human","decision":"approve","comment":"ok","at_ms":2000}]
        })
    }

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(url_enc("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn the_proposal_page_shows_the_effect_score_policy_and_progress_escaped() {
        let html = proposal(V, &view(), &Decidable::Yes, 1_000);
        assert!(html.contains("<code>spec.replicas</code>"), "{html}");
        assert!(html.contains("<code>2</code></td><td class=\"arrow\" aria-hidden=\"true\">→</td><td data-h=\"After\"><code>6</code>"));
        assert!(html.contains("1 of 2 humans"));
        assert!(html.contains("prod-needs-humans") && html.contains("sets 6 replicas"));
        assert!(html.contains("untrusted text written by the agent"));
        assert!(!html.contains("<script>alert"), "rationale must be escaped");
        assert!(!html.contains("bot<script>"));
        assert!(html.contains("&lt;/pre&gt;&lt;script&gt;"));
        assert!(html.contains("1 min 0 s left"));
        assert!(html.contains(r#"id="decide""#));
        // No inline script or style anywhere.
        assert!(!html.contains("<script>") && !html.contains("style=") && !html.contains(" on"));
        let html = proposal(V, &view(), &Decidable::No("you already decided".into()), 1_000);
        assert!(!html.contains(r#"id="decide""#) && html.contains("you already decided"));
    }

    #[test]
    fn related_changes_and_both_net_effect_scores_are_shown() {
        let mut v = view();
        v["net_effect"] = json!({
            "related": [{"proposal_id": "p-0<b>", "cid": "c", "op": "scale", "at_ms": 500,
                         "risk_level": 2, "fields": {"replicas": {"delta": 1}}, "deletes": 0, "creates": 0}],
            "related_count": 1,
            "alone": {"level": 2, "score_milli": 200, "permitted": true, "escalations": [], "requirement": null},
            "net_score": {"level": 4, "score_milli": 700, "permitted": true, "escalations": [], "requirement": null},
            "decided_by": "net"
        });
        let html = proposal(V, &v, &Decidable::Yes, 1_000);
        assert!(html.contains("Related recent changes"), "{html}");
        assert!(html.contains("p-0&lt;b&gt;") && !html.contains("p-0<b>"), "{html}");
        assert!(html.contains("Scored alone: <strong>L2</strong>"), "{html}");
        assert!(
            html.contains("(1 related): <strong>L4</strong>; decided by <code>net</code>"),
            "{html}"
        );
    }

    #[test]
    fn the_list_filters_by_level_agent_and_platform() {
        let v = view();
        let f = |level, agent: Option<&str>, platform: Option<&str>| Filter {
            level,
            agent: agent.map(str::to_owned),
            platform: platform.map(str::to_owned),
        };
        assert!(f(Some(4), None, None).matches(&v));
        assert!(!f(Some(3), None, None).matches(&v));
        assert!(f(None, Some("bot<script>"), Some("kubernetes")).matches(&v));
        assert!(!f(None, None, Some("aws")).matches(&v));
        let html = pending(
            V,
            std::slice::from_ref(&v),
            &f(None, None, None),
            &["bot<script>".into()],
            &["kubernetes".into()],
            0,
        );
        assert!(html.contains("/console/proposals/p-1") && html.contains("1 min 1 s left"));
        assert!(!html.contains("bot<script>"));
        let html = pending(V, &[v], &f(Some(2), None, None), &[], &[], 0);
        assert!(html.contains("Nothing is waiting"));
    }

    #[test]
    fn times() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_796_615_012_000), "2026-12-07 03:43:32 UTC");
        assert_eq!(time_left(Some(10), 20), "expired");
        assert_eq!(time_left(Some(3_723_000), 0), "1 h 2 min left");
        assert_eq!(time_left(None, 0), "no deadline");
    }

    #[test]
    fn the_sign_in_page_shows_no_data() {
        let html = signin(Some("<b>"));
        assert!(
            html.contains("&lt;b&gt;") && !html.contains("seb-csrf") && !html.contains("Pending")
        );
    }
}
