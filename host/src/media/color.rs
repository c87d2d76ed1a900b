//! Pixel-format conversion between I420 and packed RGB/BGR (BT.601, limited range, as browsers
//! and libvpx use), with the SIMD `yuv` crate.

use yuv::{
    BufferStoreMut, YuvConversionMode, YuvPlanarImage, YuvPlanarImageMut, YuvRange,
    YuvStandardMatrix,
};

use super::{MediaError, Picture, PixelFormat};

const RANGE: YuvRange = YuvRange::Limited;
const MATRIX: YuvStandardMatrix = YuvStandardMatrix::Bt601;

impl Picture {
    /// Converts the picture to `format` (a no-op when it already is in that format).
    ///
    /// Fails if the picture's size or data length is invalid.
    pub fn convert(self, format: PixelFormat) -> Result<Picture, MediaError> {
        self.validate()?;
        if self.format == format {
            return Ok(self);
        }
        let data = match (self.format, format) {
            (PixelFormat::I420, packed) => i420_to_packed(&self, packed)?,
            (packed, PixelFormat::I420) => packed_to_i420(&self, packed)?,
            // RGB <-> BGR: swap the first and third byte of every pixel.
            _ => {
                let mut data = self.data;
                for px in data.chunks_exact_mut(3) {
                    px.swap(0, 2);
                }
                data
            }
        };
        Ok(Picture {
            width: self.width,
            height: self.height,
            format,
            data,
            timestamp_us: self.timestamp_us,
        })
    }
}

/// Converts a validated I420 picture to packed RGB24 or BGR24.
fn i420_to_packed(pic: &Picture, target: PixelFormat) -> Result<Vec<u8>, MediaError> {
    let (y, u, v) = pic.planes().ok_or(MediaError::PixelFormat(pic.format))?;
    let chroma_stride = pic.width.div_ceil(2);
    let planar = YuvPlanarImage {
        y_plane: y,
        y_stride: pic.width,
        u_plane: u,
        u_stride: chroma_stride,
        v_plane: v,
        v_stride: chroma_stride,
        width: pic.width,
        height: pic.height,
    };
    let mut out = vec![0u8; target.len_for(pic.width, pic.height)];
    let stride = pic.width * 3;
    match target {
        PixelFormat::Rgb24 => yuv::yuv420_to_rgb(&planar, &mut out, stride, RANGE, MATRIX)?,
        PixelFormat::Bgr24 => yuv::yuv420_to_bgr(&planar, &mut out, stride, RANGE, MATRIX)?,
        PixelFormat::I420 => return Err(MediaError::PixelFormat(target)),
    }
    Ok(out)
}

