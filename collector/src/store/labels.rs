//! Label sets known only at run time, with names and values interned in the store.
//!
//! A receiver may see the same service and host names on thousands of series; interning keeps one
//! copy of each string, shared by every [`LabelSet`] that holds it. Strings no series holds any more
//! are dropped by [`Interner::sweep`], so a flood of distinct values does not leave its strings
//! behind once its series are gone.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

/// A series' labels, sorted by name, names unique.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct LabelSet(pub(super) Arc<[(Arc<str>, Arc<str>)]>);

impl LabelSet {
    /// Builds a set outside the store (tests, readers); the store interns its own.
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut v: Vec<(Arc<str>, Arc<str>)> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        LabelSet(v.into())
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(name))
            .ok()
            .map(|i| &*self.0[i].1)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether this set equals the sorted, duplicate-free `pairs`.
    pub(crate) fn equals_sorted(&self, pairs: &[(&str, &str)]) -> bool {
        self.0.len() == pairs.len()
            && self
                .0
                .iter()
                .zip(pairs)
                .all(|((k, v), (k2, v2))| **k == **k2 && **v == **v2)
    }
}

impl serde::Serialize for LabelSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

/// Why a label set cannot name a series.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("label name {0:?} is not a valid Prometheus label name")]
    InvalidName(String),
    #[error("label name {0:?} is reserved (starts with __)")]
    Reserved(String),
    #[error("label name {0:?} appears twice")]
    Duplicate(String),
}

/// Prometheus label names: `[a-zA-Z_][a-zA-Z0-9_]*`, and not `__`-prefixed (reserved).
pub fn check_label_name(name: &str) -> Result<(), LabelError> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_');
    if !first_ok || !bytes.all(|c| c.is_ascii_alphanumeric() || c == b'_') {
        return Err(LabelError::InvalidName(name.to_string()));
    }
    if name.starts_with("__") {
        return Err(LabelError::Reserved(name.to_string()));
    }
    Ok(())
}

/// Prometheus metric names: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && bytes.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// `pairs` sorted by name, checked: valid names, no name twice.
pub(crate) fn sorted_checked<'a>(
    pairs: &[(&'a str, &'a str)],
) -> Result<Vec<(&'a str, &'a str)>, LabelError> {
    let mut v = pairs.to_vec();
    v.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for w in v.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(LabelError::Duplicate(w[0].0.to_string()));
        }
    }
    for (k, _) in &v {
        check_label_name(k)?;
    }
    Ok(v)
}

/// Hash of a family and a sorted label list, the key of the store's series index.
pub(crate) fn series_hash(
    hasher: &impl BuildHasher,
    family: u32,
    sorted: impl Iterator<Item = (impl AsRef<str>, impl AsRef<str>)>,
) -> u64 {
    let mut h = hasher.build_hasher();
    family.hash(&mut h);
    for (k, v) in sorted {
        k.as_ref().hash(&mut h);
        v.as_ref().hash(&mut h);
    }
    h.finish()
}

/// `{a="b",c="d"}` in the order given, values escaped for the text exposition; empty for no labels.
pub(crate) fn render(pairs: &[(&str, &str)]) -> Box<str> {
    if pairs.is_empty() {
        return "".into();
    }
    let mut out = String::with_capacity(pairs.len() * 16);
    out.push('{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{k}=\"");
        escape_label_value(&mut out, v);
        out.push('"');
    }
    out.push('}');
    out.into_boxed_str()
}

pub(crate) fn escape_label_value(out: &mut String, v: &str) {
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// One shared copy of every label name and value in use.
#[derive(Debug, Default)]
pub struct Interner {
    strings: HashSet<Arc<str>>,
}

impl Interner {
    pub fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.strings.get(s) {
            return a.clone();
        }
        let a: Arc<str> = s.into();
        self.strings.insert(a.clone());
        a
    }

    /// The interned set of sorted, checked `pairs`.
    pub fn label_set(&mut self, sorted: &[(&str, &str)]) -> LabelSet {
        LabelSet(
            sorted
                .iter()
                .map(|(k, v)| (self.intern(k), self.intern(v)))
                .collect(),
        )
    }

    /// Drops the strings that only the interner still holds.
    pub fn sweep(&mut self) {
        self.strings.retain(|s| Arc::strong_count(s) > 1);
    }

    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.strings.len()
    }
}
