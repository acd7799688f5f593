//! The [`TenantRegistry`] contract.

use crate::stores::{TenantRecord, TenantRegistry, TenantState, WebhookRecord};

fn record(secret: &str, status: TenantState) -> TenantRecord {
    TenantRecord {
        secret: secret.to_owned(),
        status,
        previous: None,
        webhook: None,
    }
}

/// Puts replace whole records; the list is in id order, each tenant once.
pub fn tenant_registry(store: &dyn TenantRegistry) {
    assert!(store.list().unwrap().is_empty(), "a new registry is empty");
    store
        .put("zeta", &record("zeta-secret-0000", TenantState::Active))
        .unwrap();
    let mut acme = record("acme-secret-0000", TenantState::Active);
    store.put("acme", &acme).unwrap();
    acme.status = TenantState::Suspended;
    acme.previous = Some(("old-secret-00000".into(), 1_700_000_000));
    acme.webhook = Some(WebhookRecord {
        url: Some("https://hooks.example/acme".into()),
    });
    store.put("acme", &acme).unwrap();
    let listed = store.list().unwrap();
    let ids: Vec<&str> = listed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["acme", "zeta"], "sorted by id, each once");
    assert_eq!(listed[0].1, acme, "the last put wins, whole");
    assert_eq!(listed[1].1.status, TenantState::Active);
    // Removing a webhook is a stored fact, distinct from never having set one.
    acme.webhook = Some(WebhookRecord { url: None });
    store.put("acme", &acme).unwrap();
    assert_eq!(
        store.list().unwrap()[0].1.webhook,
        Some(WebhookRecord { url: None })
    );
}
