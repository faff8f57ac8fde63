//! Strict decoding of small YAML (or JSON) files into typed values, with every problem reported at
//! once as `file:line:col: message`. Shared by the autoscaler's policy files and the StatsD mapping
//! file, so both give the same kind of diagnostics.
//!
//! JSON is read by the same YAML 1.2 parser (JSON is a subset of it). A decoder never stops at the first
//! problem: unknown fields, type errors and validation errors are collected and reported together.

use std::fmt;
use std::time::Duration;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

/// A node of a parsed document, with its position.
pub type Node<'a> = MarkedYaml<'a>;

/// Where a problem was found: a position in a file, or a Docker label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// 1-based line and column.
    Position {
        line: usize,
        col: usize,
    },
    Label(String),
}

/// One problem in a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Location,
    pub message: String,
}

/// Every problem found in one source (a file name, or the service whose labels were read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SourceErrors {
    pub source_name: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for SourceErrors {
    /// One line per diagnostic: `file:line:col: message` (or `source: label KEY: message`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match &d.location {
                Location::Position { line, col } => {
                    write!(f, "{}:{line}:{col}: {}", self.source_name, d.message)?
                }
                Location::Label(key) => {
                    write!(f, "{}: label {key}: {}", self.source_name, d.message)?
                }
            }
        }
        Ok(())
    }
}

/// Parses `text` as exactly one YAML document; a syntax error, an empty text or several documents
/// are reported as a [`Diagnostic`]. `what` names the expected content ("a policy mapping").
pub fn load_one<'a>(text: &'a str, what: &str) -> Result<Node<'a>, Diagnostic> {
    let at = |line, col, message: String| Diagnostic {
        location: Location::Position { line, col },
        message,
    };
    let docs = match MarkedYaml::load_from_str(text) {
        Ok(docs) => docs,
        Err(e) => {
            let m = e.marker();
            return Err(at(
                m.line(),
                m.col() + 1,
                format!("syntax error: {}", e.info()),
            ));
        }
    };
    let mut docs = docs.into_iter();
    match (docs.next(), docs.next()) {
        (Some(doc), None) => Ok(doc),
        (None, _) => Err(at(1, 1, format!("empty document: expected {what}"))),
        (Some(_), Some(second)) => {
            let (line, col) = position(&second);
            Err(at(
                line,
                col,
                "expected exactly one YAML document per file".to_string(),
            ))
        }
    }
}

/// 1-based line and column of a node.
pub fn position(node: &Node) -> (usize, usize) {
    (node.span.start.line(), node.span.start.col() + 1)
}

/// The text of a string scalar.
pub fn scalar_text(node: &Node) -> Option<String> {
    match &node.data {
        YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
        _ => None,
    }
}

/// The fields of a mapping, in document order, with the key nodes kept for positions.
pub struct Fields<'a, 'n> {
    pub map: &'n Node<'a>,
    pub entries: Vec<(String, &'n Node<'a>, &'n Node<'a>)>,
}

impl<'a, 'n> Fields<'a, 'n> {
    pub fn get(&self, name: &str) -> Option<&'n Node<'a>> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == name)
            .map(|(_, _, v)| *v)
    }
}

/// Collects diagnostics while typed values are read out of a document.
#[derive(Debug, Default)]
pub struct Decoder {
    pub diags: Vec<Diagnostic>,
}

impl Decoder {
    /// The diagnostics in reading order, whatever order the checks ran in, as the errors of
    /// `source_name`; `Ok(value)` when there were none and the value could be built.
    pub fn finish<T>(mut self, source_name: &str, value: Option<T>) -> Result<T, SourceErrors> {
        match value {
            Some(v) if self.diags.is_empty() => Ok(v),
            _ => {
                self.diags.sort_by_key(|d| match d.location {
                    Location::Position { line, col } => (line, col),
                    Location::Label(_) => (0, 0),
                });
                Err(SourceErrors {
                    source_name: source_name.to_string(),
                    diagnostics: self.diags,
                })
            }
        }
    }

