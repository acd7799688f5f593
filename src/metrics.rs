//! Every Prometheus metric the service exports, described and registered at zero at start-up
//! (SPEC §13), so dashboards and alerts see a series before it first fires.
//!
//! Metrics whose labels are static (`endpoint`, `actor`, `via` …) are registered for each
//! label value. Those labelled by tenant or board get their labelled series when that tenant
//! or board starts (the actors register them); here they are touched once without labels,
//! which gives the family a `0` series that `sum`/`rate` treat as nothing.
//! `deploy/grafana/phoenix.json` queries only names listed here; `tests/grafana.rs` checks it.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics::{Counter, Unit};

/// A counter: its description, then each label set to register at zero.
struct CounterSpec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static [(&'static str, &'static str)]],
}

const NO_LABELS: &[&[(&str, &str)]] = &[&[]];

/// The label sets of a counter with one label key: `by!("outcome": "granted", "ignored")` is
/// `&[&[("outcome", "granted")], &[("outcome", "ignored")]]`.
macro_rules! by {
    ($key:literal: $($value:literal),+ $(,)?) => {
        &[$(&[($key, $value)]),+]
    };
}

const COUNTERS: &[CounterSpec] = &[
    CounterSpec {
        name: "phoenix_ingest_events_total",
        help: "Events answered by the HTTP ingestion endpoints, by endpoint and status (accepted, duplicate, failed, or the error code of a refused request).",
        labels: &[
            &[("endpoint", "single"), ("status", "accepted")],
            &[("endpoint", "single"), ("status", "duplicate")],
            &[("endpoint", "bulk"), ("status", "accepted")],
            &[("endpoint", "bulk"), ("status", "duplicate")],
            &[("endpoint", "bulk"), ("status", "failed")],
        ],
    },
    CounterSpec {
        name: "phoenix_events_accepted_total",
        help: "Events durably logged, per tenant.",
        labels: NO_LABELS,
    },
    CounterSpec {
        name: "phoenix_events_duplicate_total",
        help: "Events answered as duplicates of one in the dedupe window, per tenant.",
        labels: NO_LABELS,
    },
    CounterSpec {
        name: "phoenix_dedupe_evicted_early_total",
        help: "Event ids forgotten before the dedupe window ended because dedupe_capacity was reached, per tenant.",
        labels: NO_LABELS,
    },
    CounterSpec {
        name: "phoenix_ninja_events_total",
        help: "Ninja Metrics events, per tenant and status.",
        labels: NO_LABELS,
    },
    CounterSpec {
        name: "phoenix_log_purged_records_total",
        help: "Log records deleted by retention.",
        labels: NO_LABELS,
    },
    CounterSpec {
        name: "phoenix_store_reopens_total",
        help: "Times a failed store (a write or fsync hit ENOSPC or EIO) was reopened without a process restart.",
        labels: NO_LABELS,
    },
    CounterSpec {
        name: "phoenix_store_open_attempts_total",
        help: "Background tries to open the store (after a failed open at start-up or a failed store), by result.",
        labels: by!("result": "ok", "failed"),
    },
    CounterSpec {
        name: "phoenix_fsyncs_total",
        help: "fsyncs of the event log (each answers every request written before it).",
        labels: NO_LABELS,
    },
    CounterSpec {
        name: "phoenix_actor_restarts_total",
        help: "Actors restarted by the supervisor after a failure, by actor kind.",
        labels: by!("actor": "tenant", "leaderboard"),
    },
    CounterSpec {
        name: "phoenix_leaderboard_late_total",
        help: "Events that arrived after their window's grace period, per tenant and board.",
        labels: NO_LABELS,
    },
    CounterSpec {
        name: "phoenix_leaderboard_unscored_total",
        help: "Events a matching rule gave no score (missing attribute, division by zero, non-finite), per tenant and board.",
        labels: NO_LABELS,
    },
    CounterSpec {
        name: "phoenix_ws_view_frames_total",
        help: "Snapshot and update frames pushed to WebSocket views, per tenant and board.",
        labels: NO_LABELS,
    },
    CounterSpec {
        name: "phoenix_ws_frames_dropped_total",
        help: "WebSocket frames dropped because a session's outbound queue was full.",
        labels: NO_LABELS,
    },
    CounterSpec {
        name: "phoenix_ws_resyncs_total",
        help: "Subscriptions resynced with a fresh snapshot after dropped frames.",
        labels: NO_LABELS,
    },
    CounterSpec {
        name: "phoenix_ws_slow_closed_total",
        help: "WebSocket sessions closed as slow consumers (1008).",
        labels: NO_LABELS,
    },
    CounterSpec {
        name: "phoenix_gm_deliveries_total",
        help: "GAMEMONITORING webhook deliveries answered with success, by outcome.",
        labels: by!("outcome": "granted", "unclaimed", "no_rule", "ignored", "duplicate", "test"),
    },
    CounterSpec {
        name: "phoenix_gm_grants_total",
        help: "Vote rewards granted, on delivery (vote) or when a nickname was linked later (link).",
        labels: by!("via": "vote", "link"),
    },
    CounterSpec {
        name: "phoenix_gm_api_failures_total",
        help: "GAMEMONITORING API calls that failed (the delivery is answered 5xx to be resent), by reason.",
        labels: by!("reason": "timeout", "transport", "status", "malformed"),
    },
    CounterSpec {
        name: "phoenix_gm_emit_failures_total",
        help: "Granted votes whose gamemonitoring.vote stream event could not be logged yet (retried on redelivery).",
        labels: NO_LABELS,
    },
];

