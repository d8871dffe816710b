//! The broker every engine and HTTP benchmark measures: the given store, the in-memory test
//! double as its only target, `issuer` as the only trusted issuer, default settings.

use std::sync::Arc;

use seb_broker::clock::SystemClock;
use seb_broker::engine::{Broker, EngineSettings, TrustRoots};
use seb_broker::records::RecordSigner;
use seb_core::keys::SigningKey;
use seb_store::Store;
use seb_target::test_double::TestTarget;

/// The broker and its target (for the benchmark to create the objects it will change).
pub fn broker(store: Arc<dyn Store>, issuer: &SigningKey) -> (Arc<Broker>, Arc<TestTarget>) {
    let target = Arc::new(TestTarget::in_memory());
    let trust =
        TrustRoots { issuers: [issuer.public_key()].into_iter().collect(), ..Default::default() };
    let broker = Arc::new(Broker::new(
        store,
        vec![target.clone()],
        RecordSigner::new(SigningKey::from_seed(&[3; 32])),
        trust,
        EngineSettings::default(),
        Arc::new(SystemClock::default()),
    ));
    (broker, target)
}
