//! A compressed run of samples of one series.
//!
//! Samples come at a near-regular interval and most values barely move between passes (idle counters,
//! steady gauges), so each sample is stored as a zigzag varint of the timestamp's delta-of-delta and one
//! of the value's delta: typically 2 bytes a sample instead of 16. This is what keeps a 15-minute window
//! of 100 containers inside the collector's memory budget.

/// Samples in one chunk before it is sealed; the window is trimmed a whole chunk at a time.
pub const CHUNK_SAMPLES: u32 = 120;

#[derive(Debug, Clone)]
pub struct Chunk {
    first_ts: i64,
    first_val: i64,
    last_ts: i64,
    last_val: i64,
    last_dts: i64,
    len: u32,
    bytes: Vec<u8>,
}

impl Chunk {
    pub fn new(ts: i64, val: i64) -> Self {
        Self {
            first_ts: ts,
            first_val: val,
            last_ts: ts,
            last_val: val,
            last_dts: 0,
            len: 1,
            bytes: Vec::with_capacity(2 * CHUNK_SAMPLES as usize),
        }
    }

    pub fn is_full(&self) -> bool {
        self.len >= CHUNK_SAMPLES
    }

    pub fn last_ts(&self) -> i64 {
        self.last_ts
    }

    pub fn last(&self) -> (i64, i64) {
        (self.last_ts, self.last_val)
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Bytes held by this chunk (payload capacity plus the header).
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + std::mem::size_of::<Self>()
    }

    pub fn push(&mut self, ts: i64, val: i64) {
        let dts = ts.wrapping_sub(self.last_ts);
        put_varint(&mut self.bytes, zigzag(dts.wrapping_sub(self.last_dts)));
        put_varint(&mut self.bytes, zigzag(val.wrapping_sub(self.last_val)));
        self.last_dts = dts;
        self.last_ts = ts;
        self.last_val = val;
        self.len += 1;
        if self.is_full() {
            self.bytes.shrink_to_fit();
        }
    }

    pub fn iter(&self) -> ChunkIter<'_> {
        ChunkIter {
            chunk: self,
            pos: 0,
            ts: self.first_ts,
            val: self.first_val,
            dts: 0,
            emitted: 0,
        }
    }
}

pub struct ChunkIter<'a> {
    chunk: &'a Chunk,
    pos: usize,
    ts: i64,
    val: i64,
    dts: i64,
    emitted: u32,
}

impl Iterator for ChunkIter<'_> {
    type Item = (i64, i64);

    fn next(&mut self) -> Option<(i64, i64)> {
        if self.emitted >= self.chunk.len {
            return None;
        }
        if self.emitted > 0 {
            let dod = unzigzag(get_varint(&self.chunk.bytes, &mut self.pos));
            let dv = unzigzag(get_varint(&self.chunk.bytes, &mut self.pos));
            self.dts = self.dts.wrapping_add(dod);
            self.ts = self.ts.wrapping_add(self.dts);
            self.val = self.val.wrapping_add(dv);
        }
        self.emitted += 1;
        Some((self.ts, self.val))
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Only reads what `put_varint` wrote, so a truncated stream cannot occur.
fn get_varint(bytes: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = bytes[*pos];
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips_any_samples(first in any::<(i64, i64)>(), rest in proptest::collection::vec(any::<(i64, i64)>(), 0..(CHUNK_SAMPLES as usize - 1))) {
            let mut c = Chunk::new(first.0, first.1);
            for &(t, v) in &rest {
                c.push(t, v);
            }
            let got: Vec<_> = c.iter().collect();
            let mut want = vec![first];
            want.extend(rest);
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn regular_idle_samples_take_two_bytes() {
        let mut c = Chunk::new(1_000, 5);
        for k in 1..CHUNK_SAMPLES as i64 {
            c.push(1_000 + k * 1_000, 5);
        }
        assert!(c.is_full());
        // first dod is 1000 (2 bytes), all later ones 0.
        assert_eq!(c.bytes.len(), 2 * (CHUNK_SAMPLES as usize - 1) + 1);
    }
}
