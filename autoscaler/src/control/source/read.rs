//! Policy metrics from series, the same way for every source: which series belong to which replica
//! or to the service, how their readings add up, and why a metric has no value. A source turns each
//! selected series into a [`SeriesReading`] (who owns it, its value or why it has none) and
//! [`combine`] does the rest, so the embedded store, remote collectors and Prometheus agree.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use super::{MetricRead, Readings, Request};
use crate::policy::{Missing, Read, Scope};

/// Who a series belongs to, from its attribution or labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Attributed to the container with this full id (the store's attribution, a cgroup path's id,
    /// an OTLP `container.id`).
    Container(String),
    /// Carries a Swarm task id (`task` label) and no container id.
    Task(String),
    /// Attributed to no container, with this `service` label.
    Service(String),
    /// Neither: host-level, or a service label-less push series.
    Unattributed,
}

impl Owner {
    /// From a series' labels as Prometheus (or the collector's JSON API) shows them: the cgroup `id`
    /// path holding a container id, an OTLP `container_id`, a Swarm `task`, else the `service` label.
    pub fn from_labels<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Owner {
        if let Some(id) = get("id").and_then(super::container_id_of) {
            return Owner::Container(id.to_string());
        }
        if let Some(id) = get("container_id").filter(|c| is_container_id(c)) {
            return Owner::Container(id.to_string());
        }
        if let Some(task) = get("task").filter(|t| !t.is_empty()) {
            return Owner::Task(task.to_string());
        }
        match get("service").filter(|s| !s.is_empty()) {
            Some(s) => Owner::Service(s.to_string()),
            None => Owner::Unattributed,
        }
    }
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One selected series' reading.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesReading {
    pub owner: Owner,
    /// The value (a gauge as it is, a counter's per-second rate), or why there is none: the series is
    /// not a counter but a rate was asked, or it has no fresh sample (two, for a rate) in the window.
    pub value: Result<f64, Missing>,
}

/// Labels that name a service: a query whose matchers give one reads every series it selects.
pub const SERVICE_LABELS: &[&str] = &["service", "service_name"];

/// Whether a series of `owner` counts for `metric` of `req`'s service, and for which replica.
enum Counts {
    Replica(String),
    ServiceOnly,
    No,
}

fn counts(req: &Request<'_>, metric: &MetricRead, owner: &Owner) -> Counts {
    let replica = match owner {
        Owner::Container(c) => req.replicas.iter().find(|r| r.container == *c),
        Owner::Task(t) => req.replicas.iter().find(|r| r.replica == *t),
        _ => None,
    };
    if let Some(r) = replica {
        return Counts::Replica(r.container.clone());
    }
    if metric.scope == Scope::Replica {
        return Counts::No;
    }
    // A query that names a service itself (another service's queue depth, OTel's `service_name` of
    // span metrics...) reads whatever it selects; else the series of the service that belong to no
    // container.
    if SERVICE_LABELS
        .iter()
        .any(|l| metric.query.matchers.contains_key(*l))
    {
        return Counts::ServiceOnly;
    }
    match owner {
        Owner::Service(s) if s == req.service => Counts::ServiceOnly,
        _ => Counts::No,
    }
}

/// The items (series of a source) that count for `metric` of `req`'s service, whether per replica or
/// for the service: the series a quantile or an error ratio is computed over.
pub fn counted<T>(req: &Request<'_>, metric: &MetricRead, items: Vec<(Owner, T)>) -> Vec<T> {
    items
        .into_iter()
        .filter(|(owner, _)| !matches!(counts(req, metric, owner), Counts::No))
        .map(|(_, t)| t)
        .collect()
}

/// Adds one metric's value, computed over the series that count (a quantile, an error ratio), to
/// `out`: the service value, or why it has none.
pub fn set_service_value(metric: &MetricRead, value: Result<f64, Missing>, out: &mut Readings) {
    match value {
        Ok(v) => {
            out.service.insert(metric.name.clone(), v);
        }
        Err(why) => {
            out.missing.insert(metric.name.clone(), why);
        }
    }
}

/// Adds one metric's series to `out`: per-replica values into the replicas' samples (summed over a
/// replica's series), the service total into `out.service` (summed over every series that counts),
/// or the reason it has no value into `out.missing`. Replicas absent from `samples` get an entry.
pub fn combine(
    req: &Request<'_>,
    metric: &MetricRead,
    series: impl IntoIterator<Item = SeriesReading>,
    out: &mut Readings,
) {
    let mut per_replica: HashMap<String, f64> = HashMap::new();
    let mut total: Option<f64> = None;
    // The most telling reason among the series that counted but gave no value.
    let mut why: Option<Missing> = None;
    for s in series {
        let replica = match counts(req, metric, &s.owner) {
            Counts::No => continue,
            Counts::Replica(c) => Some(c),
            Counts::ServiceOnly => None,
        };
        match s.value {
            Ok(v) => {
                if let Some(c) = replica {
                    *per_replica.entry(c).or_default() += v;
                }
                *total.get_or_insert(0.0) += v;
            }
            Err(m) => why = Some(why.map_or(m, |w| w.min(m))),
        }
    }
    let name = &metric.name;
    match metric.scope {
        Scope::Replica if !per_replica.is_empty() => {
            for (c, v) in per_replica {
                out.containers
                    .entry(c)
                    .or_default()
                    .values
                    .insert(name.clone(), v);
            }
        }
        Scope::Service if total.is_some() => {
            out.service.insert(name.clone(), total.unwrap_or_default());
        }
        _ => {
            out.missing
                .insert(name.clone(), why.unwrap_or(Missing::NoSeries));
        }
    }
}

/// The per-second rate windows a source reads for `read`: the query's own, else the loop's.
pub fn window_of(read: &Read, rate_window: std::time::Duration) -> std::time::Duration {
    read.window().unwrap_or(rate_window)
}

/// The metrics of `policy` that read series, with the names the observation knows them by.
pub fn metric_reads(policy: &crate::policy::Policy) -> Vec<MetricRead> {
    policy
        .metrics
        .iter()
        .filter_map(|m| {
            m.series().map(|query| MetricRead {
                name: m.name.clone(),
                query,
                scope: m.scope(),
            })
        })
        .collect()
}

/// Whether a series' labels pass the query's matchers (an absent label is "", as in PromQL).
pub fn matches(matchers: &BTreeMap<String, String>, get: impl Fn(&str) -> Option<String>) -> bool {
    matchers
        .iter()
        .all(|(k, v)| get(k).unwrap_or_default() == *v)
}
