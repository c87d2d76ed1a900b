//! VP8 encoding and decoding of whole frames (RTP depacketization happens elsewhere), via the
//! system libvpx through the `wasmrtc-vpx` crate.

use super::{EncodedFrame, MediaError, Picture, PixelFormat};

/// Settings of a [`Vp8Encoder`]; the defaults suit 640x480 at 30 fps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Target bitrate in kbit/s (constant bitrate).
    pub bitrate_kbps: u32,
    /// Nominal frame rate.
    pub fps: u32,
    /// libvpx `cpu-used`, -16..=16: higher magnitude is faster and lower quality.
    pub cpu_used: i32,
    /// Maximum frames between key frames (so a receiver that missed one recovers even
    /// without asking); 0 lets libvpx decide.
    pub keyframe_interval: u32,
    /// Encoder threads.
    pub threads: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bitrate_kbps: 1_000,
            fps: 30,
            // The fastest speed: at 1000 kbit/s it encodes 640x480 in a third of the
            // time of 14 at a like PSNR (`--bench media`), so a core sends 9 streams.
            cpu_used: 16,
            keyframe_interval: 90,
            threads: 1,
        }
    }
}

/// A real-time VP8 encoder (one pass, CBR, no lag, error resilient, deadline realtime).
///
/// The encoder follows the size of the pictures it is given, re-creating libvpx's encoder
/// (and so sending a key frame) when the size changes.
#[derive(Debug)]
pub struct Vp8Encoder {
    inner: wasmrtc_vpx::Encoder,
    settings: Settings,
    force_keyframe: bool,
}

fn vpx_config(width: u32, height: u32, s: &Settings) -> wasmrtc_vpx::EncoderConfig {
    wasmrtc_vpx::EncoderConfig {
        width,
        height,
        bitrate_kbps: s.bitrate_kbps,
        fps: s.fps,
        cpu_used: s.cpu_used,
        keyframe_interval: s.keyframe_interval,
        threads: s.threads,
    }
}

impl Vp8Encoder {
    /// Creates an encoder for `width` x `height` pictures.
    pub fn new(width: u32, height: u32, settings: Settings) -> Result<Self, MediaError> {
        let inner = wasmrtc_vpx::Encoder::new(vpx_config(width, height, &settings))?;
        Ok(Vp8Encoder {
            inner,
            settings,
            force_keyframe: false,
        })
    }

    /// Current picture size.
    pub fn size(&self) -> (u32, u32) {
        let c = self.inner.config();
        (c.width, c.height)
    }

    /// Current settings (bitrate as last set).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Makes the next encoded frame a key frame (e.g. on a PLI or FIR from the receiver).
    pub fn force_keyframe(&mut self) {
        self.force_keyframe = true;
    }

    /// Changes the target bitrate on the fly.
    pub fn set_bitrate(&mut self, bitrate_kbps: u32) -> Result<(), MediaError> {
        self.inner.set_bitrate(bitrate_kbps)?;
        self.settings.bitrate_kbps = bitrate_kbps;
        Ok(())
    }

    /// Encodes one picture (converted to I420 first if it is RGB/BGR).
    ///
    /// Returns the compressed frames produced: one per picture with these settings.
    pub fn encode(&mut self, picture: &Picture) -> Result<Vec<EncodedFrame>, MediaError> {
        picture.validate()?;
        let converted;
        let pic = if picture.format == PixelFormat::I420 {
            picture
        } else {
            converted = picture.clone().convert(PixelFormat::I420)?;
            &converted
        };
        if self.size() != (pic.width, pic.height) {
            self.inner =
                wasmrtc_vpx::Encoder::new(vpx_config(pic.width, pic.height, &self.settings))?;
        }
        let force = std::mem::take(&mut self.force_keyframe);
        let pts = i64::try_from(pic.timestamp_us).unwrap_or(i64::MAX);
        let packets = self.inner.encode(&pic.data, pts, force)?;
        Ok(packets
            .into_iter()
            .map(|p| EncodedFrame {
                data: p.data,
                keyframe: p.keyframe,
                timestamp_us: pic.timestamp_us,
            })
            .collect())
    }
}

/// A VP8 decoder producing I420 pictures.
#[derive(Debug)]
pub struct Vp8Decoder {
    inner: wasmrtc_vpx::Decoder,
}

impl Vp8Decoder {
    /// Creates a single-threaded decoder.
    pub fn new() -> Result<Self, MediaError> {
        Ok(Vp8Decoder {
            inner: wasmrtc_vpx::Decoder::new(1)?,
        })
    }

    /// Decodes one whole VP8 frame; the picture, if the frame shows one, carries
    /// `timestamp_us`. A corrupt frame or one whose reference is missing is an error: the
    /// caller should then ask the sender for a key frame.
    pub fn decode(
        &mut self,
        frame: &[u8],
        timestamp_us: u64,
    ) -> Result<Option<Picture>, MediaError> {
        Ok(self.inner.decode(frame)?.map(|img| Picture {
            width: img.width,
            height: img.height,
            format: PixelFormat::I420,
            data: img.data,
            timestamp_us,
        }))
    }
}

/// Whether a whole VP8 frame is a key frame, from its header (RFC 6386 §9.1).
pub fn is_keyframe(frame: &[u8]) -> bool {
    frame.len() >= 10 && frame[0] & 1 == 0 && frame[3..6] == [0x9d, 0x01, 0x2a]
}

