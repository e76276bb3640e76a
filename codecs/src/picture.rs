//! Uncompressed pictures between a video decoder and an encoder, and the
//! sizes and scaling a transcoder needs between them.

/// A picture in YUV 4:2:0 (I420), planes packed without padding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Picture {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Y, `width * height` bytes, then U and V, each
    /// `ceil(width/2) * ceil(height/2)` bytes.
    pub data: Vec<u8>,
}

impl Picture {
    /// The width and height of each chroma plane.
    pub fn chroma_size(&self) -> (usize, usize) {
        (self.width.div_ceil(2), self.height.div_ceil(2))
    }

    /// The Y, U and V planes.
    pub fn planes(&self) -> (&[u8], &[u8], &[u8]) {
        let luma = self.width * self.height;
        let (cw, ch) = self.chroma_size();
        let (y, rest) = self.data.split_at(luma.min(self.data.len()));
        let (u, v) = rest.split_at((cw * ch).min(rest.len()));
        (y, u, v)
    }

    /// Makes this an all-black picture of `width` x `height`.
    pub fn black(&mut self, width: usize, height: usize) {
        self.width = width;
        self.height = height;
        let luma = width * height;
        let (cw, ch) = self.chroma_size();
        self.data.clear();
        self.data.resize(luma, 16);
        self.data.resize(luma + 2 * cw * ch, 128);
    }

    /// Replaces the contents with three planes, each given as rows of `stride`
    /// bytes of which the first `width` (`ceil(width/2)` for chroma) are
    /// pixels: how decoders hand their pictures out. Reuses the allocation.
    pub fn copy_from_planes(&mut self, width: usize, height: usize, planes: [(&[u8], usize); 3]) {
        self.width = width;
        self.height = height;
        self.data.clear();
        let (cw, ch) = self.chroma_size();
        for (index, (plane, stride)) in planes.into_iter().enumerate() {
            let (w, h) = if index == 0 { (width, height) } else { (cw, ch) };
            if stride == 0 {
                continue;
            }
            for row in plane.chunks(stride).take(h) {
                self.data.extend_from_slice(&row[..w.min(row.len())]);
            }
        }
        // A short plane (a decoder bug) must not shift the next one.
        self.data.resize(width * height + 2 * cw * ch, 128);
    }
}

/// The size a transcoder encodes a `width` x `height` source at so that it
/// fits within `max_width` x `max_height` (either may be absent): the aspect
/// ratio kept, never larger than the source, both sides even (an H.264
/// encoder's 4:2:0 needs that) and at least 16.
pub fn fit_within(width: usize, height: usize, max_width: Option<usize>, max_height: Option<usize>) -> (usize, usize) {
    let (width, height) = (width.max(1), height.max(1));
    let mut scale = 1.0f64;
    if let Some(max) = max_width {
        scale = scale.min(max as f64 / width as f64);
    }
    if let Some(max) = max_height {
        scale = scale.min(max as f64 / height as f64);
    }
    let even = |side: usize| {
        let scaled = (side as f64 * scale).round() as usize;
        (scaled & !1).max(16)
    };
    (even(width), even(height))
}

/// Scales `src` to `width` x `height` into `dst` (bilinear, each plane on its
/// own, sample centres aligned), reusing `dst`'s allocation. A picture of
/// the same size is copied.
pub fn scale(src: &Picture, width: usize, height: usize, dst: &mut Picture) {
    dst.width = width;
    dst.height = height;
    let (cw, ch) = dst.chroma_size();
    dst.data.resize(width * height + 2 * cw * ch, 0);
    let (sy, su, sv) = src.planes();
    let (src_cw, src_ch) = src.chroma_size();
    let (dy, rest) = dst.data.split_at_mut(width * height);
    let (du, dv) = rest.split_at_mut(cw * ch);
    scale_plane(sy, src.width, src.height, dy, width, height);
    scale_plane(su, src_cw, src_ch, du, cw, ch);
    scale_plane(sv, src_cw, src_ch, dv, cw, ch);
}

/// Fixed-point bits of the scaler's positions and weights.
const FRACTION_BITS: u32 = 16;
const ONE: i64 = 1 << FRACTION_BITS;

