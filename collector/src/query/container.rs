//! The latest figures of one container (CPU, memory, network), from its cAdvisor series.

use serde::{Deserialize, Serialize};

use super::{Query, Selector};
use crate::store::Millis;

/// A container's latest figures, as `/api/v1/containers` serves them and the autoscaler reads them.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latest {
    /// Sample time, ms since the epoch.
    pub timestamp_ms: Option<Millis>,
    /// CPU used between the last two samples, in cores.
    pub cpu_cores: Option<f64>,
    pub memory_usage_bytes: Option<f64>,
    pub memory_working_set_bytes: Option<f64>,
    pub network_receive_bytes_per_second: Option<f64>,
    pub network_transmit_bytes_per_second: Option<f64>,
}

impl Query<'_> {
    /// The latest figures of the container with full id `container`. Rates cover `rate_window` back
    /// from each series' newest sample, or only its last two samples when None.
    pub fn container_latest(&self, container: &str, rate_window: Option<Millis>) -> Latest {
        let series = |name: &str| {
            self.select(&Selector {
                name,
                matchers: &[],
                container: Some(container),
            })
        };
        let one = |name: &str| series(name).into_iter().next();
        let rate = |s| match rate_window {
            Some(w) => self.rate_to_newest(s, w),
            None => self.last_rate(s),
        };
        let summed_rate = |name: &str| {
            let per_iface: Vec<f64> = series(name).into_iter().filter_map(rate).collect();
            (!per_iface.is_empty()).then(|| per_iface.iter().sum())
        };
        let latest = |name: &str| one(name).and_then(|s| self.latest(s));
        Latest {
            timestamp_ms: latest("container_cpu_usage_seconds_total").map(|(t, _)| t),
            cpu_cores: one("container_cpu_usage_seconds_total").and_then(rate),
            memory_usage_bytes: latest("container_memory_usage_bytes").map(|(_, v)| v),
            memory_working_set_bytes: latest("container_memory_working_set_bytes").map(|(_, v)| v),
            network_receive_bytes_per_second: summed_rate("container_network_receive_bytes_total"),
            network_transmit_bytes_per_second: summed_rate(
                "container_network_transmit_bytes_total",
            ),
        }
    }
}
