//! Compressed runs of samples of one series, with one timestamp encoding and three value codecs.
//!
//! Samples come at a near-regular interval and most values barely move between passes (idle counters,
//! steady gauges), so each timestamp is stored as a zigzag varint of its delta-of-delta (one byte when
//! regular) and each value against the previous one:
//! - [`IntCodec`], for raw kernel integers: a zigzag varint of the delta (typically 1 byte, so 2 bytes
//!   a sample instead of 16). This is what keeps a 15-minute window of 100 containers small.
//! - [`FloatCodec`], for everything else: a byte-oriented cousin of Gorilla's XOR encoding. An equal
//!   value is one byte; a small integral step (a counter) is one byte; a larger integral step is a tag
//!   and a varint; anything else is the XOR with the previous value without its zero bytes at either
//!   end. Bytes, not bits, keep the decoder simple and fast; values are compared bit for bit, so NaN
//!   payloads, infinities and -0.0 come back exactly.
//! - [`MultiCodec`], for histograms and summaries: all fields of a sample share one timestamp; a
//!   sample equal to the previous one is one byte, otherwise a bitmap of the changed fields and each
//!   changed field in the float encoding.

/// Samples in one chunk before it is sealed; the window is trimmed a whole chunk at a time.
pub const CHUNK_SAMPLES: u32 = 120;

/// How the values of one kind of series are encoded against the previous value.
pub trait ValueCodec {
    type V: Clone + std::fmt::Debug;
    fn encode(out: &mut Vec<u8>, prev: &Self::V, new: &Self::V);
    /// Turns `cur` (the previous value) into the next one.
    fn decode(bytes: &[u8], pos: &mut usize, cur: &mut Self::V);
    /// Heap bytes a value holds outside the chunk header.
    fn heap_bytes(_v: &Self::V) -> usize {
        0
    }
    /// Payload bytes to reserve for a new chunk.
    fn reserve(_first: &Self::V) -> usize {
        2 * CHUNK_SAMPLES as usize
    }
}

#[derive(Debug, Clone)]
pub struct Chunk<C: ValueCodec> {
    first_ts: i64,
    last_ts: i64,
    last_dts: i64,
    len: u32,
    first: C::V,
    last: C::V,
    bytes: Vec<u8>,
}

impl<C: ValueCodec> Chunk<C> {
    pub fn new(ts: i64, val: C::V) -> Self {
        Self {
            first_ts: ts,
            last_ts: ts,
            last_dts: 0,
            len: 1,
            bytes: Vec::with_capacity(C::reserve(&val)),
            last: val.clone(),
            first: val,
        }
    }

    pub fn is_full(&self) -> bool {
        self.len >= CHUNK_SAMPLES
    }

    pub fn first_ts(&self) -> i64 {
        self.first_ts
    }

    pub fn last_ts(&self) -> i64 {
        self.last_ts
    }

    pub fn last(&self) -> (i64, &C::V) {
        (self.last_ts, &self.last)
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Bytes held by this chunk (payload capacity, header and the values' own heap).
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
            + std::mem::size_of::<Self>()
            + C::heap_bytes(&self.first)
            + C::heap_bytes(&self.last)
    }

    /// Bytes of encoded samples (without the first sample, which the header holds).
    #[cfg(test)]
    pub fn payload_len(&self) -> usize {
        self.bytes.len()
    }

    pub fn push(&mut self, ts: i64, val: &C::V) {
        let dts = ts.wrapping_sub(self.last_ts);
        put_varint(&mut self.bytes, zigzag(dts.wrapping_sub(self.last_dts)));
        C::encode(&mut self.bytes, &self.last, val);
        self.last_dts = dts;
        self.last_ts = ts;
        self.last.clone_from(val);
        self.len += 1;
        if self.is_full() {
            self.bytes.shrink_to_fit();
        }
    }

    /// Walks the samples oldest first without allocating per sample.
    pub fn cursor(&self) -> Cursor<'_, C> {
        Cursor {
            chunk: self,
            pos: 0,
            ts: self.first_ts,
            dts: 0,
            cur: self.first.clone(),
            emitted: 0,
        }
    }
}

pub struct Cursor<'a, C: ValueCodec> {
    chunk: &'a Chunk<C>,
    pos: usize,
    ts: i64,
    dts: i64,
    cur: C::V,
    emitted: u32,
}

impl<C: ValueCodec> Cursor<'_, C> {
    /// Moves to the next sample; false past the last one.
    pub fn advance(&mut self) -> bool {
        if self.emitted >= self.chunk.len {
            return false;
        }
        if self.emitted > 0 {
            let b = &self.chunk.bytes;
            let dod = unzigzag(get_varint(b, &mut self.pos));
            self.dts = self.dts.wrapping_add(dod);
            self.ts = self.ts.wrapping_add(self.dts);
            C::decode(b, &mut self.pos, &mut self.cur);
        }
        self.emitted += 1;
        true
    }

    pub fn ts(&self) -> i64 {
        self.ts
    }

    pub fn value(&self) -> &C::V {
        &self.cur
    }
}

/// Raw kernel integers: zigzag varint of the delta.
#[derive(Debug, Clone, Copy)]
pub struct IntCodec;

impl ValueCodec for IntCodec {
    type V = i64;

    fn encode(out: &mut Vec<u8>, prev: &i64, new: &i64) {
        put_varint(out, zigzag(new.wrapping_sub(*prev)));
    }