fn scale_plane(src: &[u8], sw: usize, sh: usize, dst: &mut [u8], dw: usize, dh: usize) {
    if sw == 0 || sh == 0 || src.len() < sw * sh {
        dst.fill(128);
        return;
    }
    if (sw, sh) == (dw, dh) {
        dst.copy_from_slice(&src[..dw * dh]);
        return;
    }
    // Source position of each destination sample: (d + 0.5) * s / d - 0.5,
    // clamped to the plane, as a whole index and a 16-bit fraction.
    let position = |d: usize, s: usize, n: usize| -> (usize, i64) {
        let p = ((2 * d as i64 + 1) * s as i64 * ONE / (2 * n as i64) - ONE / 2).clamp(0, (s as i64 - 1) * ONE);
        ((p >> FRACTION_BITS) as usize, p & (ONE - 1))
    };
    let columns: Vec<(usize, usize, i64)> = (0..dw)
        .map(|x| {
            let (i, f) = position(x, sw, dw);
            (i, (i + 1).min(sw - 1), f)
        })
        .collect();
    for (y, row) in dst.chunks_exact_mut(dw).take(dh).enumerate() {
        let (i, fy) = position(y, sh, dh);
        let top = &src[i * sw..(i + 1) * sw];
        let next = (i + 1).min(sh - 1);
        let bottom = &src[next * sw..(next + 1) * sw];
        for (out, &(x0, x1, fx)) in row.iter_mut().zip(&columns) {
            let t = i64::from(top[x0]) * (ONE - fx) + i64::from(top[x1]) * fx;
            let b = i64::from(bottom[x0]) * (ONE - fx) + i64::from(bottom[x1]) * fx;
            let value = (t * (ONE - fy) + b * fy + (1 << (2 * FRACTION_BITS - 1))) >> (2 * FRACTION_BITS);
            *out = value.clamp(0, 255) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: usize, height: usize) -> Picture {
        let mut picture = Picture::default();
        picture.black(width, height);
        for y in 0..height {
            for x in 0..width {
                picture.data[y * width + x] = (x * 255 / (width - 1)) as u8;
            }
        }
        picture
    }

    #[test]
    fn fits_keeping_the_aspect_ratio_and_never_upscales() {
        assert_eq!(fit_within(1280, 720, Some(640), None), (640, 360));
        assert_eq!(fit_within(1280, 720, None, Some(240)), (426, 240));
        assert_eq!(fit_within(640, 480, Some(320), Some(320)), (320, 240));
        assert_eq!(fit_within(1280, 720, Some(640), Some(100)), (178, 100));
        assert_eq!(fit_within(320, 240, Some(1920), Some(1080)), (320, 240));
        assert_eq!(fit_within(321, 241, None, None), (320, 240));
        assert_eq!(fit_within(4, 4, None, None), (16, 16));
    }

    #[test]
    fn scaling_keeps_a_gradient_and_flat_planes() {
        let src = gradient(320, 240);
        let mut dst = Picture::default();
        scale(&src, 160, 120, &mut dst);
        let (y, u, v) = dst.planes();
        assert_eq!(
            (dst.width, dst.height, y.len(), u.len(), v.len()),
            (160, 120, 19_200, 4_800, 4_800)
        );
        // Each row still runs from black to white, monotonically.
        for row in y.chunks(160) {
            assert!(row[0] < 4 && row[159] > 251, "ends {} {}", row[0], row[159]);
            assert!(row.windows(2).all(|w| w[0] <= w[1]));
        }
        assert!(u.iter().chain(v).all(|&c| c == 128));
    }

    #[test]
    fn same_size_is_a_copy_and_upscaling_interpolates() {
        let src = gradient(64, 48);
        let mut dst = Picture::default();
        scale(&src, 64, 48, &mut dst);
        assert_eq!(dst, src);
        scale(&src, 128, 96, &mut dst);
        let row = &dst.planes().0[..128];
        assert!(row.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!((row[0], row[127]), (0, 255));
    }

    #[test]
    fn a_short_source_gives_grey_not_a_panic() {
        let src = Picture {
            width: 100,
            height: 100,
            data: vec![0; 10],
        };
        let mut dst = Picture::default();
        scale(&src, 50, 50, &mut dst);
        assert_eq!(dst.data.len(), 50 * 50 + 2 * 25 * 25);
    }
}
