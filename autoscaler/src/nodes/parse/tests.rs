use std::time::Duration;

use super::*;
use crate::nodes::model::*;

const FULL: &str = r#"pool: workers
min: 1
max: 10
provider:
  exec: [/usr/local/bin/nodes, --zone, a]
  timeout: 2m
  attempts: 4
  provision_timeout: 3m
  manager: 10.0.0.1:2377
target: { cpu: 80, memory: 70 }
scale_up: { pending: true, max_nodes_per_step: 2 }
scale_down: { enabled: true, below: 40, unneeded_for: 5m, delay_after_add: 1m, drain_timeout: 90s }
spare: 1
remove_down_after: 2m
interval: 5s
"#;

fn errors(text: &str) -> String {
    parse_node_policy("pool.yaml", text)
        .unwrap_err()
        .to_string()
}

#[test]
fn a_full_policy_reads_every_field() {
    let p = parse_node_policy("pool.yaml", FULL).unwrap();
    assert_eq!(
        p,
        NodePolicy {
            pool: "workers".into(),
            min: 1,
            max: 10,
            provider: Provider {
                kind: ProviderKind::Exec {
                    command: vec!["/usr/local/bin/nodes".into(), "--zone".into(), "a".into()]
                },
                timeout: Duration::from_secs(120),
                attempts: 4,
                provision_timeout: Duration::from_secs(180),
                manager: Some("10.0.0.1:2377".into()),
            },
            target: CapacityTarget {
                cpu: Some(80),
                memory: Some(70)
            },
            scale_up: ScaleUp {
                pending: true,
                max_nodes_per_step: 2
            },
            scale_down: ScaleDown {
                enabled: true,
                below: 40,
                unneeded_for: Duration::from_secs(300),
                delay_after_add: Duration::from_secs(60),
                drain_timeout: Duration::from_secs(90),
            },
            spare: 1,
            remove_down_after: Duration::from_secs(120),
            interval: Duration::from_secs(5),
        }
    );
}

#[test]
fn defaults_follow_cluster_autoscaler() {
    let p = parse_node_policy(
        "pool.json",
        r#"{"pool": "w", "min": 0, "max": 3, "provider": {"webhook": {"url": "http://p:8080/nodes", "token_file": "/run/secrets/t"}}}"#,
    )
    .unwrap();
    assert_eq!(
        p.provider.kind,
        ProviderKind::Webhook {
            url: "http://p:8080/nodes".into(),
            token_file: Some("/run/secrets/t".into())
        }
    );
    assert_eq!(p.target, CapacityTarget::default());
    assert_eq!(p.scale_up, ScaleUp::default());
    assert_eq!(p.scale_down.below, 50);
    assert_eq!(p.scale_down.unneeded_for, Duration::from_secs(600));
    assert_eq!(p.scale_down.delay_after_add, Duration::from_secs(600));
    assert_eq!(p.provider.attempts, 3);
    assert_eq!(p.provider.manager, None);
    assert_eq!(p.spare, 0);
    assert_eq!(p.interval, Duration::from_secs(10));
}

#[test]
fn every_problem_is_reported_at_once_with_its_position() {
    let text = "pool: two words\nmin: 5\nmax: 2\nprovider:\n  exec: []\n  attempts: 0\ntarget: { cpu: 180, disk: 3 }\nscale_down: { below: 0, unneeded_for: 10 }\nspare: 9\ncolour: blue\n";
    assert_eq!(
        errors(text),
        "pool.yaml:1:7: pool: expected a label value without spaces or `=`, got \"two words\"\n\
         pool.yaml:3:6: max: must be >= min (5), got 2\n\
         pool.yaml:5:9: provider.exec: the command is empty\n\
         pool.yaml:6:13: provider.attempts: must be an integer >= 1, got 0\n\
         pool.yaml:7:16: target.cpu: must be a percentage in 1..=100, got 180\n\
         pool.yaml:7:21: target: unknown field `disk`, expected one of: cpu, memory\n\
         pool.yaml:8:22: scale_down.below: must be an integer >= 1, got 0\n\
         pool.yaml:8:39: scale_down.unneeded_for: a duration needs a unit, e.g. 15s, 5m or 250ms\n\
         pool.yaml:9:8: spare: must be <= max (2), got 9\n\
         pool.yaml:10:1: node policy: unknown field `colour`, expected one of: pool, min, max, provider, target, scale_up, scale_down, spare, remove_down_after, interval"
    );
}

#[test]
fn providers_are_exactly_one_of_exec_or_webhook() {
    let base = "pool: w\nmin: 0\nmax: 2\n";
    assert_eq!(
        errors(&format!("{base}provider: {{ timeout: 1m }}\n")),
        "pool.yaml:4:11: provider: expected exactly one of `exec` or `webhook`"
    );
    assert!(errors(&format!(
        "{base}provider: {{ exec: [a], webhook: {{ url: http://x }} }}\n"
    ))
    .contains("exactly one of"));
    assert!(errors(&format!(
        "{base}provider: {{ webhook: {{ url: https://x }} }}\n"
    ))
    .contains("https is not supported"));
    assert!(errors(&format!(
        "{base}provider: {{ exec: [a], manager: nowhere }}\n"
    ))
    .contains("expected HOST:PORT"));
    assert_eq!(
        errors(&format!("{base}interval: 0s\nprovider: {{ exec: [a] }}\n")),
        "pool.yaml:4:11: interval: must be greater than 0"
    );
    assert!(errors("min: 1\nmax: 2\n").contains("missing field `pool`"));
    assert!(errors("pool: w\n---\npool: x\n").contains("exactly one YAML document"));
}