    fn decode(bytes: &[u8], pos: &mut usize, cur: &mut i64) {
        *cur = cur.wrapping_add(unzigzag(get_varint(bytes, pos)));
    }
}

/// Floats: see the module documentation for the tags.
#[derive(Debug, Clone, Copy)]
pub struct FloatCodec;

/// Tag of a value equal (bit for bit) to the previous one.
const SAME: u8 = 0;
/// Tag of an integral step as a varint that follows.
const STEP: u8 = 1;
/// Tags `XOR..XOR + 64`: the XOR with the previous value; (tag - XOR) is 8 * leading zero bytes +
/// trailing zero bytes, and the bytes in between follow, least significant first.
const XOR: u8 = 2;
/// Tags with the high bit set: an integral step of -64..=63 (not 0), zigzagged in the low 7 bits.
const SMALL_STEP: u8 = 0x80;

/// Largest magnitude below which every integer is exactly representable.
const EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// The integral step from `prev` to `new` when both are integers the step reproduces exactly.
fn integral_step(prev: f64, new: f64) -> Option<i64> {
    let integral = |v: f64| v.abs() < EXACT_INT && v.fract() == 0.0;
    if !integral(prev) || !integral(new) {
        return None;
    }
    let d = new as i64 - prev as i64;
    // The decoder computes `prev + d`; -0.0 and rounding must come back bit for bit.
    ((prev + d as f64).to_bits() == new.to_bits()).then_some(d)
}

impl ValueCodec for FloatCodec {
    type V = f64;

    fn encode(out: &mut Vec<u8>, prev: &f64, new: &f64) {
        put_float(out, *prev, *new);
    }

    fn decode(bytes: &[u8], pos: &mut usize, cur: &mut f64) {
        *cur = get_float(bytes, pos, *cur);
    }
}

fn put_float(out: &mut Vec<u8>, prev: f64, new: f64) {
    let x = prev.to_bits() ^ new.to_bits();
    if x == 0 {
        out.push(SAME);
        return;
    }
    if let Some(d) = integral_step(prev, new) {
        if (-64..64).contains(&d) {
            out.push(SMALL_STEP | zigzag(d) as u8);
        } else {
            out.push(STEP);
            put_varint(out, zigzag(d));
        }
        return;
    }
    let lead = (x.leading_zeros() / 8) as usize;
    let trail = (x.trailing_zeros() / 8) as usize;
    out.push(XOR + (lead * 8 + trail) as u8);
    let bytes = (x >> (trail * 8)).to_le_bytes();
    out.extend_from_slice(&bytes[..8 - lead - trail]);
}

fn get_float(bytes: &[u8], pos: &mut usize, prev: f64) -> f64 {
    let tag = bytes[*pos];
    *pos += 1;
    match tag {
        SAME => prev,
        STEP => prev + unzigzag(get_varint(bytes, pos)) as f64,
        t if t & SMALL_STEP != 0 => prev + unzigzag(u64::from(t & !SMALL_STEP)) as f64,
        t => {
            let code = (t - XOR) as usize;
            let (lead, trail) = (code / 8, code % 8);
            let n = 8 - lead - trail;
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(&bytes[*pos..*pos + n]);
            *pos += n;
            f64::from_bits(prev.to_bits() ^ (u64::from_le_bytes(b) << (trail * 8)))
        }
    }
}

/// Fixed-width rows of floats (histogram: count, sum, buckets; summary: count, sum, quantiles).
#[derive(Debug, Clone, Copy)]
pub struct MultiCodec;

/// First byte of a row equal to the previous one; otherwise CHANGED and a bitmap follow.
const ROW_SAME: u8 = 0;
const ROW_CHANGED: u8 = 1;

impl ValueCodec for MultiCodec {
    type V = Box<[f64]>;

    fn encode(out: &mut Vec<u8>, prev: &Box<[f64]>, new: &Box<[f64]>) {
        debug_assert_eq!(prev.len(), new.len(), "rows of one series have one width");
        let changed = |i: usize| prev[i].to_bits() != new[i].to_bits();
        if !(0..new.len()).any(changed) {
            out.push(ROW_SAME);
            return;
        }
        out.push(ROW_CHANGED);
        for byte in 0..new.len().div_ceil(8) {
            let mut m = 0u8;
            for bit in 0..8 {
                let i = byte * 8 + bit;
                if i < new.len() && changed(i) {
                    m |= 1 << bit;
                }
            }
            out.push(m);
        }
        for i in (0..new.len()).filter(|i| changed(*i)) {
            put_float(out, prev[i], new[i]);
        }
    }

    fn decode(bytes: &[u8], pos: &mut usize, cur: &mut Box<[f64]>) {
        let flag = bytes[*pos];
        *pos += 1;
        if flag == ROW_SAME {
            return;
        }
        let map_at = *pos;
        let map_len = cur.len().div_ceil(8);
        *pos += map_len;
        for i in 0..cur.len() {
            if bytes[map_at + i / 8] & (1 << (i % 8)) != 0 {
                cur[i] = get_float(bytes, pos, cur[i]);
            }
        }
    }

    fn heap_bytes(v: &Box<[f64]>) -> usize {
        std::mem::size_of_val(&**v)
    }

    fn reserve(first: &Box<[f64]>) -> usize {
        // Mostly unchanged rows: a timestamp byte and a flag byte.
        2 * CHUNK_SAMPLES as usize + first.len()
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
mod tests;
