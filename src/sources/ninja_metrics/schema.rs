//! The Ninja Metrics event types #1–#24 as one table (seed 003): each field's kind, whether
//! it is required, and which dimension it must reference. `check` validates a payload's
//! `data` against it; referential integrity is checked separately (dims.rs).

use serde_json::{Map, Value};

/// What a field must hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Any string.
    Str,
    /// A string of at most 200 characters.
    Text200,
    /// A JSON number ("0 when unused"; -1.0 for an unknown position).
    Num,
    /// An unsigned whole number of at most 18 digits.
    Uint18,
    /// One of these strings.
    Enum(&'static [&'static str]),
    /// One of these integers.
    IntEnum(&'static [i64]),
    /// An ISO-8601 UTC timestamp string.
    Timestamp,
    /// A number or a string.
    NumOrStr,
    /// A language code like `en-US` or `fr`.
    Lang,
    /// An ISO-3166 alpha-2 country code.
    Country,
}

/// Which dimension a field refers to (checked when present and not "unused").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ref {
    None,
    Account,
    Character,
    Shard,
    Item,
}

#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub refers: Ref,
}

/// What a type does to dimension data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    None,
    AccountCreate,
    AccountDelete,
    CharacterCreate,
    CharacterDelete,
    ShardCreate,
    SetCurrency,
    ItemCreate,
}

#[derive(Debug)]
pub struct EventType {
    pub number: u8,
    /// Phoenix event type: `nm.<name>`.
    pub name: &'static str,
    /// The field naming the acting account (`actor.user_id`), if any.
    pub actor: Option<&'static str>,
    pub fields: &'static [Field],
    pub loader: Loader,
}

const fn req(name: &'static str, kind: Kind, refers: Ref) -> Field {
    Field {
        name,
        kind,
        required: true,
        refers,
    }
}
const fn opt(name: &'static str, kind: Kind, refers: Ref) -> Field {
    Field {
        name,
        kind,
        required: false,
        refers,
    }
}

use Kind::*;
use Ref::{Account as A, Character as C, Item as I, None as N, Shard as S};

const STATUS: Kind = Enum(&["Active", "Stopped", "Expired", "Failed", "Cancelled"]);
const STATUS_END: Kind = Enum(&["Stopped", "Expired", "Failed", "Cancelled"]);
const SUB_TYPE: Kind = Enum(&["Free", "Paid", "Premium"]);
const GENDER: Kind = Enum(&["M", "F", "T", ""]);
const YN: Kind = Enum(&["Y", "N"]);
const ZERO_ONE: Kind = IntEnum(&[0, 1]);

/// Login and logout: the same fields; `character_id` is required on logout only.
macro_rules! session_fields {
    ($character:ident) => {
        &[
            req("account_id", Str, A),
            $character("character_id", Str, C),
            opt("shard_id", Num, S),
            opt("platform", Str, N),
            opt("area_id", Num, N),
        ]
    };
}
const LOGIN: &[Field] = session_fields!(opt);
const LOGOUT: &[Field] = session_fields!(req);
#[rustfmt::skip]
const GROUP: &[Field] = &[
    req("account_id", Str, A), opt("character_id", Str, C), req("character_lvl", Num, N),
    opt("shard_id", Num, S), req("group_id", Num, N),
];
/// The fields of an OGI send; a receive adds its own after them.
macro_rules! ogi_fields {
    ($($extra:expr),*) => {
        &[
            req("sender_account_id", Str, A),
            opt("sender_character_id", Str, C),
            req("receiver_account_id", Str, A),
            opt("receiver_character_id", Str, C),
            opt("shard_id", Num, S),
            req("ogi_location", Str, N),
            req("ogi_category", Str, N),
            $($extra),*
        ]
    };
}
const OGI_SEND: &[Field] = ogi_fields!();
const OGI_RECEIVE: &[Field] = ogi_fields!(req("ogi_receiver_action", Str, N));
#[rustfmt::skip]
const COMBAT: &[Field] = &[
    req("account_id", Str, A), req("character_id", Str, C), req("shard_id", Num, S),
    req("npc_id", Str, N), req("area_id", Num, N), req("position_x", Num, N),
    req("position_y", Num, N), req("position_z", Num, N),
];

const ACC: Option<&str> = Some("account_id");
const SENDER: Option<&str> = Some("sender_account_id");
const RECEIVER: Option<&str> = Some("receiver_account_id");

