//! Node policy files (YAML, or the same schema as JSON) into a validated [`NodePolicy`], with the
//! same strict decoder and `file:line:col: message` diagnostics as service policies.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::time::Duration;

use plimsoll_collector::yaml::{self, Node};
use saphyr::YamlData;

use super::model::{
    CapacityTarget, NodePolicy, Provider, ProviderKind, ScaleDown, ScaleUp, DEFAULT_ATTEMPTS,
    DEFAULT_NODE_INTERVAL, DEFAULT_PROVIDER_TIMEOUT, DEFAULT_PROVISION_TIMEOUT,
    DEFAULT_REMOVE_DOWN_AFTER,
};
use crate::policy::PolicyError;

/// Shortest and longest decision interval of a pool: node operations take seconds to minutes.
pub const MIN_NODE_INTERVAL: Duration = Duration::from_secs(1);
pub const MAX_NODE_INTERVAL: Duration = Duration::from_secs(600);

/// Parses and validates one node policy document. `source_name` is only used in diagnostics.
pub fn parse_node_policy(source_name: &str, text: &str) -> Result<NodePolicy, PolicyError> {
    let mut d = Decoder::default();
    let policy = match yaml::load_one(text, "a node policy mapping") {
        Ok(doc) => d.policy(&doc),
        Err(diag) => {
            d.diags.push(diag);
            None
        }
    };
    d.0.finish(source_name, policy)
}

#[derive(Default)]
struct Decoder(yaml::Decoder);

impl Deref for Decoder {
    type Target = yaml::Decoder;
    fn deref(&self) -> &yaml::Decoder {
        &self.0
    }
}

impl DerefMut for Decoder {
    fn deref_mut(&mut self) -> &mut yaml::Decoder {
        &mut self.0
    }
}

impl Decoder {
    /// `node` if present, else `default`; `None` when present but invalid.
    fn or_default<T>(
        &mut self,
        node: Option<&Node>,
        default: T,
        read: impl FnOnce(&mut Self, &Node) -> Option<T>,
    ) -> Option<T> {
        match node {
            Some(n) => read(self, n),
            None => Some(default),
        }
    }

    fn percent(&mut self, node: &Node, what: &str) -> Option<u32> {
        let p = self.integer(node, what, 1)?;
        if p <= 100 {
            Some(p)
        } else {
            self.error(
                node,
                format!("{what}: must be a percentage in 1..=100, got {p}"),
            );
            None
        }
    }

    fn policy(&mut self, node: &Node) -> Option<NodePolicy> {
        const FIELDS: &[&str] = &[
            "pool",
            "min",
            "max",
            "provider",
            "target",
            "scale_up",
            "scale_down",
            "spare",
            "remove_down_after",
            "interval",
        ];
        let f = self.mapping(node, "node policy", FIELDS)?;
        let pool = self
            .required(&f, "pool", "node policy")
            .and_then(|n| self.pool(n));
        let min = self
            .required(&f, "min", "node policy")
            .and_then(|n| self.integer(n, "min", 0));
        let max_node = self.required(&f, "max", "node policy");
        let max = max_node.and_then(|n| self.integer(n, "max", 1));
        if let (Some(lo), Some(hi), Some(n)) = (min, max, max_node) {
            if lo > hi {
                self.error(n, format!("max: must be >= min ({lo}), got {hi}"));
            }
        }
        let provider = self
            .required(&f, "provider", "node policy")
            .and_then(|n| self.provider(n));
        let target = self.or_default(f.get("target"), CapacityTarget::default(), |d, n| {
            d.target(n)
        });
        let scale_up = self.or_default(f.get("scale_up"), ScaleUp::default(), |d, n| d.scale_up(n));
        let scale_down = self.or_default(f.get("scale_down"), ScaleDown::default(), |d, n| {
            d.scale_down(n)
        });
        let spare_node = f.get("spare");
        let spare = self.or_default(spare_node, 0, |d, n| d.integer(n, "spare", 0));
        if let (Some(s), Some(hi), Some(n)) = (spare, max, spare_node) {
            if s > hi {
                self.error(n, format!("spare: must be <= max ({hi}), got {s}"));
            }
        }
        let remove_down_after = self.or_default(
            f.get("remove_down_after"),
            DEFAULT_REMOVE_DOWN_AFTER,
            |d, n| d.duration(n, "remove_down_after", true),
        );
        let interval = self.or_default(f.get("interval"), DEFAULT_NODE_INTERVAL, |d, n| {
            let i = d.duration(n, "interval", false)?;
            if (MIN_NODE_INTERVAL..=MAX_NODE_INTERVAL).contains(&i) {
                Some(i)
            } else {
                d.error(
                    n,
                    format!(
                        "interval: must be between {} and {}",
                        humantime::format_duration(MIN_NODE_INTERVAL),
                        humantime::format_duration(MAX_NODE_INTERVAL)
                    ),
                );
                None
            }
        });
        Some(NodePolicy {
            pool: pool?,
            min: min?,
            max: max?,
            provider: provider?,
            target: target?,
            scale_up: scale_up?,
            scale_down: scale_down?,
            spare: spare?,
            remove_down_after: remove_down_after?,
            interval: interval?,
        })
    }

