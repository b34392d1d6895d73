//! Byte weights of cache entries: every in-process cache is bounded by bytes (moka
//! weighers), not by entries. A weight is an estimate of what an entry keeps alive: the
//! key and value as stored inline, moka's per-entry bookkeeping, and the value's heap
//! content, measured as the length of its JSON form (strings and collections dominate
//! the values we cache, and JSON tracks their size closely without a per-type estimate).

use serde::Serialize;

/// moka's bookkeeping per entry (hash table slot, access-order and expiry nodes), an
/// upper estimate.
pub const ENTRY_OVERHEAD: usize = 128;

/// The weight of an entry of `K` → `V` whose value owns `heap` bytes outside itself,
/// saturated to `u32` (moka's weight type).
#[must_use]
pub fn entry_bytes<K, V>(heap: usize) -> u32 {
    let bytes = (size_of::<K>() + size_of::<V>() + ENTRY_OVERHEAD).saturating_add(heap);
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// The length of `value`'s JSON form, counted without building it (0 if it cannot be
/// serialized).
#[must_use]
pub fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => 0,
    }
}

struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One cache's size for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheBytes {
    /// The cache's name (the `cache` label).
    pub name: &'static str,
    /// The weight of its entries now.
    pub bytes: u64,
    /// Its byte budget.
    pub budget: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_len_counts_the_serialized_form() {
        assert_eq!(json_len(&"abc"), 5);
        assert_eq!(json_len(&vec![1, 2, 3]), 7);
    }

    #[test]
    fn an_entry_weighs_at_least_its_inline_size_and_overhead() {
        let w = entry_bytes::<u64, [u8; 32]>(10);
        assert_eq!(w as usize, 8 + 32 + ENTRY_OVERHEAD + 10);
        assert_eq!(entry_bytes::<u8, u8>(usize::MAX), u32::MAX);
    }
}
