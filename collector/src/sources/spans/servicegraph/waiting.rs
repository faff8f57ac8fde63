//! The pairing store: halves waiting for the other half of their call, and their order of arrival
//! for expiry. A compact index (key to slot, 32 bytes an entry) over a slab of the halves keeps the
//! hash probes of every span within few cache lines, and a half is written once, into a slot freed
//! shortly before (so still in cache), instead of being moved into and out of a wide hash table.

use std::collections::{HashMap, VecDeque};

use super::EdgeHalf;
use crate::sources::spans::span::{SpanId, TraceId};
use crate::store::Millis;

/// A half's key: the trace id and the client's span id (a server's parent span id).
pub type Key = (TraceId, Option<SpanId>);

#[derive(Debug)]
struct Slot {
    key: Key,
    half: EdgeHalf,
    since: Millis,
    /// Tells this half from a later one in the same slot, for the expiry queue.
    seq: u64,
}

#[derive(Debug, Default)]
pub struct Waiting {
    index: HashMap<Key, u32, foldhash::fast::RandomState>,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    /// (slot, seq) in order of arrival; entries of halves that left since are skipped.
    queue: VecDeque<(u32, u64)>,
    seq: u64,
}

impl Waiting {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Entries of the expiry queue and slots of the slab (both bounded).
    #[cfg(test)]
    pub fn sizes(&self) -> (usize, usize) {
        (self.queue.len(), self.slots.len())
    }

    /// The half waiting under `key`.
    pub fn get_mut(&mut self, key: &Key) -> Option<&mut EdgeHalf> {
        let i = *self.index.get(key)?;
        self.slots[i as usize].as_mut().map(|s| &mut s.half)
    }

    pub fn remove(&mut self, key: &Key) -> Option<EdgeHalf> {
        let i = self.index.remove(key)?;
        self.take_slot(i).map(|s| s.half)
    }

    fn take_slot(&mut self, i: u32) -> Option<Slot> {
        let s = self.slots[i as usize].take();
        self.free.push(i);
        s
    }

    /// Adds a half under a key that has none; `bound` is the most halves the store holds, which
    /// bounds the expiry queue too.
    pub fn insert(&mut self, key: Key, half: EdgeHalf, now: Millis, bound: usize) {
        self.seq += 1;
        let slot = Slot {
            key,
            half,
            since: now,
            seq: self.seq,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(key, i);
        self.queue.push_back((i, self.seq));
        // Paired halves leave stale queue entries behind; keep the queue within a bound.
        if self.queue.len() > 4 * bound + 64 {
            let slots = &self.slots;
            self.queue
                .retain(|(i, seq)| slots[*i as usize].as_ref().is_some_and(|s| s.seq == *seq));
        }
    }

    /// Takes the oldest half if it has waited `wait` by `now`, with its key.
    pub fn pop_expired(&mut self, now: Millis, wait: Millis) -> Option<(Key, EdgeHalf)> {
        while let Some((i, seq)) = self.queue.front().copied() {
            let Some(s) = self.slots[i as usize].as_ref().filter(|s| s.seq == seq) else {
                self.queue.pop_front();
                continue;
            };
            if s.since + wait > now {
                return None;
            }
            self.queue.pop_front();
            let key = s.key;
            self.index.remove(&key);
            let s = self.take_slot(i).expect("just found");
            return Some((key, s.half));
        }
        None
    }
}