/// One row of [`TYPES`]: number, name, the acting account's field, loader, fields.
const fn ty(
    number: u8,
    name: &'static str,
    actor: Option<&'static str>,
    loader: Loader,
    fields: &'static [Field],
) -> EventType {
    EventType {
        number,
        name,
        actor,
        fields,
        loader,
    }
}

/// Types #1–#24, in order.
#[rustfmt::skip]
pub static TYPES: [EventType; 24] = [
    ty(1, "login", ACC, Loader::None, LOGIN),
    ty(2, "logout", ACC, Loader::None, LOGOUT),
    ty(3, "change_subscription", ACC, Loader::None, &[
        req("account_id", Str, A), req("account_status", STATUS, N),
        req("account_sub_type", SUB_TYPE, N), req("account_sub_value", Num, N),
        req("account_sub_expires_timestamp", Timestamp, N),
    ]),
    ty(4, "group_enter", ACC, Loader::None, GROUP),
    ty(5, "group_exit", ACC, Loader::None, GROUP),
    ty(6, "social_event", SENDER, Loader::None, &[
        req("sender_account_id", Str, A), opt("sender_character_id", Str, C),
        req("sender_character_level", Num, N), req("receiver_account_id", Str, A),
        opt("receiver_character_id", Str, C), req("receiver_character_level", Num, N),
        opt("shard_id", Num, S), req("social_event_name", Str, N), req("social_event_type", Str, N),
    ]),
    ty(7, "ogi_send", SENDER, Loader::None, OGI_SEND),
    ty(8, "ogi_receive", RECEIVER, Loader::None, OGI_RECEIVE),
    ty(9, "account_create", ACC, Loader::AccountCreate, &[
        req("account_id", Str, N), req("account_sub_type", SUB_TYPE, N),
        req("account_lang", Lang, N), req("account_country", Country, N),
        req("account_gender", GENDER, N), req("account_dob", Timestamp, N),
        req("account_currency_balance", Num, N), req("platform", Str, N),
    ]),
    ty(10, "account_delete", ACC, Loader::AccountDelete, &[
        req("account_id", Str, A), req("account_status", STATUS_END, N), req("farmer_flag", YN, N),
        req("integrity_flag", YN, N),
    ]),
    ty(11, "character_create", ACC, Loader::CharacterCreate, &[
        req("account_id", Str, A), req("character_id", Str, N), req("character_class", Str, N),
        req("character_sub_class", Str, N), req("character_gender", GENDER, N),
        req("character_race", Str, N), req("character_name", Str, N), opt("shard_id", Num, S),
    ]),
    ty(12, "character_delete", ACC, Loader::CharacterDelete, &[
        req("account_id", Str, A), req("character_id", Str, C),
    ]),
    ty(13, "shard_create", None, Loader::ShardCreate, &[
        req("shard_id", Num, N), req("shard_desc", Str, N),
    ]),
    ty(14, "set_virtual_currency", None, Loader::SetCurrency, &[
        req("virtual_currency_label", Str, N), req("virtual_currency_ex_rate", Num, N),
    ]),
    ty(15, "initialize_item", ACC, Loader::ItemCreate, &[
        req("item_id", Num, N), req("item_name", Str, N), req("item_type", Str, N),
        req("item_value", Num, N), req("item_segment", Enum(&["UGC", "INGAME"]), N),
        req("account_id", Str, N), req("character_id", Str, N),
    ]),
    ty(16, "item_used", ACC, Loader::None, &[
        req("account_id", Str, A), req("character_id", Str, C), req("character_lvl", Num, N),
        req("shard_id", Num, S), req("item_id", Num, I), req("item_count", Num, N),
        req("area_id", Num, N), req("position_x", Num, N), req("position_y", Num, N),
        req("position_z", Num, N),
    ]),
    ty(17, "item_transaction", ACC, Loader::None, &[
        req("account_id", Str, A), req("character_id", Str, C), req("shard_id", Num, S),
        req("item_id", Num, I), req("item_name", Str, N), req("item_price", Num, N),
        req("transaction_type", ZERO_ONE, N), req("currency_type", ZERO_ONE, N),
        req("virtual_currency_label", Str, N), req("currency_value", Num, N),
    ]),
    ty(18, "currency_transaction", ACC, Loader::None, &[
        req("account_id", Str, A), req("character_id", Str, C), req("shard_id", Num, S),
        req("transaction_type", ZERO_ONE, N), req("currency_type", ZERO_ONE, N),
        req("virtual_currency_label", Str, N), req("currency_value", Num, N),
        opt("transaction_desc", Text200, N),
    ]),
    ty(19, "ugc_rating", ACC, Loader::None, &[
        req("account_id", Str, A), req("character_id", Str, C), req("shard_id", Num, S),
        req("item_id", Num, I), req("item_name", Str, N), req("ugc_rating", NumOrStr, N),
    ]),
    ty(20, "message", SENDER, Loader::None, &[
        req("sender_account_id", Str, A), req("sender_character_id", Str, C),
        req("receiver_account_id", Str, A), req("receiver_character_id", Str, C),
        req("shard_id", Num, S), req("message_ch_label", Str, N), req("message_desc", Str, N),
        req("message_char_count", Num, N),
    ]),
    ty(21, "begin_combat_npc", ACC, Loader::None, COMBAT),
    ty(22, "end_combat_npc", ACC, Loader::None, COMBAT),
    ty(23, "kill_npc", ACC, Loader::None, &[
        req("account_id", Str, A), req("character_id", Str, C), req("shard_id", Num, S),
        req("npc_id", Str, N), req("character_lvl", Num, N),
    ]),
    ty(24, "player_xp", ACC, Loader::None, &[
        req("account_id", Str, A), req("character_id", Str, C), req("shard_id", Num, S),
        req("xp_amount", Uint18, N), req("character_lvl", Num, N), req("grouped_flag", YN, N),
    ]),
];
/// Types #25–#46 are named in the seed ("Need to add events up through #46") but not
/// defined: accepted as generic typed events.
pub const GENERIC: std::ops::RangeInclusive<u64> = 25..=46;

