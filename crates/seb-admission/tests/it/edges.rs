//! Admission's clock and key file: the guarded clock shared with the broker (a clock stepped
//! backwards issues nothing) and the one key-file reader (an issuer key others can read is
//! refused).

use std::sync::Arc;

use seb_admission::clock::Clock as _;
use seb_admission::{Admission, AdmissionConfig, AdmissionError, Platforms};
use seb_store::Store as _;
use seb_store::sqlite::SqliteStore;

use crate::common::*;

#[tokio::test]
async fn a_clock_stepped_backwards_issues_and_signs_nothing() {
    let env = env().await;
    let p = env.proposal("p-clock", 5, 0.1);
    let size = env.store.ledger_size().await.unwrap();
    // More than a second behind the highest reading: not a trusted time.
    env.clock.set(NOW_MS - 10_000);
    let e = env.submit_as(&p, &agent()).await.unwrap_err();
    assert!(matches!(e, AdmissionError::Clock(_)), "{e}");
    assert_eq!((e.http_status(), e.code()), (503, "clock_unavailable"));
    assert!(e.to_string().contains("stepped backwards"), "{e}");
    assert_eq!(env.store.ledger_size().await.unwrap(), size, "nothing signed");
    assert!(env.admission.certificate("p-clock").await.is_err());
    // Caught up again: the same proposal is certified, its window from a trusted time.
    env.clock.set(NOW_MS);
    assert!(env.clock.now_ms().is_ok());
    let v = env.submit_as(&p, &agent()).await.unwrap();
    assert_eq!(v.status, seb_admission::service::ProposalStatus::Certified, "{v:?}");
    let (_, cert) = env.certificate("p-clock").await;
    assert_eq!(cert.validity.not_before, NOW_MS / 1000);
}

#[tokio::test]
async fn an_issuer_key_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("issuer.seed");
    std::fs::write(
        &key,
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [1u8; 32]),
    )
    .unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let cfg = AdmissionConfig::from_toml_str(&config_text(""), dir.path()).unwrap();
    let store =
        Arc::new(SqliteStore::open(&dir.path().join("seb.db"), Default::default()).unwrap());
    let clock = Arc::new(seb_admission::clock::ManualClock::new(NOW_MS));
    let e = Admission::open(&cfg, store.clone(), Platforms::default(), clock.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("issuer.seed") && e.contains("0644") && e.contains("chmod 600"), "{e}");
    // Private again: admission opens.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    Admission::open(&cfg, store, Platforms::default(), clock).await.unwrap();
}