/// `(name, unit, help)` of each gauge.
const GAUGES: &[(&str, Unit, &str)] = &[
    (
        "phoenix_leaderboard_apply_lag",
        Unit::Count,
        "Log positions durable but not yet applied by a board (log head - applied), per tenant and board.",
    ),
    (
        "phoenix_leaderboard_checkpointed_seq",
        Unit::Count,
        "Log position of a board's newest checkpoint on disk, per tenant and board: a restart replays from there.",
    ),
    ("phoenix_ws_sessions", Unit::Count, "Open WebSocket sessions."),
    (
        "phoenix_store_bytes",
        Unit::Bytes,
        "Bytes the embedded store (sled) occupies on disk.",
    ),
    (
        "phoenix_ingest_gate_waiting",
        Unit::Count,
        "Ingest requests waiting for their turn to be checked (ingest_fair_slots, fair across tenants).",
    ),
    (
        "phoenix_store_failed",
        Unit::Count,
        "1 while the store has failed and writes answer 503 until it is reopened, else 0.",
    ),
    (
        "phoenix_disk_free_bytes",
        Unit::Bytes,
        "Bytes free on the data dir's filesystem; below min_free_disk_mb writes are refused.",
    ),
    (
        "phoenix_ws_views",
        Unit::Count,
        "Distinct views (board, timeframe, window, top N or around a user) watched, per tenant and board.",
    ),
];

/// `(name, unit, help)` of each histogram.
const HISTOGRAMS: &[(&str, Unit, &str)] = &[
    (
        "phoenix_ingest_gate_wait_seconds",
        Unit::Seconds,
        "How long an ingest request waited for its turn to be checked (after its body was read).",
    ),
    (
        "phoenix_log_write_seconds",
        Unit::Seconds,
        "Time of one group-commit writer round (log records inserted, before fsync).",
    ),
    (
        "phoenix_fsync_seconds",
        Unit::Seconds,
        "Time of one fsync of the event log.",
    ),
    (
        "phoenix_fsync_batch_size",
        Unit::Count,
        "Requests answered by one fsync.",
    ),
    (
        "phoenix_checkpoint_seconds",
        Unit::Seconds,
        "Time to write one leaderboard checkpoint.",
    ),
];

/// The names of every metric registered here (for tests and docs).
pub fn names() -> impl Iterator<Item = &'static str> {
    COUNTERS
        .iter()
        .map(|c| c.name)
        .chain(GAUGES.iter().map(|g| g.0))
        .chain(HISTOGRAMS.iter().map(|h| h.0))
}

/// Describe every metric and create its series at zero. Call once, after the recorder is
/// installed; calling again changes nothing (registration is idempotent and adds 0).
pub fn describe_and_register() {
    for c in COUNTERS {
        describe_counter!(c.name, c.help);
        for labels in c.labels {
            let handle: Counter = counter!(c.name, *labels);
            handle.increment(0);
        }
    }
    for (name, unit, help) in GAUGES {
        describe_gauge!(*name, *unit, *help);
        gauge!(*name).increment(0.0);
    }
    for (name, unit, help) in HISTOGRAMS {
        describe_histogram!(*name, *unit, *help);
        // Registering is enough: the exporter renders a histogram with zero samples.
        let _ = histogram!(*name);
    }
}
