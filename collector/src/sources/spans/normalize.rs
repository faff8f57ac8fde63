//! Span names without the ids that make them unbounded: `GET /user/42/orders?x=1` becomes
//! `GET /user/{id}/orders`.
//!
//! A `/`-separated segment is an id when it is a decimal number, a UUID, or a hex string of 16 or
//! more characters with a digit in it (object ids, hashes). A query string is dropped.

use std::borrow::Cow;

/// What an id segment becomes.
pub const ID: &str = "{id}";

fn is_id(seg: &str) -> bool {
    let b = seg.as_bytes();
    if b.is_empty() {
        return false;
    }
    if b.iter().all(u8::is_ascii_digit) {
        return true;
    }
    if b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
    {
        return true;
    }
    b.len() >= 16 && b.iter().all(u8::is_ascii_hexdigit) && b.iter().any(u8::is_ascii_digit)
}

/// The span name with ids replaced; borrowed when nothing changes.
pub fn span_name(name: &str) -> Cow<'_, str> {
    let path = match name.find('?') {
        Some(q) => &name[..q],
        None => name,
    };
    if path.len() == name.len() && !path.split('/').any(is_id) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(if is_id(seg) { ID } else { seg });
    }
    Cow::Owned(out)
}
