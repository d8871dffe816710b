//! Conformance cases of [`NetEffectLog`](crate::NetEffectLog).

use std::sync::Arc;

use crate::net_effect::{CertifiedChange, NetEffectAppend};
use crate::{Store, StoreError};

fn change(agent: &str, scope: &str, cid: &str, at_ms: u64) -> CertifiedChange {
    CertifiedChange {
        seq: 0,
        agent: agent.into(),
        scope_key: scope.into(),
        proposal_id: format!("p-{cid}"),
        cid: cid.into(),
        at_ms,
        risk_level: 1,
        change: format!("{{\"cid\":\"{cid}\"}}"),
    }
}

async fn append(
    store: &dyn Store,
    c: CertifiedChange,
    since: u64,
    seen: Option<u64>,
) -> NetEffectAppend {
    let what = c.cid.clone();
    store
        .net_effect_append(c, since, seen)
        .await
        .unwrap_or_else(|e| panic!("net_effect_append `{what}` failed: {e}"))
}

async fn window(store: &dyn Store, agent: &str, scope: &str, since: u64) -> Vec<CertifiedChange> {
    store
        .net_effect_window(agent, scope, since)
        .await
        .unwrap_or_else(|e| panic!("net_effect_window failed: {e}"))
}

/// A change appended against the window its caller read is listed, oldest first, with its
/// fields; windows are per agent and scope and start at `since_ms`.
pub async fn net_effect_window_lists_changes_per_agent_and_scope(store: Arc<dyn Store>) {
    let s = store.as_ref();
    assert!(window(s, "a", "k", 0).await.is_empty(), "a fresh store has an empty window");
    let NetEffectAppend::Appended { seq: s1 } =
        append(s, change("a", "k", "c1", 1_000), 0, None).await
    else {
        panic!("first append to an empty window conflicted");
    };
    let NetEffectAppend::Appended { seq: s2 } =
        append(s, change("a", "k", "c2", 2_000), 0, Some(s1)).await
    else {
        panic!("append after the seen seq conflicted");
    };
    assert!(s2 > s1, "seq must increase ({s1} then {s2})");
    append(s, change("b", "k", "c3", 2_000), 0, None).await;
    append(s, change("a", "other", "c4", 2_000), 0, None).await;
    let w = window(s, "a", "k", 0).await;
    let cids: Vec<&str> = w.iter().map(|c| c.cid.as_str()).collect();
    assert_eq!(cids, ["c1", "c2"], "window of (a, k)");
    let first = &w[0];
    assert_eq!(
        (
            first.seq,
            first.proposal_id.as_str(),
            first.at_ms,
            first.risk_level,
            first.change.as_str()
        ),
        (s1, "p-c1", 1_000, 1, "{\"cid\":\"c1\"}"),
        "stored fields come back as written"
    );
    let later: Vec<String> = window(s, "a", "k", 1_500).await.into_iter().map(|c| c.cid).collect();
    assert_eq!(later, ["c2"], "since_ms bounds the window");
}

/// Compare-and-append: a caller that read the window before another change landed in it
/// gets `Conflict` and nothing is written; a change outside the window (older than
/// `since_ms`, another agent, another scope) is no conflict.
pub async fn net_effect_append_conflicts_when_the_window_changed(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let NetEffectAppend::Appended { seq: s1 } =
        append(s, change("a", "k", "c1", 1_000), 0, None).await
    else {
        panic!("first append conflicted");
    };
    // Another caller that read the empty window before c1 landed.
    assert_eq!(
        append(s, change("a", "k", "late", 1_100), 0, None).await,
        NetEffectAppend::Conflict,
        "an append against a stale (empty) window must conflict"
    );
    assert_eq!(window(s, "a", "k", 0).await.len(), 1, "a conflict writes nothing");
    // c1 is older than this caller's window: no conflict.
    assert!(matches!(
        append(s, change("a", "k", "c2", 9_000), 5_000, None).await,
        NetEffectAppend::Appended { .. }
    ));
    // Other agents and scopes do not interfere.
    assert!(matches!(
        append(s, change("b", "k", "c3", 9_000), 0, None).await,
        NetEffectAppend::Appended { .. }
    ));
    assert!(matches!(
        append(s, change("a", "k2", "c4", 9_000), 0, None).await,
        NetEffectAppend::Appended { .. }
    ));
    // The seen seq must be the newest of the window.
    assert_eq!(
        append(s, change("a", "k", "c5", 9_100), 0, Some(s1)).await,
        NetEffectAppend::Conflict
    );
    let dup = s.net_effect_append(change("a", "k", "c1", 9_200), 9_999, None).await;
    assert!(matches!(dup, Err(StoreError::Invalid { .. })), "a cid is logged once: {dup:?}");
    let bad = CertifiedChange { agent: String::new(), ..change("a", "k", "c9", 1) };
    assert!(matches!(s.net_effect_append(bad, 0, None).await, Err(StoreError::Invalid { .. })));
    assert_eq!(s.net_effect_prune(9_000).await.unwrap(), 1, "prune removes only older changes");
    assert_eq!(window(s, "a", "k", 0).await.len(), 1);
}

/// Many concurrent appends against the same (empty) window: exactly one is appended.
pub async fn net_effect_concurrent_appends_have_one_winner(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let st = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            st.net_effect_append(change("a", "race", &format!("r{i}"), 1_000 + i), 0, None).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.expect("task panicked") {
            Ok(NetEffectAppend::Appended { .. }) => won += 1,
            Ok(NetEffectAppend::Conflict) => {}
            Err(e) => panic!("concurrent append failed: {e}"),
        }
    }
    assert_eq!(won, 1, "exactly one append may win against one window");
    assert_eq!(window(store.as_ref(), "a", "race", 0).await.len(), 1);
}
