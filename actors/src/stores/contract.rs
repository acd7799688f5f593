//! Contract suites for the state stores: one public function per store trait that takes a
//! fresh, empty store and panics on the first broken promise (the pattern of
//! `object_store::integration`). A backend is done when every suite passes on it; the sled
//! backends run them in this module's tests.

mod definitions;
mod dimensions;
mod outbox;
mod rewards;
mod tenants;

pub use definitions::definition_store;
pub use dimensions::dimension_store;
pub use outbox::webhook_outbox;
pub use rewards::reward_ledger;
pub use tenants::tenant_registry;

#[cfg(test)]
mod tests {
    use crate::stores::{SledDimensions, SledStore, SledTenants};

    fn store() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 1 << 20).unwrap();
        (dir, store)
    }

    #[test]
    fn sled_tenants_keep_the_contract() {
        let (_dir, s) = store();
        super::tenant_registry(&SledTenants::open(&s).unwrap());
    }

    #[test]
    fn sled_dimensions_keep_the_contract() {
        let (_dir, s) = store();
        super::dimension_store(&SledDimensions::open(&s, "t").unwrap());
        // Tenants are separate.
        let other = SledDimensions::open(&s, "u").unwrap();
        assert!(!crate::stores::DimensionStore::applied(&other, "e1").unwrap());
    }

    #[test]
    fn sled_rewards_keep_the_contract() {
        let (_dir, s) = store();
        let ledger = crate::rewards::RewardStore::open(s.db(), "t").unwrap();
        super::reward_ledger(&ledger);
    }

    #[test]
    fn sled_definitions_keep_the_contract() {
        let (_dir, s) = store();
        super::definition_store(&crate::stores::SledDefinitions::open(&s).unwrap());
    }

    #[test]
    fn sled_outbox_keeps_the_contract() {
        let (_dir, s) = store();
        super::webhook_outbox(&crate::outbox::Outbox::open(s.db()).unwrap());
    }
}