/// The table entry for a type number.
pub fn lookup(number: u64) -> Option<&'static EventType> {
    TYPES.iter().find(|t| u64::from(t.number) == number)
}

fn is_timestamp(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok_and(|t| t.offset().local_minus_utc() == 0)
}

/// A value that is not of its field's kind; the text says what the field must hold.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", .0.expected())]
pub struct WrongKind(pub Kind);

/// Why a payload's `data` does not fit its type (the text is the 400's message).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    #[error("data.{field} is required for type #{number}")]
    Required { field: &'static str, number: u8 },
    #[error("data.{field}: {source}")]
    Field {
        field: &'static str,
        source: WrongKind,
    },
    #[error("data.{0}: required when item_segment is \"UGC\"")]
    UgcNeeds(&'static str),
    #[error("data.{0}: must be \"\" when item_segment is \"INGAME\"")]
    IngameForbids(&'static str),
    #[error("data.virtual_currency_label: must not be empty")]
    NoCurrencyLabel,
    #[error("data.virtual_currency_ex_rate: must be greater than 0")]
    BadExchangeRate,
    #[error("data.shard_id: 0 means unused and cannot be created")]
    ShardZero,
}

fn check_kind(kind: Kind, v: &Value) -> Result<(), WrongKind> {
    let ok = match kind {
        Str => v.is_string(),
        Text200 => v.as_str().is_some_and(|s| s.chars().count() <= 200),
        Num => v.is_number(),
        Uint18 => v.as_u64().is_some_and(|n| n < 1_000_000_000_000_000_000),
        Enum(options) => v.as_str().is_some_and(|s| options.contains(&s)),
        IntEnum(options) => v.as_i64().is_some_and(|n| options.contains(&n)),
        Timestamp => v.as_str().is_some_and(is_timestamp),
        NumOrStr => v.is_number() || v.is_string(),
        Lang => v.as_str().is_some_and(|s| {
            let mut parts = s.split('-');
            let lang = parts.next().unwrap_or("");
            let region = parts.next();
            (2..=4).contains(&lang.len())
                && lang.bytes().all(|b| b.is_ascii_alphabetic())
                && region.is_none_or(|r| r.len() == 2 && r.bytes().all(|b| b.is_ascii_alphabetic()))
                && parts.next().is_none()
        }),
        Country => v
            .as_str()
            .is_some_and(|s| s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())),
    };
    if ok {
        Ok(())
    } else {
        Err(WrongKind(kind))
    }
}

impl Kind {
    /// What a value of this kind must be, as a 400 says it.
    fn expected(&self) -> String {
        match *self {
            Str => "must be a string".into(),
            Text200 => "must be a string of at most 200 characters".into(),
            Num => "must be a number (0 when unused)".into(),
            Uint18 => "must be an unsigned whole number of at most 18 digits".into(),
            Enum(options) => format!(
                "must be one of {}",
                options
                    .iter()
                    .map(|o| format!("{o:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            IntEnum(options) => format!("must be one of {options:?}"),
            Timestamp => "must be an ISO-8601 UTC timestamp (YYYY-MM-DDTHH:mm:ss.sssZ)".into(),
            NumOrStr => "must be a number or a string".into(),
            Lang => "must be a language code like \"en-US\" or \"fr\"".into(),
            Country => "must be an ISO-3166 alpha-2 country code like \"US\"".into(),
        }
    }
}

/// Check `data` against its type: every field named, type-checked, enumerations, limits,
/// and the item_segment rule. Unknown extra fields are kept (they become attrs).
pub fn check(t: &EventType, data: &Map<String, Value>) -> Result<(), SchemaError> {
    for f in t.fields {
        match data.get(f.name) {
            None | Some(Value::Null) if f.required => {
                return Err(SchemaError::Required {
                    field: f.name,
                    number: t.number,
                })
            }
            None | Some(Value::Null) => {}
            Some(v) => check_kind(f.kind, v).map_err(|source| SchemaError::Field {
                field: f.name,
                source,
            })?,
        }
    }
    if t.loader == Loader::ItemCreate {
        let ugc = data.get("item_segment").and_then(Value::as_str) == Some("UGC");
        for k in ["account_id", "character_id"] {
            let empty = data
                .get(k)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty);
            if ugc && empty {
                return Err(SchemaError::UgcNeeds(k));
            }
            if !ugc && !empty {
                return Err(SchemaError::IngameForbids(k));
            }
        }
    }
    if t.loader == Loader::SetCurrency {
        if data
            .get("virtual_currency_label")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(SchemaError::NoCurrencyLabel);
        }
        if data
            .get("virtual_currency_ex_rate")
            .and_then(Value::as_f64)
            .is_none_or(|r| r <= 0.0)
        {
            return Err(SchemaError::BadExchangeRate);
        }
    }
    if t.loader == Loader::ShardCreate && data.get("shard_id").and_then(Value::as_f64) == Some(0.0)
    {
        return Err(SchemaError::ShardZero);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn the_table_is_complete_and_ordered() {
        for (i, t) in TYPES.iter().enumerate() {
            assert_eq!(usize::from(t.number), i + 1);
            if let Some(a) = t.actor {
                assert!(
                    t.fields.iter().any(|f| f.name == a),
                    "#{} actor field",
                    t.number
                );
            }
        }
        assert!(lookup(25).is_none() && GENERIC.contains(&25) && !GENERIC.contains(&47));
    }

    #[test]
    fn kinds() {
        assert!(check_kind(Uint18, &json!(3)).is_ok());
        assert!(check_kind(Uint18, &json!(-3)).is_err());
        assert!(check_kind(Uint18, &json!(1.5)).is_err());
        assert!(check_kind(Uint18, &json!(999_999_999_999_999_999u64)).is_ok());
        assert!(check_kind(Uint18, &json!(1_000_000_000_000_000_000u64)).is_err());
        assert!(check_kind(Text200, &json!("x".repeat(200))).is_ok());
        assert!(check_kind(Text200, &json!("x".repeat(201))).is_err());
        assert!(check_kind(Timestamp, &json!("2013-01-14T15:36:27.671Z")).is_ok());
        assert!(check_kind(Timestamp, &json!("2013-01-14T15:36:27.671+02:00")).is_err());
        assert!(check_kind(Timestamp, &json!("yesterday")).is_err());
        for ok in ["ar-YE", "en-US", "fr"] {
            assert!(check_kind(Lang, &json!(ok)).is_ok(), "{ok}");
        }
        for bad in ["e", "en_US", "english-language", "en-USA"] {
            assert!(check_kind(Lang, &json!(bad)).is_err(), "{bad}");
        }
        assert!(check_kind(Country, &json!("US")).is_ok());
        assert!(check_kind(Country, &json!("us")).is_err());
        assert!(check_kind(GENDER, &json!("")).is_ok());
        assert!(check_kind(GENDER, &json!("X")).is_err());
        assert!(check_kind(ZERO_ONE, &json!(2)).is_err());
        assert!(
            check_kind(Num, &json!("3")).is_err(),
            "numbers are JSON numbers"
        );
    }

    proptest! {
        /// Arbitrary data never panics the checker, for any type.
        #[test]
        fn check_never_panics(n in 1u64..25, k in "[a-z_]{1,20}", v in any::<i64>(), s in ".{0,30}") {
            let t = lookup(n).unwrap();
            let mut data = Map::new();
            data.insert(k, json!(v));
            for f in t.fields.iter().take(3) {
                data.insert(f.name.to_string(), json!(s.clone()));
            }
            let _ = check(t, &data);
        }
    }
}
