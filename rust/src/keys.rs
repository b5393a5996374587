//! API keys: the digest the key ring looks a caller's key up by.

use sha2::{Digest, Sha256};

/// The SHA-256 of a key, as lower-case hex: what the store keeps instead of the key. A fast hash is right here: keys
/// are 256-bit random, so no dictionary or brute-force attack applies, and it runs on every call.
#[must_use]
pub fn key_digest(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut hex = String::with_capacity(2 * digest.len());
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::key_digest;

    #[test]
    fn matches_the_published_sha256_vectors() {
        // FIPS 180-2 examples.
        assert_eq!(
            key_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            key_digest(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