/// Converts a validated packed RGB24 or BGR24 picture to I420.
fn packed_to_i420(pic: &Picture, source: PixelFormat) -> Result<Vec<u8>, MediaError> {
    let (w, h) = (pic.width as usize, pic.height as usize);
    let luma = w * h;
    let chroma = w.div_ceil(2) * h.div_ceil(2);
    let mut out = vec![0u8; luma + 2 * chroma];
    let (y, rest) = out.split_at_mut(luma);
    let (u, v) = rest.split_at_mut(chroma);
    let chroma_stride = pic.width.div_ceil(2);
    let mut planar = YuvPlanarImageMut {
        y_plane: BufferStoreMut::Borrowed(y),
        y_stride: pic.width,
        u_plane: BufferStoreMut::Borrowed(u),
        u_stride: chroma_stride,
        v_plane: BufferStoreMut::Borrowed(v),
        v_stride: chroma_stride,
        width: pic.width,
        height: pic.height,
    };
    let stride = pic.width * 3;
    let mode = YuvConversionMode::Balanced;
    match source {
        PixelFormat::Rgb24 => {
            yuv::rgb_to_yuv420(&mut planar, &pic.data, stride, RANGE, MATRIX, mode)?
        }
        PixelFormat::Bgr24 => {
            yuv::bgr_to_yuv420(&mut planar, &pic.data, stride, RANGE, MATRIX, mode)?
        }
        PixelFormat::I420 => return Err(MediaError::PixelFormat(source)),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth-ish RGB test image: gradients plus flat colour blocks.
    fn test_rgb(w: u32, h: u32) -> Picture {
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for yy in 0..h {
            for xx in 0..w {
                let (r, g, b) = if xx < w / 4 {
                    (200, 30, 40) // flat red block
                } else if yy < h / 4 {
                    (20, 180, 90) // flat green block
                } else {
                    ((xx * 255 / w) as u8, (yy * 255 / h) as u8, 128)
                };
                data.extend_from_slice(&[r, g, b]);
            }
        }
        Picture::new(w, h, PixelFormat::Rgb24, data, 42).unwrap()
    }

    fn max_abs_diff(a: &[u8], b: &[u8]) -> (u8, f64) {
        let mut max = 0u8;
        let mut sum = 0u64;
        for (x, y) in a.iter().zip(b) {
            let d = x.abs_diff(*y);
            max = max.max(d);
            sum += u64::from(d);
        }
        (max, sum as f64 / a.len() as f64)
    }

    #[test]
    fn rgb_i420_rgb_round_trip() {
        let rgb = test_rgb(64, 48);
        let i420 = rgb.clone().convert(PixelFormat::I420).unwrap();
        assert_eq!(i420.data.len(), 64 * 48 * 3 / 2);
        assert_eq!(i420.timestamp_us, 42);
        // BT.601 limited range: the red block is Y = 16 + (65.5*R + 128.6*G + 25*B)/255.
        let (y, u, v) = i420.planes().unwrap();
        let expect_y = 16.0 + (65.481 * 200.0 + 128.553 * 30.0 + 24.966 * 40.0) / 255.0;
        assert!((f64::from(y[0]) - expect_y).abs() <= 1.5, "Y {}", y[0]);
        assert!(v[0] > 200, "red block V {}", v[0]);
        assert!(u[0] < 128, "red block U {}", u[0]);

        let back = i420.convert(PixelFormat::Rgb24).unwrap();
        let (max, mean) = max_abs_diff(&back.data, &rgb.data);
        // Flat blocks survive nearly exactly; gradients lose a little to 4:2:0 subsampling.
        assert!(mean < 2.0, "mean error {mean}");
        assert!(max <= 12, "max error {max}");
        let red_px = &back.data[..3];
        for (got, want) in red_px.iter().zip([200u8, 30, 40]) {
            assert!(got.abs_diff(want) <= 3, "{red_px:?}");
        }
    }

    #[test]
    fn bgr_paths_and_odd_sizes() {
        let rgb = test_rgb(33, 17);
        let bgr = rgb.clone().convert(PixelFormat::Bgr24).unwrap();
        assert_eq!(&bgr.data[..3], &[40, 30, 200]);
        let via_bgr = bgr.convert(PixelFormat::I420).unwrap();
        let via_rgb = rgb.clone().convert(PixelFormat::I420).unwrap();
        assert_eq!(via_bgr.data.len(), 33 * 17 + 2 * 17 * 9);
        assert_eq!(via_bgr.data, via_rgb.data);
        let back = via_bgr.convert(PixelFormat::Bgr24).unwrap();
        let rgb_again = back.convert(PixelFormat::Rgb24).unwrap();
        let (_, mean) = max_abs_diff(&rgb_again.data, &rgb.data);
        assert!(mean < 3.0, "mean error {mean}");
    }

    #[test]
    fn rejects_bad_pictures() {
        let bad = Picture {
            width: 4,
            height: 4,
            format: PixelFormat::I420,
            data: vec![0; 10],
            timestamp_us: 0,
        };
        assert!(bad.convert(PixelFormat::Rgb24).is_err());
        let same = Picture::black(2, 2, PixelFormat::I420, 0);
        assert_eq!(same.clone().convert(PixelFormat::I420).unwrap(), same);
        let black = Picture::black(8, 8, PixelFormat::I420, 0)
            .convert(PixelFormat::Rgb24)
            .unwrap();
        assert!(black.data.iter().all(|&p| p <= 1));
    }
}
