//! The per-number state table: a dense slab of entries and an open-addressing index over it.
//!
//! Why not a `HashMap`: at a million active numbers every record's lookup is two or three
//! cache misses, and that, not the arithmetic, bounds the monitor. This table lets the
//! monitor issue the loads for a whole batch of records before it needs any of them
//! ([`StateTable::prefetch_index`], [`StateTable::prefetch_entry`]), and it keeps memory
//! per number honest and small: entries are stored densely (no empty buckets of 200 bytes),
//! the index costs 8 bytes per bucket.

use super::state::NumberState;

/// One number's entry.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub key: u64,
    pub state: NumberState,
}

/// Slab + index. Index words: 0 = empty, else `fingerprint << 32 | (slot + 1)`.
#[derive(Default)]
pub(crate) struct StateTable {
    index: Vec<u64>,
    entries: Vec<Entry>,
}

/// A 64-bit mix of the key (keys are packed digits: their low bits alone are poor).
#[inline]
pub(crate) fn hash(key: u64) -> u64 {
    let h = (key ^ (key >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 29)
}

#[inline]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl StateTable {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes held: index and slab capacity.
    pub fn bytes(&self) -> usize {
        self.index.capacity() * 8 + self.entries.capacity() * std::mem::size_of::<Entry>()
    }

    #[inline]
    fn mask(&self) -> usize {
        self.index.len().wrapping_sub(1)
    }

    /// Starts loading the index bucket of hash `h`.
    #[inline]
    pub fn prefetch_index(&self, h: u64) {
        if !self.index.is_empty() {
            prefetch(&self.index[h as usize & self.mask()]);
        }
    }

    /// Starts loading an entry.
    #[inline]
    pub fn prefetch_entry(&self, slot: usize) {
        if let Some(e) = self.entries.get(slot) {
            prefetch(e);
            // The state spans several cache lines; the hot fields are spread over them.
            prefetch((e as *const Entry as *const u8).wrapping_add(64));
            prefetch((e as *const Entry as *const u8).wrapping_add(128));
        }
    }

    /// The slot of `key` (hash `h`), if present.
    #[inline]
    pub fn find(&self, key: u64, h: u64) -> Option<usize> {
        if self.index.is_empty() {
            return None;
        }
        let fingerprint = h >> 32;
        let mask = self.mask();
        let mut i = h as usize & mask;
        loop {
            let w = self.index[i];
            if w == 0 {
                return None;
            }
            if w >> 32 == fingerprint {
                let slot = (w as u32 - 1) as usize;
                if self.entries[slot].key == key {
                    return Some(slot);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// The slot of `key`, inserting `make()` when absent.
    pub fn find_or_insert(
        &mut self,
        key: u64,
        h: u64,
        make: impl FnOnce() -> NumberState,
    ) -> usize {
        if let Some(slot) = self.find(key, h) {
            return slot;
        }
        // Load ≤ 3/4 keeps linear probes short.
        if (self.entries.len() + 1) * 4 > self.index.len() * 3 {
            self.rebuild((self.index.len() * 2).max(64));
        }
        if self.entries.len() == self.entries.capacity() {
            // Grow by an eighth, not double: the slab is most of the memory.
            self.entries.reserve_exact((self.entries.len() / 8).max(64));
        }
        let slot = self.entries.len();
        self.entries.push(Entry { key, state: make() });
        self.place(h, slot);
        slot
    }

    fn place(&mut self, h: u64, slot: usize) {
        let mask = self.mask();
        let mut i = h as usize & mask;
        while self.index[i] != 0 {
            i = (i + 1) & mask;
        }
        self.index[i] = (h >> 32) << 32 | (slot as u64 + 1);
    }

    fn rebuild(&mut self, buckets: usize) {
        self.index = vec![0; buckets.next_power_of_two()];
        for slot in 0..self.entries.len() {
            let h = hash(self.entries[slot].key);
            self.place(h, slot);
        }
    }

    /// Visits every entry.
    pub fn for_each_mut(&mut self, mut f: impl FnMut(u64, &mut NumberState)) {
        for e in &mut self.entries {
            f(e.key, &mut e.state);
        }
    }

    pub fn entry_mut(&mut self, slot: usize) -> &mut Entry {
        &mut self.entries[slot]
    }

    /// Keeps the entries `keep` accepts; the index is rebuilt (eviction runs rarely).
    pub fn retain(&mut self, keep: impl FnMut(&Entry) -> bool) {
        let before = self.entries.len();
        self.entries.retain(keep);
        if self.entries.len() != before {
            if self.entries.capacity() > self.entries.len() * 2 + 64 {
                self.entries
                    .shrink_to(self.entries.len() + self.entries.len() / 8);
            }
            let mut buckets = 64;
            while self.entries.len() * 4 > buckets * 3 {
                buckets *= 2;
            }
            self.rebuild(buckets);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_it_inserted_across_growth_and_eviction() {
        let mut t = StateTable::default();
        for k in 1..=50_000u64 {
            let slot = t.find_or_insert(k * 7, hash(k * 7), NumberState::default);
            t.entry_mut(slot).state.last_seen = k as u32;
        }
        assert_eq!(t.len(), 50_000);
        for k in [1u64, 2, 49_999, 50_000] {
            let slot = t.find(k * 7, hash(k * 7)).unwrap();
            assert_eq!(t.entry_mut(slot).state.last_seen, k as u32);
        }
        assert_eq!(t.find(3, hash(3)), None);
        t.retain(|e| e.state.last_seen % 2 == 0);
        assert_eq!(t.len(), 25_000);
        assert!(t.find(14, hash(14)).is_some());
        assert!(t.find(7, hash(7)).is_none());
        let per = t.bytes() / t.len();
        assert!(per < 2 * std::mem::size_of::<Entry>(), "{per}");
    }
}
