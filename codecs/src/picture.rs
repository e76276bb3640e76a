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
    /// bytes of which the first `width` (for chroma `ceil(width/2)`, or
    /// `width` when not subsampled) are pixels: how decoders hand their
    /// pictures out. `subsampling` says how the chroma planes come
    /// (horizontally, vertically: 1 halved as here, 0 full size, of which
    /// every second sample and row is kept). Reuses the allocation.
    pub fn copy_from_planes(
        &mut self,
        width: usize,
        height: usize,
        subsampling: (u8, u8),
        planes: [(&[u8], usize); 3],
    ) {
        if subsampling == (2, 2) {
            return self.copy_from_gbr(width, height, planes);
        }
        self.width = width;
        self.height = height;
        self.data.clear();
        let (cw, ch) = self.chroma_size();
        for (index, (plane, stride)) in planes.into_iter().enumerate() {
            if stride == 0 {
                continue;
            }
            if index == 0 {
                for row in plane.chunks(stride).take(height) {
                    self.data.extend_from_slice(&row[..width.min(row.len())]);
                }
                continue;
            }
            let (step_x, step_y) = (
                2 - usize::from(subsampling.0.min(1)),
                2 - usize::from(subsampling.1.min(1)),
            );
            for row in plane.chunks(stride).step_by(step_y).take(ch) {
                if step_x == 1 {
                    self.data.extend_from_slice(&row[..cw.min(row.len())]);
                } else {
                    self.data.extend(row.iter().step_by(2).take(cw));
                }
            }
        }
        // A short plane (a decoder bug) must not shift the next one.
        self.data.resize(width * height + 2 * cw * ch, 128);
    }
}

impl Picture {
    /// Replaces the contents with planar RGB (the G, B and R planes, rows
    /// of `stride` bytes) converted to BT.601 limited-range YUV 4:2:0, each
    /// chroma sample from the top-left pixel of its 2x2 block.
    fn copy_from_gbr(&mut self, width: usize, height: usize, planes: [(&[u8], usize); 3]) {
        self.width = width;
        self.height = height;
        let (cw, ch) = self.chroma_size();
        self.data.clear();
        self.data.resize(width * height + 2 * cw * ch, 128);
        let [(g, gs), (b, bs), (r, rs)] = planes;
        let pixel = |x: usize, y: usize| -> Option<(i32, i32, i32)> {
            let at = |plane: &[u8], stride: usize| plane.get(y * stride + x).map(|v| i32::from(*v));
            Some((at(r, rs)?, at(g, gs)?, at(b, bs)?))
        };
        let clamp = |v: i32| v.clamp(0, 255) as u8;
        for y in 0..height {
            for x in 0..width {
                let Some((r, g, b)) = pixel(x, y) else { continue };
                self.data[y * width + x] = clamp(16 + ((66 * r + 129 * g + 25 * b + 128) >> 8));
                if x % 2 == 0 && y % 2 == 0 {
                    let chroma = width * height + (y / 2) * cw + x / 2;
                    self.data[chroma] = clamp(128 + ((-38 * r - 74 * g + 112 * b + 128) >> 8));
                    self.data[chroma + cw * ch] = clamp(128 + ((112 * r - 94 * g - 18 * b + 128) >> 8));
                }
            }
        }
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

    #[test]
    fn full_size_chroma_keeps_every_second_sample_and_row() {
        // 4x2 luma; 4:4:4 chroma rows of stride 5 (one byte of padding each).
        let y = [1, 2, 3, 4, 5, 6, 7, 8];
        let u = [10, 11, 12, 13, 0, 14, 15, 16, 17, 0];
        let v = [20, 21, 22, 23, 0, 24, 25, 26, 27, 0];
        let mut picture = Picture::default();
        picture.copy_from_planes(4, 2, (0, 0), [(&y, 4), (&u, 5), (&v, 5)]);
        assert_eq!(picture.planes(), (&y[..], &[10, 12][..], &[20, 22][..]));
        // The same as 4:2:0 already: taken as it is.
        picture.copy_from_planes(4, 2, (1, 1), [(&y, 4), (&[10, 12], 2), (&[20, 22], 2)]);
        assert_eq!(picture.planes(), (&y[..], &[10, 12][..], &[20, 22][..]));
    }

    #[test]
    fn planar_rgb_becomes_limited_range_yuv() {
        // 2x2: white, black / red, blue.
        let g = [255, 0, 0, 0];
        let b = [255, 0, 0, 255];
        let r = [255, 0, 255, 0];
        let mut picture = Picture::default();
        picture.copy_from_planes(2, 2, (2, 2), [(&g, 2), (&b, 2), (&r, 2)]);
        assert_eq!(picture.planes(), (&[235, 16, 82, 41][..], &[128][..], &[128][..]));
    }

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
