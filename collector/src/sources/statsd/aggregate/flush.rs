//! Flushing the aggregation: the zero points of series that start, then every live series; series
//! expire after their TTL, and the series of a container that is gone are forgotten.

use std::sync::Arc;

use foldhash::{HashSet, HashSetExt};

use super::{
    Aggregator, ContainerId, Family, FamilyKind, FlushValue, Series, SeriesId, SeriesKey,
    SeriesView, Sink, State,
};
use crate::store::Millis;

impl Aggregator {
    /// Writes the zero point of every cumulative series that has not been flushed yet. Call it
    /// before [`Aggregator::flush`], at a time before the flush's (the store sink uses the previous
    /// flush time, since when the first increments came in).
    pub fn flush_starts(&mut self, sink: &mut dyn Sink) {
        for (slot, (gen, entry)) in self.slots.iter().enumerate() {
            let Some(s) = entry else { continue };
            if !s.fresh {
                continue;
            }
            let id = SeriesId {
                slot: slot as u32,
                gen: *gen,
            };
            let fam = self.families[s.family as usize]
                .as_ref()
                .expect("indexed family");
            let view = view(fam, s);
            match &s.state {
                State::Counter(_) => sink.write(id, &view, FlushValue::Counter(0.0)),
                State::Histogram(h) => {
                    let zeros = vec![0.0; h.buckets.len()];
                    sink.write(
                        id,
                        &view,
                        FlushValue::Histogram {
                            bounds: &h.bounds,
                            buckets: &zeros,
                            count: 0.0,
                            sum: 0.0,
                        },
                    );
                }
                State::Gauge(_) | State::Set(_) => {}
            }
        }
    }

    /// Forgets the series whose TTL has passed at `now`, then writes every live series: the
    /// cumulative counter, the last gauge value, the cumulative histogram, the distinct members of a
    /// set seen since the previous flush.
    pub fn flush(&mut self, now: Millis, sink: &mut dyn Sink) {
        let mut expired = 0;
        for slot in 0..self.slots.len() {
            let due = match &self.slots[slot].1 {
                Some(s) => s.ttl_ms > 0 && now.saturating_sub(s.last_seen) >= s.ttl_ms,
                None => continue,
            };
            if due {
                self.remove(slot);
                expired += 1;
                continue;
            }
            let (gen, entry) = &mut self.slots[slot];
            let s = entry.as_mut().expect("checked above");
            let id = SeriesId {
                slot: slot as u32,
                gen: *gen,
            };
            s.fresh = false;
            let fam = self.families[s.family as usize]
                .as_ref()
                .expect("indexed family");
            let value = match &s.state {
                State::Counter(c) => FlushValue::Counter(*c),
                State::Gauge(g) => FlushValue::Gauge(*g),
                State::Histogram(h) => FlushValue::Histogram {
                    bounds: &h.bounds,
                    buckets: &h.buckets,
                    count: h.count,
                    sum: h.sum,
                },
                State::Set(members) => FlushValue::Gauge(members.len() as f64),
            };
            sink.write(id, &view(fam, s), value);
            if let State::Set(members) = &mut s.state {
                // A set that was large this interval gives its memory back.
                if members.capacity() > 1024 {
                    *members = HashSet::new();
                } else {
                    members.clear();
                }
            }
        }
        self.set_members = 0;
        if expired > 0 {
            self.counts.expired += expired;
            self.removed();
        }
    }

    /// Forgets every series attributed to a container that `running` says is gone (its container
    /// was removed); returns how many. A datagram from its old address is then no longer attributed.
    pub fn forget_containers(&mut self, running: impl Fn(&ContainerId) -> bool) -> usize {
        let mut n = 0;
        for slot in 0..self.slots.len() {
            let gone = matches!(&self.slots[slot].1,
                Some(s) if s.attribution.as_ref().is_some_and(|c| !running(c)));
            if gone {
                self.remove(slot);
                n += 1;
            }
        }
        if n > 0 {
            self.removed();
        }
        n
    }

    /// Deletes the series in `slot`: the slot's generation moves on, and its family goes with its
    /// last series.
    fn remove(&mut self, slot: usize) {
        let (gen, entry) = &mut self.slots[slot];
        let Some(s) = entry.take() else { return };
        *gen = gen.wrapping_add(1);
        self.free_slots.push(slot as u32);
        self.by_key.remove(&SeriesKey {
            family: s.family,
            labels: s.labels,
            attribution: s.attribution,
        });
        let fam = self.families[s.family as usize]
            .as_mut()
            .expect("indexed family");
        fam.series -= 1;
        if fam.series == 0 {
            let name = fam.name.clone();
            self.family_by_name.remove(&name);
            self.families[s.family as usize] = None;
            self.free_families.push(s.family);
        }
        self.live -= 1;
    }

    /// After series were deleted: negative answers may change now that limits have room, and freed
    /// strings can go.
    fn removed(&mut self) {
        self.cache.clear();
        self.strings.retain(|s| Arc::strong_count(s) > 1);
    }
}

fn view<'a>(fam: &'a Family, s: &'a Series) -> SeriesView<'a> {
    SeriesView {
        family: &fam.name,
        kind: FamilyKind::of(fam.kind),
        help: &fam.help,
        labels: &s.labels,
        attribution: s.attribution.as_ref(),
    }
}