    /// A label value Swarm constraints can name: no whitespace, no `=`.
    fn pool(&mut self, node: &Node) -> Option<String> {
        let pool = self.scalar_string(node, "pool")?;
        if pool.is_empty() || pool.contains(|c: char| c.is_whitespace() || c == '=') {
            self.error(
                node,
                format!("pool: expected a label value without spaces or `=`, got {pool:?}"),
            );
            return None;
        }
        Some(pool)
    }

    fn provider(&mut self, node: &Node) -> Option<Provider> {
        const FIELDS: &[&str] = &[
            "exec",
            "webhook",
            "timeout",
            "attempts",
            "provision_timeout",
            "manager",
        ];
        let f = self.mapping(node, "provider", FIELDS)?;
        let kind = match (f.get("exec"), f.get("webhook")) {
            (Some(n), None) => self.exec(n),
            (None, Some(n)) => self.webhook(n),
            _ => {
                self.error(
                    node,
                    "provider: expected exactly one of `exec` or `webhook`",
                );
                None
            }
        };
        let timeout = self.or_default(f.get("timeout"), DEFAULT_PROVIDER_TIMEOUT, |d, n| {
            d.duration(n, "provider.timeout", false)
        });
        let attempts = self.or_default(f.get("attempts"), DEFAULT_ATTEMPTS, |d, n| {
            d.integer(n, "provider.attempts", 1)
        });
        let provision_timeout = self.or_default(
            f.get("provision_timeout"),
            DEFAULT_PROVISION_TIMEOUT,
            |d, n| d.duration(n, "provider.provision_timeout", false),
        );
        let manager = match f.get("manager") {
            Some(n) => self.manager(n).map(Some),
            None => Some(None),
        };
        Some(Provider {
            kind: kind?,
            timeout: timeout?,
            attempts: attempts?,
            provision_timeout: provision_timeout?,
            manager: manager?,
        })
    }

