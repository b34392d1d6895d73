//! Deterministic pseudo-randomness for the synthetic datasets (no `rand` dependency),
//! and a little real randomness (from the OS, through UUID v4) for demo passwords.

/// SplitMix64 (Steele, Lea & Flood): tiny, fast, statistically fine for test data.
/// **Not** for secrets.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator for one independent stream: `seed`, a stream tag (which phase) and an
    /// index (which entity). Every entity gets its own stream, so a phase's choices do
    /// not depend on how much randomness an earlier phase consumed.
    pub fn stream(seed: u64, tag: u64, index: u64) -> Self {
        let mut mix = Self(seed ^ tag.wrapping_mul(0xA076_1D64_78BD_642F));
        let a = mix.next_u64();
        let mut mix = Self(a ^ index.wrapping_mul(0xE703_7ED1_A0B4_28DB));
        Self(mix.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`; 0 for `n == 0`), by multiply-shift (Lemire).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// An index into a slice of length `n`.
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: f64) -> bool {
        // 53 random bits → a uniform float in [0, 1).
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit * 100.0 < percent
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let i = self.index(items.len());
        &items[i]
    }

    /// 10 random bytes (for the random part of a UUID v7).
    pub fn bytes10(&mut self) -> [u8; 10] {
        let a = self.next_u64().to_le_bytes();
        let b = self.next_u64().to_le_bytes();
        let mut out = [0u8; 10];
        out[..8].copy_from_slice(&a);
        out[8..].copy_from_slice(&b[..2]);
        out
    }
}

/// A deterministic UUID v7: the timestamp is `base_ms + ordinal / 1000` (so ids of one
/// kind sort in creation order, like the app's own v7 ids) and the random bits come from
/// the seeded generator.
pub fn uuid_v7(base_ms: u64, ordinal: u64, rng: &mut SplitMix64) -> uuid::Uuid {
    uuid::Builder::from_unix_timestamp_millis(base_ms + ordinal / 1000, &rng.bytes10()).into_uuid()
}

/// Characters of generated passwords: no look-alikes (0/O, 1/l/I).
const PASSWORD_ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A fresh random password from the operating system's CSPRNG (through UUID v4, 122
/// random bits each): `xxxxx-xxxxx-xxxxx-xxxxx`, about 115 bits of entropy.
pub fn random_password() -> String {
    let alphabet = PASSWORD_ALPHABET.len();
    // Bytes at or above the largest multiple of the alphabet size are skipped, so every
    // character is equally likely.
    let limit = 256 - 256 % alphabet;
    let mut chars = Vec::with_capacity(20);
    while chars.len() < 20 {
        for (i, b) in uuid::Uuid::new_v4().into_bytes().into_iter().enumerate() {
            // Bytes 6 and 8 carry the fixed version and variant bits: skip them.
            let b = usize::from(b);
            if i != 6 && i != 8 && chars.len() < 20 && b < limit {
                chars.push(char::from(PASSWORD_ALPHABET[b % alphabet]));
            }
        }
    }
    let mut out = String::with_capacity(23);
    for (i, c) in chars.into_iter().enumerate() {
        if i > 0 && i.is_multiple_of(5) {
            out.push('-');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_deterministic_and_independent() {
        let a: Vec<u64> = (0..4)
            .map(|_| SplitMix64::stream(7, 1, 3).next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            SplitMix64::stream(7, 1, 3).next_u64(),
            SplitMix64::stream(7, 1, 4).next_u64()
        );
        assert_ne!(
            SplitMix64::stream(7, 1, 3).next_u64(),
            SplitMix64::stream(7, 2, 3).next_u64()
        );
        let mut r = SplitMix64::stream(1, 2, 3);
        assert!((0..1000).all(|_| r.below(7) < 7));
        let hits = (0..10_000).filter(|_| r.percent(10.0)).count();
        assert!((800..1200).contains(&hits), "{hits}");
    }

    #[test]
    fn uuids_are_v7_and_ordered() {
        let mut r = SplitMix64::stream(1, 2, 3);
        let a = uuid_v7(1_700_000_000_000, 0, &mut r);
        let b = uuid_v7(1_700_000_000_000, 1000, &mut r);
        assert_eq!(a.get_version_num(), 7);
        assert!(a < b);
    }

    #[test]
    fn passwords_are_random_and_valid() {
        let a = random_password();
        let b = random_password();
        assert_ne!(a, b);
        assert_eq!(a.len(), 23);
        assert!(tenancy::Password::parse(a).is_ok());
    }
}
