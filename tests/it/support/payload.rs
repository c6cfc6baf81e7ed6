//! Deterministic test payloads, the same bytes in the test binary and in
//! the helper processes it starts (tests/helper/ includes this file), so
//! that either side can check what the other wrote.
//!
//! Only byte generators: no I/O, and nothing from the rest of `support`
//! (the helper binary has no `support`).

/// Deterministic pseudo-random bytes (xorshift), for test payloads that must
/// not compress or repeat.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The bytes of MiB number `index` of a pseudo-random file made from `seed`.
pub fn mib_chunk(seed: u64, index: u64) -> Vec<u8> {
    pseudo_random_bytes(1 << 20, seed.wrapping_mul(1_000_003) ^ (index + 1))
}
