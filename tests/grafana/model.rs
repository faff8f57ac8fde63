//! What the tests of grafana/ read: the dashboards as Grafana reads them (panels, nested rows, template
//! variables, annotations), the provisioning and rule YAML, Grafana's variable substitution, and the
//! metric names a PromQL expression selects (parsed with the `promql-parser` crate).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use promql_parser::parser::Expr;
use serde_json::Value;

/// The grafana/ folder of the repository.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../grafana")
}

/// Files of `dir` ending in `ext`, sorted.
pub fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    v.sort();
    v
}

/// A YAML file as JSON values (one per document), so that the tests walk YAML and JSON alike.
pub fn yaml(path: &Path) -> Vec<Value> {
    use saphyr::LoadableYamlNode;
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs =
        saphyr::Yaml::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    docs.iter().map(yaml_to_json).collect()
}

fn yaml_to_json(y: &saphyr::Yaml) -> Value {
    use saphyr::{Scalar, Yaml};
    match y {
        Yaml::Value(Scalar::Null) => Value::Null,
        Yaml::Value(Scalar::Boolean(b)) => Value::Bool(*b),
        Yaml::Value(Scalar::Integer(i)) => Value::from(*i),
        Yaml::Value(Scalar::FloatingPoint(f)) => Value::from(f.into_inner()),
        Yaml::Value(Scalar::String(s)) => Value::String(s.to_string()),
        Yaml::Representation(s, _, _) => Value::String(s.to_string()),
        Yaml::Sequence(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        Yaml::Mapping(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = match yaml_to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        other => panic!("unexpected YAML node {other:?}"),
    }
}

/// The uid of the Prometheus datasource that grafana/provisioning/datasources provisions.
pub fn provisioned_datasource_uid() -> String {
    let dir = root().join("provisioning/datasources");
    let mut uids = Vec::new();
    for f in files(&dir, ".yaml") {
        for doc in yaml(&f) {
            for ds in doc["datasources"].as_array().into_iter().flatten() {
                assert_eq!(ds["type"], "prometheus", "{}: {ds}", f.display());
                uids.push(ds["uid"].as_str().expect("a fixed uid").to_string());
            }
        }
    }
    assert_eq!(uids.len(), 1, "one provisioned datasource: {uids:?}");
    uids.remove(0)
}

pub struct Dashboard {
    pub file: PathBuf,
    pub json: Value,
}

impl Dashboard {
    pub fn all() -> Vec<Dashboard> {
        files(&root().join("dashboards"), ".json")
            .into_iter()
            .map(|file| {
                let text = std::fs::read_to_string(&file).unwrap();
                let json = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", file.display()));
                Dashboard { file, json }
            })
            .collect()
    }

    pub fn uid(&self) -> &str {
        self.json["uid"].as_str().unwrap_or_default()
    }

    /// Every panel, rows included, with the panels nested in collapsed rows.
    pub fn panels(&self) -> Vec<&Value> {
        let mut out = Vec::new();
        for p in self.json["panels"].as_array().into_iter().flatten() {
            out.push(p);
            out.extend(p["panels"].as_array().into_iter().flatten());
        }
        out
    }

    pub fn variables(&self) -> Vec<&Value> {
        self.json["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .collect()
    }

    /// The annotations that query the datasource (Grafana's built-in one left out).
    pub fn annotations(&self) -> Vec<&Value> {
        self.json["annotations"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["builtIn"] != 1)
            .collect()
    }

    /// Every PromQL query of the dashboard: panel targets and annotations.
    pub fn queries(&self) -> Vec<Query> {
        let mut out = Vec::new();
        for p in self.panels() {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push(Query {
                    dashboard: self.uid().to_string(),
                    panel: p["title"].as_str().unwrap_or_default().to_string(),
                    panel_type: p["type"].as_str().unwrap_or_default().to_string(),
                    expr: t["expr"].as_str().unwrap_or_default().to_string(),
                    instant: t["instant"] == true,
                });
            }
        }
        for a in self.annotations() {
            out.push(Query {
                dashboard: self.uid().to_string(),
                panel: format!("annotation {}", a["name"].as_str().unwrap_or_default()),
                panel_type: "annotation".into(),
                expr: a["expr"].as_str().unwrap_or_default().to_string(),
                instant: false,
            });
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct Query {
    pub dashboard: String,
    pub panel: String,
    pub panel_type: String,
    pub expr: String,
    pub instant: bool,
}

/// The query string of a query variable (Grafana accepts a string or `{query: ...}`).
pub fn variable_query(v: &Value) -> String {
    match &v["query"] {
        Value::String(s) => s.clone(),
        q => q["query"].as_str().unwrap_or_default().to_string(),
    }
}

/// `label_values(SELECTOR, LABEL)` split into its selector and label.
pub fn label_values(query: &str) -> Option<(String, String)> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some((selector.trim().to_string(), label.trim().to_string()))
}

/// Grafana's built-in variables, as the tests substitute them: a rate window of several scrapes.
pub fn builtins(rate_interval: &str) -> BTreeMap<String, String> {
    [
        ("__rate_interval", rate_interval),
        ("__interval", "2s"),
        ("__range", "5m"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Substitutes `$name`, `${name}` and `${name:format}` with the values given, which the caller has
/// formatted as Grafana would (see [`regex_escape`]). Unknown names are left in place.
pub fn substitute(expr: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, consumed) = if let Some(b) = after.strip_prefix('{') {
            let end = b.find('}').unwrap_or(b.len());
            let name = b[..end].split(':').next().unwrap_or_default();
            (name, end + 2)
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match vars.get(name) {
            Some(v) => out.push_str(v),
            None => out.push_str(&rest[i..i + 1 + consumed]),
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

/// Names of the variables an expression refers to (built-ins included).
pub fn referenced_variables(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        let name: String = after
            .trim_start_matches('{')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // `$1` in label_replace replacements is not a variable.
        if !name.is_empty() && !name.chars().all(|c| c.is_ascii_digit()) {
            names.insert(name);
        }
        rest = after;
    }
    names
}

/// A single variable value as Grafana's Prometheus datasource writes it into a query: regex
/// metacharacters escaped (the values sit in `=~` matchers), the backslash doubled because it lands in a
/// PromQL double-quoted string.
pub fn regex_escape(v: &str) -> String {
    let mut out = String::new();
    for c in v.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            out.push_str("\\\\");
        }
        out.push(c);
    }
    out
}

/// Parses an expression (variables already substituted) with a PromQL parser.
pub fn parse(expr: &str) -> Result<Expr, String> {
    promql_parser::parser::parse(expr)
}

/// The metric names an expression selects, by name or by an `__name__="..."` matcher; `None` for a
/// selector whose name is a regex (e.g. the business-metric panels' `{__name__=~"$var"}`).
pub fn metric_names(expr: &Expr) -> (BTreeSet<String>, usize) {
    struct Names(BTreeSet<String>, usize);
    impl promql_parser::util::ExprVisitor for Names {
        type Error = ();
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, ()> {
            let vs = match e {
                Expr::VectorSelector(vs) => vs,
                Expr::MatrixSelector(ms) => &ms.vs,
                _ => return Ok(true),
            };
            let by_matcher = vs.matchers.matchers.iter().find(|m| {
                m.name == "__name__" && matches!(m.op, promql_parser::label::MatchOp::Equal)
            });
            match (&vs.name, by_matcher) {
                (Some(n), _) => {
                    self.0.insert(n.clone());
                }
                (None, Some(m)) => {
                    self.0.insert(m.value.clone());
                }
                (None, None) => self.1 += 1,
            }
            Ok(true)
        }
    }
    let mut v = Names(BTreeSet::new(), 0);
    promql_parser::util::walk_expr(&mut v, expr).unwrap();
    (v.0, v.1)
}

/// Every alert rule of grafana/prometheus/rules: (file, rule).
pub fn alert_rules() -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    for f in files(&root().join("prometheus/rules"), ".yml") {
        for doc in yaml(&f) {
            for g in doc["groups"].as_array().into_iter().flatten() {
                for r in g["rules"].as_array().into_iter().flatten() {
                    out.push((f.clone(), r.clone()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_as_grafana_does_it() {
        let mut vars = builtins("10s");
        vars.insert("service".into(), regex_escape("web.1"));
        assert_eq!(
            substitute(
                r#"rate(x{service=~"$service", a="${service:regex}"}[$__rate_interval])"#,
                &vars
            ),
            r#"rate(x{service=~"web\\.1", a="web\\.1"}[10s])"#
        );
        assert_eq!(
            substitute(r#"label_replace(x, "a", "$1", "b", "(.*)")"#, &vars),
            r#"label_replace(x, "a", "$1", "b", "(.*)")"#
        );
        assert_eq!(
            substitute("x{a=~\"$unknown\"}", &vars),
            "x{a=~\"$unknown\"}"
        );
        assert_eq!(
            referenced_variables(
                r#"label_replace(x{a=~"$service"}[$__rate_interval], "a", "$1", "b", "(.*)")"#
            ),
            ["__rate_interval", "service"]
                .into_iter()
                .map(String::from)
                .collect()
        );
    }

    #[test]
    fn metric_names_of_an_expression() {
        let e = parse(r#"sum(rate(a_total{x="1"}[5m])) / on (i) group_left b + {__name__="c"} + count({__name__=~"d.*"})"#).unwrap();
        let (names, unnamed) = metric_names(&e);
        assert_eq!(
            names,
            ["a_total", "b", "c"]
                .into_iter()
                .map(String::from)
                .collect()
        );
        assert_eq!(unnamed, 1);
    }

    #[test]
    fn label_values_queries() {
        assert_eq!(
            label_values(r#"label_values(x{a=~"$b", c!=""}, name)"#),
            Some((r#"x{a=~"$b", c!=""}"#.to_string(), "name".to_string()))
        );
        assert_eq!(label_values("up"), None);
    }
}
