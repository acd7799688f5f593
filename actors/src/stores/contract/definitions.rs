//! The [`DefinitionStore`] contract.

use crate::stores::DefinitionStore;

/// Puts replace whole definitions, lists are per tenant in id order, removes say whether
/// anything was there.
pub fn definition_store(store: &dyn DefinitionStore) {
    assert!(store.all().unwrap().is_empty(), "a new store is empty");
    assert_eq!(store.get("t", "b").unwrap(), None);
    store.put("t", "zz", br#"{"id":"zz"}"#).unwrap();
    store.put("t", "b", br#"{"id":"b","v":1}"#).unwrap();
    store.put("t", "b", br#"{"id":"b","v":2}"#).unwrap();
    store.put("tu", "a", br#"{"id":"a"}"#).unwrap();
    store.put("t", "odd id.x", b"{}").unwrap();
    assert_eq!(
        store.get("t", "b").unwrap().as_deref(),
        Some(br#"{"id":"b","v":2}"#.as_slice()),
        "the last put wins, whole"
    );
    let ids: Vec<String> = store
        .list("t")
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["b", "odd id.x", "zz"], "id order, this tenant only");
    let all: Vec<(String, String)> = store
        .all()
        .unwrap()
        .into_iter()
        .map(|(t, id, _)| (t, id))
        .collect();
    assert_eq!(all.len(), 4);
    assert!(all.contains(&("tu".into(), "a".into())));
    assert!(store.remove("t", "b").unwrap());
    assert!(!store.remove("t", "b").unwrap(), "removed once");
    assert_eq!(store.get("t", "b").unwrap(), None);
    assert_eq!(store.list("t").unwrap().len(), 2);
    assert_eq!(store.list("nobody").unwrap(), vec![]);
}
