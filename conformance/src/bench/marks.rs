//! A frame number drawn into the top of a picture's luma plane, so a player
//! can tell which published frame it is looking at, whatever the server did
//! in between: pass it through, transcode it, scale it.
//!
//! The mark is a band of [`BLOCKS`] blocks across the picture, each black
//! (16) or white (235): 16 bits of the number, then a 4-bit check (the XOR of
//! its nibbles). Blocks are an eighth of the picture high and a twentieth
//! wide, large enough to survive lossy coding and a scale down to a quarter.
//! A reader samples the middle of each block; a grey block or a wrong check
//! reads as no mark at all, never as a wrong number.

/// Blocks in the band: 16 value bits and 4 check bits.
pub const BLOCKS: usize = 20;

const BLACK: u8 = 16;
const WHITE: u8 = 235;

fn check(value: u16) -> u16 {
    (value ^ value >> 4 ^ value >> 8 ^ value >> 12) & 0xF
}

fn band(width: usize, height: usize) -> Option<(usize, usize)> {
    let (rows, block) = ((height / 8).max(4), width / BLOCKS);
    (block >= 2 && rows <= height).then_some((rows, block))
}

/// Draws `value` into the luma plane `y` (rows of `stride` bytes) of a
/// `width` x `height` picture. Pictures narrower than 40 pixels get no mark.
pub fn draw(y: &mut [u8], stride: usize, width: usize, height: usize, value: u16) {
    let Some((rows, block)) = band(width, height) else {
        return;
    };
    if stride < width || y.len() < stride * rows {
        return;
    }
    let bits = u32::from(value) << 4 | u32::from(check(value));
    for row in y.chunks_mut(stride).take(rows) {
        for (index, pixels) in row[..block * BLOCKS].chunks_mut(block).enumerate() {
            let on = bits >> (BLOCKS - 1 - index) & 1 == 1;
            pixels.fill(if on { WHITE } else { BLACK });
        }
    }
}

/// Reads the number [`draw`] put into a picture; `None` when there is no
/// readable mark.
pub fn read(y: &[u8], stride: usize, width: usize, height: usize) -> Option<u16> {
    let (rows, block) = band(width, height)?;
    if stride < width || y.len() < stride * rows {
        return None;
    }
    let mut bits = 0u32;
    for index in 0..BLOCKS {
        // The middle half of the block, both ways: away from ringing at its edges.
        let (x0, x1) = (index * block + block / 4, index * block + block - block / 4);
        let (y0, y1) = (rows / 4, rows - rows / 4);
        let (mut sum, mut count) = (0u32, 0u32);
        for row in y0..y1.max(y0 + 1) {
            for &pixel in &y[row * stride + x0..row * stride + x1.max(x0 + 1)] {
                sum += u32::from(pixel);
                count += 1;
            }
        }
        let mean = sum / count.max(1);
        let bit = match mean {
            0..=80 => 0,
            170..=255 => 1,
            _ => return None,
        };
        bits = bits << 1 | bit;
    }
    let value = (bits >> 4) as u16;
    (check(value) == (bits & 0xF) as u16).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use codecs::picture::{scale, Picture};

    #[test]
    fn a_mark_reads_back_at_full_size_and_scaled_down() {
        for value in [0u16, 1, 0x1234, 0xFFFF, 40_000] {
            let mut picture = Picture::default();
            picture.black(320, 240);
            for (i, pixel) in picture.data[..320 * 240].iter_mut().enumerate() {
                *pixel = (i % 200) as u8 + 16;
            }
            draw(&mut picture.data, 320, 320, 240, value);
            assert_eq!(read(&picture.data, 320, 320, 240), Some(value));
            let mut small = Picture::default();
            scale(&picture, 80, 60, &mut small);
            assert_eq!(read(&small.data, 80, 80, 60), Some(value), "{value} at 80x60");
        }
    }

    #[test]
    fn no_mark_and_a_damaged_mark_read_as_none() {
        let grey = vec![128u8; 320 * 240];
        assert_eq!(read(&grey, 320, 320, 240), None);
        let mut y = vec![16u8; 320 * 240];
        draw(&mut y, 320, 320, 240, 0x00FF);
        // Flip one value bit: the check no longer matches.
        for row in y.chunks_mut(320).take(30) {
            row[..16].fill(235);
        }
        assert_eq!(read(&y, 320, 320, 240), None);
        assert_eq!(read(&[], 0, 0, 0), None);
    }
}
