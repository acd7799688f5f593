//! Reading the Prometheus text that `GET /metrics` answers.

/// Whether `line` is a sample of the family `name` (not of a longer name sharing the prefix)
/// carrying every `labels` pair.
fn is_sample(line: &str, name: &str, labels: &[(&str, &str)]) -> bool {
    line.strip_prefix(name)
        .is_some_and(|rest| rest.starts_with(['{', ' ']))
        && labels
            .iter()
            .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
}

fn value(line: &str) -> Option<f64> {
    line.rsplit(' ').next()?.parse().ok()
}

/// The sum of every sample of `name` that carries the `labels` pairs (0 when there is none).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| is_sample(l, name, labels))
        .filter_map(value)
        .sum()
}

/// The first sample of `name` that carries the `labels` pairs, if the series is exported.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .find(|l| is_sample(l, name, labels))
        .and_then(value)
}
