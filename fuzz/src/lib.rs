//! What the fuzz targets share: cutting one input into the pieces a TCP
//! stream could have delivered it in, so that every parser that reads a
//! stream is also fuzzed at every split.
#![forbid(unsafe_code)]

/// Splits `data` after its first byte, which seeds the sizes of the pieces
/// (1 to 256 bytes each, varying): the same input always splits the same way.
pub fn pieces(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let (seed, mut rest) = match data.split_first() {
        Some((seed, rest)) => (*seed, rest),
        None => (0, data),
    };
    let mut state = u32::from(seed) | 1;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        // xorshift: cheap, deterministic sizes.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = (state % 256 + 1) as usize;
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_input_in_order() {
        let data: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let joined: Vec<u8> = pieces(&data).flatten().copied().collect();
        assert_eq!(joined, data[1..]);
        assert!(pieces(&data).count() > 10);
        assert_eq!(pieces(&[]).count(), 0);
    }
}
