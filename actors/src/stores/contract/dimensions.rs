//! The [`DimensionStore`] contract.

use serde_json::{json, Map, Value};

use crate::stores::{DimChange, DimKind, DimensionStore};

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("an object"),
    }
}

/// Changes apply with their marker; reads see the latest state; names resolve to owners.
pub fn dimension_store(store: &dyn DimensionStore) {
    assert!(!store.applied("e1").unwrap());
    assert_eq!(store.get(DimKind::Accounts, "a1").unwrap(), None);
    store
        .apply(
            &DimChange::Put {
                kind: DimKind::Accounts,
                id: "a1".into(),
                record: obj(json!({"account_id": "a1", "updated_at": "t1"})),
            },
            "e1",
        )
        .unwrap();
    assert!(
        store.applied("e1").unwrap(),
        "the marker is written with the change"
    );
    let a = store.get(DimKind::Accounts, "a1").unwrap().unwrap();
    assert_eq!(
        (a["account_id"].clone(), a["deleted"].clone()),
        (json!("a1"), json!(false))
    );
    assert!(store.contains(DimKind::Accounts, "a1").unwrap());
    assert!(
        !store.contains(DimKind::Characters, "a1").unwrap(),
        "kinds are separate"
    );

    store
        .apply(
            &DimChange::PutCharacter {
                id: "c1".into(),
                record: obj(
                    json!({"character_id": "c1", "account_id": "a1", "character_name": "Hero"}),
                ),
                name: "Hero".into(),
                account: "a1".into(),
            },
            "e2",
        )
        .unwrap();
    assert_eq!(
        store.character_owner("hERO").unwrap().as_deref(),
        Some("a1")
    );
    store
        .apply(
            &DimChange::DeleteCharacter {
                id: "c1".into(),
                timestamp: "t3".into(),
            },
            "e3",
        )
        .unwrap();
    let c = store.get(DimKind::Characters, "c1").unwrap().unwrap();
    assert_eq!(
        (c["deleted"].clone(), c["updated_at"].clone()),
        (json!(true), json!("t3"))
    );
    assert_eq!(
        store.character_owner("hero").unwrap(),
        None,
        "deleting unlinks the name"
    );
    // Deleting an unknown character changes nothing but the marker.
    store
        .apply(
            &DimChange::DeleteCharacter {
                id: "nobody".into(),
                timestamp: "t4".into(),
            },
            "e4",
        )
        .unwrap();
    assert_eq!(store.get(DimKind::Characters, "nobody").unwrap(), None);
    assert!(store.applied("e4").unwrap());

    store
        .apply(
            &DimChange::DeleteAccount {
                id: "a1".into(),
                record: obj(json!({"updated_at": "t5"})),
            },
            "e5",
        )
        .unwrap();
    let a = store.get(DimKind::Accounts, "a1").unwrap().unwrap();
    assert_eq!(
        (
            a["account_id"].clone(),
            a["updated_at"].clone(),
            a["deleted"].clone()
        ),
        (json!("a1"), json!("t5"), json!(true)),
        "a delete merges into the record"
    );

    for (key, kind) in [("7", DimKind::Shards), ("9", DimKind::Items)] {
        let change = DimChange::Put {
            kind,
            id: key.into(),
            record: obj(json!({"n": key})),
        };
        store.apply(&change, &format!("put-{key}")).unwrap();
        assert!(store.contains(kind, key).unwrap());
        let stored = store.get(kind, key).unwrap().unwrap();
        assert_eq!(
            stored,
            json!({"n": key}),
            "shards and items are stored as given"
        );
    }

    assert_eq!(store.currency("gold").unwrap(), None);
    for (ts, rate) in [
        ("2026-01-02T00:00:00.000Z", 2.0),
        ("2026-01-01T00:00:00.000Z", 1.0),
    ] {
        store
            .apply(
                &DimChange::SetCurrency {
                    label: "gold".into(),
                    timestamp: ts.into(),
                    rate: json!(rate),
                },
                &format!("cur-{ts}"),
            )
            .unwrap();
    }
    let gold = store.currency("gold").unwrap().unwrap();
    assert_eq!(
        gold["rate"],
        json!(2.0),
        "the latest by timestamp is current"
    );
    assert_eq!(
        gold["history"][0]["rate"],
        json!(1.0),
        "history is oldest first"
    );
    assert_eq!(
        store.currency("gol").unwrap(),
        None,
        "labels do not match by prefix"
    );

    store.record_client("sdk", "ua/1", "t1").unwrap();
    store.record_client("sdk", "ua/1", "t2").unwrap();
    let clients = store.clients().unwrap();
    assert_eq!(clients.len(), 1);
    assert_eq!(
        (
            clients[0]["requests"].clone(),
            clients[0]["last_seen"].clone()
        ),
        (json!(2), json!("t2"))
    );
}
