//! `[admission.notify]`: a JSON message to a configured URL when a proposal starts waiting for
//! approvers and when such a proposal is decided (certified, denied, timed out), each with the
//! console link, so approvers hear about it in their chat or paging tool.
//!
//! ```toml
//! [admission.notify]
//! url = "https://hooks.example.com/seb"   # https, or http only to a loopback address
//! bearer_token_file = "notify.token"       # optional: `Authorization: Bearer <token>`
//! timeout_ms = 5000                        # each attempt
//! ```
//!
//! The message carries no params and no evidence (they may be sensitive): only who proposed
//! what on which target, the level, what is still needed, the outcome and the link. Delivery is
//! best effort and never blocks or changes a decision: messages queue in memory (at most
//! [`QUEUE`]); each is tried three times (after 0, 1 and 4 s); a failure is logged. A replica
//! announces the proposals it saw start waiting, and the decision of any proposal it announced
//! or that had approvals, so with several replicas each event is sent once in the usual case.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::error::AdmissionError;
use crate::service::{ProposalStatus, ProposalView};

/// Most messages waiting for delivery; more are dropped (and logged).
pub const QUEUE: usize = 1024;

/// `[admission.notify]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Where to POST.
    pub url: String,
    /// A file holding a bearer token (trimmed).
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// Timeout of each attempt.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_timeout() -> u64 {
    5000
}

impl NotifyConfig {
    /// The URL must be https, or http to a loopback host (a local relay, tests).
    pub fn validate(&self) -> Result<(), AdmissionError> {
        let bad = |m: String| Err(AdmissionError::Config(format!("admission.notify: {m}")));
        let Some((scheme, rest)) = self.url.split_once("://") else {
            return bad(format!("url `{}` is not absolute", self.url));
        };
        let host = rest.split(['/', '?']).next().unwrap_or("");
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        let hostname = if host.starts_with('[') {
            host.split(']').next().map(|h| format!("{h}]")).unwrap_or_default()
        } else {
            host.split(':').next().unwrap_or("").to_owned()
        };
        let loopback =
            matches!(hostname.as_str(), "localhost" | "[::1]") || hostname.starts_with("127.");
        match scheme {
            "https" if !hostname.is_empty() => {}
            "http" if loopback => {}
            _ => return bad(format!("url `{}` must be https (http only to loopback)", self.url)),
        }
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            return bad("timeout_ms must be within 1..=60000".into());
        }
        Ok(())
    }

    /// Resolve a relative token file against `base`.
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        if let Some(p) = &mut self.bearer_token_file
            && p.is_relative()
        {
            *p = base.join(&*p);
        }
    }
}

/// What happened to a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// It waits for approvers.
    Waiting,
    /// It was certified, denied or timed out after waiting.
    Decided,
}

impl Event {
    /// The message's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "seb.proposal.waiting",
            Self::Decided => "seb.proposal.decided",
        }
    }
}

/// Receives every state change of a proposal (set with [`crate::Admission::set_events`]).
pub trait ProposalEvents: Send + Sync {
    /// `view` is the proposal after the change (sensitive values already redacted).
    fn changed(&self, view: &ProposalView);
}

/// The message for `view` (pure).
pub fn message(event: Event, view: &ProposalView, console_url: &str, at_ms: u64) -> Value {
    let link = format!(
        "{}/console/proposals/{}",
        console_url.trim_end_matches('/'),
        crate::console::render::url_enc(&view.proposal_id)
    );
    let target = view.contract.as_ref().map_or(&view.proposal.target, |c| &c.target);
    json!({
        "type": event.as_str(),
        "proposal_id": view.proposal_id,
        "agent": view.agent,
        "platform": view.proposal.platform,
        "op": view.proposal.op,
        "target": target,
        "risk_level": view.score.as_ref().map(|s| s.level),
        "path": view.requirement.map(|r| r.path),
        "needed": view.requirement.map(|r| json!({"validators": r.validators, "humans": r.humans})),
        "approvals": view.approvals.iter().map(|a| json!({"approver": a.approver, "decision": a.decision, "comment": a.comment})).collect::<Vec<_>>(),
        "status": view.status.as_str(),
        "reason": view.reason,
        "deadline_ms": view.deadline_ms,
        "record_id": view.record_id,
        "cid": view.cid,
        "console_url": link,
        "at_ms": at_ms,
    })
}