/// The picture size a VP8 key frame announces, or `None` for other frames.
pub fn keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    if !is_keyframe(frame) {
        return None;
    }
    let w = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let h = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some((u32::from(w), u32::from(h)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u32 = 640;
    const H: u32 = 480;

    /// Left half dark (Y 50), right half a bright horizontal ramp (Y 160..=240), a bright
    /// square (Y 235) at x 101..171, y 203..269 (not macroblock-aligned), and a reddish tint
    /// on the right half's chroma.
    fn pattern(timestamp_us: u64) -> Picture {
        let mut pic = Picture::black(W, H, PixelFormat::I420, timestamp_us);
        let (w, h) = (W as usize, H as usize);
        let (cw, ch) = (w / 2, h / 2);
        for y in 0..h {
            for x in 0..w {
                let in_square = (101..171).contains(&x) && (203..269).contains(&y);
                pic.data[y * w + x] = if in_square {
                    235
                } else if x < w / 2 {
                    50
                } else {
                    (160 + (x - w / 2) * 80 / (w / 2 - 1)) as u8
                };
            }
        }
        let v_off = w * h + cw * ch;
        for y in 0..ch {
            for x in cw / 2..cw {
                pic.data[v_off + y * cw + x] = 170;
            }
        }
        pic
    }

    fn region_mean(pic: &Picture, xs: std::ops::Range<usize>, ys: std::ops::Range<usize>) -> f64 {
        let w = pic.width as usize;
        let mut sum = 0u64;
        let n = xs.len() * ys.len();
        for y in ys {
            for x in xs.clone() {
                sum += u64::from(pic.data[y * w + x]);
            }
        }
        sum as f64 / n as f64
    }

    fn psnr(a: &[u8], b: &[u8]) -> f64 {
        let mse = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum::<f64>()
            / a.len() as f64;
        10.0 * (255.0f64.powi(2) / mse.max(1e-9)).log10()
    }

    /// Checks a decoded picture against the source pattern.
    fn assert_close(out: &Picture, src: &Picture, min_psnr: f64) {
        assert_eq!(
            (out.width, out.height, out.format),
            (W, H, PixelFormat::I420)
        );
        let luma = (W * H) as usize;
        let p = psnr(&out.data[..luma], &src.data[..luma]);
        assert!(p > min_psnr, "luma PSNR {p:.1} dB");
        let chroma = psnr(&out.data[luma..], &src.data[luma..]);
        assert!(chroma > min_psnr, "chroma PSNR {chroma:.1} dB");
        for (xs, ys) in [
            (8..300, 8..180),     // dark half, above the square
            (340..632, 8..472),   // ramp
            (104..168, 206..266), // inside the square
        ] {
            let got = region_mean(out, xs.clone(), ys.clone());
            let want = region_mean(src, xs.clone(), ys.clone());
            assert!(
                (got - want).abs() < 2.0,
                "{xs:?}x{ys:?}: {got:.1} vs {want:.1}"
            );
        }
    }

    #[test]
    fn round_trip_640x480_pattern() {
        let mut enc = Vp8Encoder::new(W, H, Settings::default()).unwrap();
        let mut dec = Vp8Decoder::new().unwrap();
        let mut total = 0;
        for i in 0..15u64 {
            let src = pattern(i * 33_333);
            let frames = enc.encode(&src).unwrap();
            assert_eq!(frames.len(), 1);
            let f = &frames[0];
            assert_eq!(f.keyframe, i == 0, "frame {i}");
            assert_eq!(is_keyframe(&f.data), f.keyframe);
            if i == 0 {
                assert_eq!(keyframe_size(&f.data), Some((W, H)));
            }
            total += f.data.len();
            let out = dec.decode(&f.data, f.timestamp_us).unwrap().unwrap();
            assert_eq!(out.timestamp_us, i * 33_333);
            // The key frame alone is already close; later frames refine it.
            assert_close(&out, &src, if i == 0 { 30.0 } else { 35.0 });
        }
        // 15 frames at 1 Mbit/s and 30 fps is ~62 kB; allow the key frame's overshoot.
        assert!(total < 150_000, "{total} bytes");
    }

    #[test]
    fn keyframes_on_demand_and_resize() {
        let mut enc = Vp8Encoder::new(W, H, Settings::default()).unwrap();
        let mut dec = Vp8Decoder::new().unwrap();
        let mut kinds = Vec::new();
        for i in 0..6u64 {
            if i == 3 {
                enc.force_keyframe();
            }
            let f = enc.encode(&pattern(i * 33_333)).unwrap().remove(0);
            dec.decode(&f.data, 0).unwrap().unwrap();
            kinds.push(f.keyframe);
        }
        assert_eq!(kinds, [true, false, false, true, false, false]);

        // A smaller RGB picture: converted, the encoder re-created, a key frame sent.
        let small = Picture::black(320, 240, PixelFormat::Rgb24, 300_000);
        let f = enc.encode(&small).unwrap().remove(0);
        assert!(f.keyframe);
        assert_eq!(enc.size(), (320, 240));
        let pic = dec.decode(&f.data, 1).unwrap().unwrap();
        assert_eq!((pic.width, pic.height), (320, 240));
        assert!(pic.data[..320 * 240].iter().all(|&y| y.abs_diff(16) <= 2));

        enc.set_bitrate(300).unwrap();
        assert_eq!(enc.settings().bitrate_kbps, 300);
        assert!(dec.decode(&[0x00, 0x01, 0x02], 0).is_err());
        assert!(!is_keyframe(&[0x01; 12]));
    }
}