    fn manager(&mut self, node: &Node) -> Option<String> {
        let m = self.string(node, "provider.manager")?;
        match m.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Some(m),
            _ => {
                self.error(
                    node,
                    format!("provider.manager: expected HOST:PORT, e.g. 10.0.0.1:2377, got {m:?}"),
                );
                None
            }
        }
    }

    fn exec(&mut self, node: &Node) -> Option<ProviderKind> {
        let items = self.sequence(node, "provider.exec (the command and its arguments)")?;
        if items.is_empty() {
            self.error(node, "provider.exec: the command is empty");
            return None;
        }
        let argv: Option<Vec<String>> = items
            .iter()
            .map(|n| self.scalar_string(n, "provider.exec argument"))
            .collect();
        Some(ProviderKind::Exec { command: argv? })
    }

    fn webhook(&mut self, node: &Node) -> Option<ProviderKind> {
        let f = self.mapping(node, "provider.webhook", &["url", "token_file"])?;
        let url = self
            .required(&f, "url", "provider.webhook")
            .and_then(|n| {
                let url = self.string(n, "provider.webhook.url")?;
                if url.starts_with("http://") {
                    Some(url)
                } else if url.starts_with("https://") {
                    self.error(n, "provider.webhook.url: https is not supported (plimsoll is built without TLS): use http:// to a local TLS proxy or on a private network");
                    None
                } else {
                    self.error(n, format!("provider.webhook.url: expected an http:// URL, got {url:?}"));
                    None
                }
            });
        let token_file = match f.get("token_file") {
            Some(n) => self
                .string(n, "provider.webhook.token_file")
                .map(|s| Some(PathBuf::from(s))),
            None => Some(None),
        };
        Some(ProviderKind::Webhook {
            url: url?,
            token_file: token_file?,
        })
    }

    fn target(&mut self, node: &Node) -> Option<CapacityTarget> {
        let f = self.mapping(node, "target", &["cpu", "memory"])?;
        if f.entries.is_empty() && matches!(&node.data, YamlData::Mapping(_)) {
            self.error(
                node,
                "target: expected `cpu` and/or `memory` (percent reserved)",
            );
            return None;
        }
        let cpu = match f.get("cpu") {
            Some(n) => self.percent(n, "target.cpu").map(Some),
            None => Some(None),
        };
        let memory = match f.get("memory") {
            Some(n) => self.percent(n, "target.memory").map(Some),
            None => Some(None),
        };
        Some(CapacityTarget {
            cpu: cpu?,
            memory: memory?,
        })
    }

    fn scale_up(&mut self, node: &Node) -> Option<ScaleUp> {
        let f = self.mapping(node, "scale_up", &["pending", "max_nodes_per_step"])?;
        let d = ScaleUp::default();
        let pending = self.or_default(f.get("pending"), d.pending, |d, n| {
            d.boolean(n, "scale_up.pending")
        });
        let step = self.or_default(f.get("max_nodes_per_step"), d.max_nodes_per_step, |d, n| {
            d.integer(n, "scale_up.max_nodes_per_step", 1)
        });
        Some(ScaleUp {
            pending: pending?,
            max_nodes_per_step: step?,
        })
    }

    fn scale_down(&mut self, node: &Node) -> Option<ScaleDown> {
        const FIELDS: &[&str] = &[
            "enabled",
            "below",
            "unneeded_for",
            "delay_after_add",
            "drain_timeout",
        ];
        let f = self.mapping(node, "scale_down", FIELDS)?;
        let d = ScaleDown::default();
        let enabled = self.or_default(f.get("enabled"), d.enabled, |d, n| {
            d.boolean(n, "scale_down.enabled")
        });
        let below = self.or_default(f.get("below"), d.below, |d, n| {
            d.percent(n, "scale_down.below")
        });
        let unneeded_for = self.or_default(f.get("unneeded_for"), d.unneeded_for, |d, n| {
            d.duration(n, "scale_down.unneeded_for", true)
        });
        let delay_after_add =
            self.or_default(f.get("delay_after_add"), d.delay_after_add, |d, n| {
                d.duration(n, "scale_down.delay_after_add", true)
            });
        let drain_timeout = self.or_default(f.get("drain_timeout"), d.drain_timeout, |d, n| {
            d.duration(n, "scale_down.drain_timeout", false)
        });
        Some(ScaleDown {
            enabled: enabled?,
            below: below?,
            unneeded_for: unneeded_for?,
            delay_after_add: delay_after_add?,
            drain_timeout: drain_timeout?,
        })
    }
}

#[cfg(test)]
mod tests;
