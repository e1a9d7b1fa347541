//! Deterministic fake embeddings: the same input always gives the same unit vector, different
//! inputs give different ones, and no model is involved.

/// One input of an embeddings request.
#[derive(Debug, Clone, Copy)]
pub enum EmbeddingItem<'a> {
    Text(&'a str),
    Tokens(&'a [i64]),
}

impl EmbeddingItem<'_> {
    /// The usage this input is billed as: 4 characters a token, or one per token id.
    pub fn tokens(&self) -> u64 {
        match self {
            EmbeddingItem::Text(text) => crate::tokens::prompt_tokens(text.chars().count()),
            EmbeddingItem::Tokens(ids) => ids.len() as u64,
        }
    }

    fn hash(&self) -> u64 {
        match self {
            EmbeddingItem::Text(text) => fnv1a64(text.bytes()),
            EmbeddingItem::Tokens(ids) => fnv1a64(ids.iter().flat_map(|id| id.to_le_bytes())),
        }
    }
}

/// 64-bit FNV-1a.
pub fn fnv1a64(bytes: impl IntoIterator<Item = u8>) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.into_iter().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// SplitMix64: a tiny, well-mixed generator, written out here so the vectors do not change
/// when a dependency changes its algorithm.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A unit-length vector of `dimensions` values derived from the input's hash.
pub fn embed(item: EmbeddingItem<'_>, dimensions: usize) -> Vec<f32> {
    let mut state = item.hash();
    let raw: Vec<f64> = (0..dimensions)
        .map(|_| {
            // 53 random bits → [0, 1) → [-1, 1).
            let unit = (splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
            unit * 2.0 - 1.0
        })
        .collect();
    let norm = raw.iter().map(|v| v * v).sum::<f64>().sqrt();
    let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    raw.iter().map(|v| (v * scale) as f32).collect()
}

/// `encoding_format: "base64"`: the little-endian f32 bytes in standard base64, which is what
/// OpenAI sends (and what its Python and Node SDKs ask for by default).
pub fn to_base64(values: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(v: &[f32]) -> f64 {
        v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt()
    }

    #[test]
    fn fnv1a_matches_reference_values() {
        assert_eq!(fnv1a64(*b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(*b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(*b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn same_input_same_vector_different_input_different_vector() {
        let a = embed(EmbeddingItem::Text("hello"), 8);
        assert_eq!(a, embed(EmbeddingItem::Text("hello"), 8));
        assert_ne!(a, embed(EmbeddingItem::Text("hello!"), 8));
        assert_ne!(a, embed(EmbeddingItem::Tokens(&[1, 2, 3]), 8));
        assert_eq!(a.len(), 8);
    }

    #[test]
    fn vectors_are_unit_length() {
        for dims in [1, 8, 256, 3072] {
            let v = embed(EmbeddingItem::Text("normalise me"), dims);
            assert_eq!(v.len(), dims);
            assert!((norm(&v) - 1.0).abs() < 1e-5, "dims {dims}: {}", norm(&v));
        }
        assert!(embed(EmbeddingItem::Text("x"), 0).is_empty());
    }

    #[test]
    fn base64_matches_rfc4648() {
        // RFC 4648 test vectors, fed through the f32 path by reinterpreting bytes.
        let encode = |bytes: &[u8]| {
            let mut padded = bytes.to_vec();
            padded.resize(bytes.len().div_ceil(4) * 4, 0);
            let floats: Vec<f32> = padded
                .chunks(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            to_base64(&floats)
        };
        assert_eq!(encode(b"foob"), "Zm9vYg==");
        assert_eq!(to_base64(&[]), "");
        assert_eq!(to_base64(&[1.0]), "AACAPw==");
        assert_eq!(to_base64(&[1.0, 2.0, -1.0]), "AACAPwAAAEAAAIC/");
    }

    #[test]
    fn token_usage() {
        assert_eq!(EmbeddingItem::Text("abcde").tokens(), 2);
        assert_eq!(EmbeddingItem::Text("").tokens(), 1);
        assert_eq!(EmbeddingItem::Tokens(&[5, 6, 7]).tokens(), 3);
    }
}