    pub fn error_at(&mut self, line: usize, col: usize, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            location: Location::Position { line, col },
            message: message.into(),
        });
    }

    pub fn error(&mut self, node: &Node, message: impl Into<String>) {
        let (line, col) = position(node);
        self.error_at(line, col, message);
    }

    /// A mapping whose keys are all in `allowed`; unknown keys are reported, not fatal.
    pub fn mapping<'a, 'n>(
        &mut self,
        node: &'n Node<'a>,
        what: &str,
        allowed: &[&str],
    ) -> Option<Fields<'a, 'n>> {
        let YamlData::Mapping(map) = &node.data else {
            self.error(node, format!("{what}: expected a mapping"));
            return None;
        };
        let mut entries = Vec::with_capacity(map.len());
        for (k, v) in map {
            let Some(key) = scalar_text(k) else {
                self.error(k, format!("{what}: keys must be strings"));
                continue;
            };
            if allowed.contains(&key.as_str()) {
                entries.push((key, k, v));
            } else {
                self.error(
                    k,
                    format!(
                        "{what}: unknown field `{key}`, expected one of: {}",
                        allowed.join(", ")
                    ),
                );
            }
        }
        Some(Fields { map: node, entries })
    }

    /// A mapping with arbitrary string keys (e.g. labels), in document order.
    pub fn string_map<'a, 'n>(
        &mut self,
        node: &'n Node<'a>,
        what: &str,
    ) -> Option<Vec<(String, &'n Node<'a>, &'n Node<'a>)>> {
        let YamlData::Mapping(map) = &node.data else {
            self.error(node, format!("{what}: expected a mapping"));
            return None;
        };
        let mut out = Vec::with_capacity(map.len());
        for (k, v) in map {
            match scalar_text(k) {
                Some(key) => out.push((key, k, v)),
                None => self.error(k, format!("{what}: keys must be strings")),
            }
        }
        Some(out)
    }

    /// The items of a sequence.
    pub fn sequence<'a, 'n>(&mut self, node: &'n Node<'a>, what: &str) -> Option<&'n [Node<'a>]> {
        match &node.data {
            YamlData::Sequence(items) => Some(items.as_slice()),
            _ => {
                self.error(node, format!("{what}: expected a list"));
                None
            }
        }
    }

    pub fn required<'a, 'n>(
        &mut self,
        f: &Fields<'a, 'n>,
        name: &str,
        what: &str,
    ) -> Option<&'n Node<'a>> {
        let v = f.get(name);
        if v.is_none() {
            self.error(f.map, format!("{what}: missing field `{name}`"));
        }
        v
    }

    pub fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.data {
            YamlData::Value(Scalar::String(s)) if !s.trim().is_empty() => Some(s.to_string()),
            _ => {
                self.error(node, format!("{what}: expected a non-empty string"));
                None
            }
        }
    }

    /// A scalar as text, whatever its YAML type (`5`, `true` and `web` are all label values).
    pub fn scalar_string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.data {
            YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
            YamlData::Value(Scalar::Integer(i)) => Some(i.to_string()),
            YamlData::Value(Scalar::FloatingPoint(x)) => Some(x.to_string()),
            YamlData::Value(Scalar::Boolean(b)) => Some(b.to_string()),
            _ => {
                self.error(node, format!("{what}: expected a string"));
                None
            }
        }
    }

    pub fn number(&mut self, node: &Node, what: &str) -> Option<f64> {
        match &node.data {
            YamlData::Value(Scalar::Integer(i)) => Some(*i as f64),
            YamlData::Value(Scalar::FloatingPoint(x)) if x.is_finite() => Some(x.into_inner()),
            _ => {
                self.error(node, format!("{what}: expected a number"));
                None
            }
        }
    }

    pub fn positive_number(&mut self, node: &Node, what: &str) -> Option<f64> {
        let x = self.number(node, what)?;
        if x > 0.0 {
            Some(x)
        } else {
            self.error(node, format!("{what}: must be greater than 0, got {x}"));
            None
        }
    }

    pub fn integer(&mut self, node: &Node, what: &str, min: u32) -> Option<u32> {
        match &node.data {
            YamlData::Value(Scalar::Integer(i)) => match u32::try_from(*i) {
                Ok(v) if v >= min => Some(v),
                _ => {
                    self.error(
                        node,
                        format!("{what}: must be an integer >= {min}, got {i}"),
                    );
                    None
                }
            },
            _ => {
                self.error(node, format!("{what}: expected an integer"));
                None
            }
        }
    }

    pub fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        match &node.data {
            YamlData::Value(Scalar::Boolean(b)) => Some(*b),
            _ => {
                self.error(node, format!("{what}: expected true or false"));
                None
            }
        }
    }

    /// Durations carry a unit (`15s`, `5m`, `250ms`); a bare number is ambiguous and rejected.
    pub fn duration(&mut self, node: &Node, what: &str, allow_zero: bool) -> Option<Duration> {
        let text = match &node.data {
            YamlData::Value(Scalar::String(s)) => s.to_string(),
            YamlData::Value(Scalar::Integer(_) | Scalar::FloatingPoint(_)) => {
                self.error(
                    node,
                    format!("{what}: a duration needs a unit, e.g. 15s, 5m or 250ms"),
                );
                return None;
            }
            _ => {
                self.error(
                    node,
                    format!("{what}: expected a duration such as 15s, 5m or 250ms"),
                );
                return None;
            }
        };
        match humantime::parse_duration(&text) {
            Ok(d) if d.is_zero() && !allow_zero => {
                self.error(node, format!("{what}: must be greater than 0"));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(node, format!("{what}: invalid duration `{text}`: {e}"));
                None
            }
        }
    }

    /// A non-empty list of strictly increasing finite numbers (histogram bucket bounds).
    pub fn increasing_numbers(&mut self, node: &Node, what: &str) -> Option<Vec<f64>> {
        let items = self.sequence(node, what)?;
        if items.is_empty() {
            self.error(node, format!("{what}: at least one value is required"));
            return None;
        }
        let values: Option<Vec<f64>> = items.iter().map(|n| self.number(n, what)).collect();
        let values = values?;
        if let Some(i) = values.windows(2).position(|w| w[0] >= w[1]) {
            self.error(
                &items[i + 1],
                format!(
                    "{what}: must be strictly increasing, got {} after {}",
                    values[i + 1],
                    values[i]
                ),
            );
            return None;
        }
        Some(values)
    }
}