/// Posts messages to `[admission.notify] url` from a background task.
pub struct Notifier {
    console_url: String,
    tx: mpsc::Sender<Value>,
    announced: Mutex<BTreeSet<String>>,
    clock: Arc<dyn crate::clock::Clock>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").field("console_url", &self.console_url).finish_non_exhaustive()
    }
}

impl Notifier {
    /// Start the delivery task (needs a Tokio runtime). `console_url` is the console's base
    /// URL (`[admission] public_url`).
    pub fn start(
        cfg: &NotifyConfig,
        console_url: &str,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Result<Arc<Self>, AdmissionError> {
        cfg.validate()?;
        let token = match &cfg.bearer_token_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| {
                        AdmissionError::Config(format!(
                            "admission.notify: reading `{}`: {e}",
                            p.display()
                        ))
                    })?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AdmissionError::Config(format!("admission.notify: client: {e}")))?;
        let (tx, mut rx) = mpsc::channel::<Value>(QUEUE);
        let url = cfg.url.clone();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                deliver(&client, &url, token.as_deref(), &msg).await;
            }
        });
        Ok(Arc::new(Self {
            console_url: console_url.to_owned(),
            tx,
            announced: Mutex::new(BTreeSet::new()),
            clock,
        }))
    }

    fn send(&self, event: Event, view: &ProposalView) {
        let at = self.clock.now_ms().unwrap_or(0);
        let msg = message(event, view, &self.console_url, at);
        if self.tx.try_send(msg).is_err() {
            warn!(proposal_id = %view.proposal_id, event = event.as_str(), "notification queue full: message dropped");
        }
    }
}

impl ProposalEvents for Notifier {
    fn changed(&self, view: &ProposalView) {
        let Ok(mut announced) = self.announced.lock() else { return };
        let waits = view.requirement.is_some_and(|r| r.needs_approvals());
        match view.status {
            ProposalStatus::Pending if waits && view.contract.is_some() => {
                if announced.len() >= 100_000 {
                    announced.clear();
                }
                if announced.insert(view.proposal_id.clone()) {
                    drop(announced);
                    self.send(Event::Waiting, view);
                }
            }
            ProposalStatus::Pending => {}
            _ => {
                let was = announced.remove(&view.proposal_id);
                drop(announced);
                // `waits`: it needed approvers, so it was announced as waiting (by this
                // replica or another one: only the replica whose compare-and-set decided it
                // is told of the decision).
                if was || waits || !view.approvals.is_empty() {
                    self.send(Event::Decided, view);
                }
            }
        }
    }
}

async fn deliver(client: &reqwest::Client, url: &str, token: Option<&str>, msg: &Value) {
    let id = msg.get("proposal_id").and_then(Value::as_str).unwrap_or("");
    let kind = msg.get("type").and_then(Value::as_str).unwrap_or("");
    for (attempt, wait_s) in [0u64, 1, 4].into_iter().enumerate() {
        if wait_s > 0 {
            tokio::time::sleep(Duration::from_secs(wait_s)).await;
        }
        let mut req = client.post(url).json(msg);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                info!(proposal_id = %id, event = kind, "notification delivered");
                return;
            }
            Ok(r) => {
                warn!(proposal_id = %id, event = kind, attempt, status = r.status().as_u16(), "notification refused by the receiver");
            }
            Err(e) => {
                warn!(proposal_id = %id, event = kind, attempt, error = %e, "notification not delivered");
            }
        }
    }
    warn!(proposal_id = %id, event = kind, "notification given up after 3 attempts");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> NotifyConfig {
        NotifyConfig { url: url.into(), bearer_token_file: None, timeout_ms: 5000 }
    }

    #[test]
    fn urls_must_be_https_or_loopback_http() {
        assert!(cfg("https://hooks.example.com/x").validate().is_ok());
        assert!(cfg("http://127.0.0.1:9000/x").validate().is_ok());
        assert!(cfg("http://localhost/x").validate().is_ok());
        assert!(cfg("http://[::1]:80/").validate().is_ok());
        assert!(cfg("http://hooks.example.com/x").validate().is_err());
        assert!(cfg("http://localhost.evil.com/x").validate().is_err());
        assert!(cfg("http://127.0.0.1@evil.com/x").validate().is_err());
        assert!(cfg("ftp://x").validate().is_err());
        assert!(cfg("hooks").validate().is_err());
        assert!(cfg("https://").validate().is_err());
    }
}
