//! H.264 (constrained-baseline-style, real-time) encoding and decoding of whole access units
//! in Annex B form, via Cisco's OpenH264 built from source by the `openh264` crate.

use openh264::OpenH264API;
use openh264::decoder::Decoder;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Level,
    Profile, RateControlMode, UsageType,
};
use openh264::formats::{YUVSlices, YUVSource};

use super::{EncodedFrame, MediaError, Picture, PixelFormat};

/// Largest picture OpenH264 encodes (level 5.2), long side x short side.
const MAX_LONG_SIDE: u32 = 3840;
const MAX_SHORT_SIDE: u32 = 2160;

fn h264_err(e: openh264::Error) -> MediaError {
    MediaError::H264(e.to_string())
}

/// Settings of an [`H264Encoder`]; the defaults suit 640x480 at 30 fps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Target bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Nominal frame rate.
    pub fps: u32,
    /// Maximum frames between IDR frames; 0 means only the first (and forced) ones.
    pub keyframe_interval: u32,
    /// Encoder threads (0 lets OpenH264 decide).
    pub threads: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bitrate_kbps: 1_000,
            fps: 30,
            keyframe_interval: 90,
            threads: 1,
        }
    }
}

fn encoder_config(s: &Settings) -> EncoderConfig {
    EncoderConfig::new()
        .usage_type(UsageType::CameraVideoRealTime)
        .rate_control_mode(RateControlMode::Bitrate)
        .bitrate(BitRate::from_bps(s.bitrate_kbps.saturating_mul(1_000)))
        .max_frame_rate(FrameRate::from_hz(s.fps as f32))
        // OpenH264's rate control only holds the bitrate if it may drop frames (it warns
        // otherwise); a dropped frame is an empty result from `encode`.
        .skip_frames(true)
        .profile(Profile::Baseline)
        .level(Level::Level_3_1)
        .complexity(Complexity::Low)
        .intra_frame_period(IntraFramePeriod::from_num_frames(s.keyframe_interval))
        .num_threads(s.threads)
}

/// Checks that a picture size is one the H.264 encoder accepts (even, within level 5.2).
fn check_size(width: u32, height: u32) -> Result<(), MediaError> {
    let (long, short) = (width.max(height), width.min(height));
    if width == 0
        || height == 0
        || !width.is_multiple_of(2)
        || !height.is_multiple_of(2)
        || long > MAX_LONG_SIDE
        || short > MAX_SHORT_SIDE
    {
        return Err(MediaError::PictureSize { width, height });
    }
    Ok(())
}

/// A real-time H.264 encoder (OpenH264, baseline profile, bitrate rate control).
///
/// Pictures must have even sizes. The encoder follows the size of the pictures it is given,
/// re-initialising (and sending an IDR frame) when it changes.
pub struct H264Encoder {
    inner: Encoder,
    settings: Settings,
    size: (u32, u32),
    force_keyframe: bool,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder")
            .field("settings", &self.settings)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl H264Encoder {
    /// Creates an encoder for `width` x `height` pictures (both even).
    pub fn new(width: u32, height: u32, settings: Settings) -> Result<Self, MediaError> {
        check_size(width, height)?;
        if settings.fps == 0 || settings.bitrate_kbps == 0 {
            return Err(MediaError::Setting(
                "h264 fps and bitrate must be positive".into(),
            ));
        }
        let inner = Encoder::with_api_config(OpenH264API::from_source(), encoder_config(&settings))
            .map_err(h264_err)?;
        Ok(H264Encoder {
            inner,
            settings,
            size: (width, height),
            force_keyframe: false,
        })
    }

    /// Current picture size.
    pub fn size(&self) -> (u32, u32) {
        self.size
    }

    /// Current settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Makes the next encoded frame an IDR frame (e.g. on a PLI or FIR from the receiver).
    pub fn force_keyframe(&mut self) {
        self.force_keyframe = true;
    }

    /// Changes the target bitrate. The safe OpenH264 API cannot retune a running encoder, so
    /// this re-creates it: the next frame is an IDR frame.
    pub fn set_bitrate(&mut self, bitrate_kbps: u32) -> Result<(), MediaError> {
        if bitrate_kbps == 0 {
            return Err(MediaError::Setting("h264 bitrate must be positive".into()));
        }
        let settings = Settings {
            bitrate_kbps,
            ..self.settings
        };
        self.inner =
            Encoder::with_api_config(OpenH264API::from_source(), encoder_config(&settings))
                .map_err(h264_err)?;
        self.settings = settings;
        Ok(())
    }

    /// Encodes one picture (converted to I420 first if it is RGB/BGR) to one Annex B access
    /// unit (SPS and PPS included before IDR frames).
    ///
    /// Returns one frame per picture, or none when rate control drops the picture to hold
    /// the bitrate.
    pub fn encode(&mut self, picture: &Picture) -> Result<Vec<EncodedFrame>, MediaError> {
        picture.validate()?;
        check_size(picture.width, picture.height)?;
        let converted;
        let pic = if picture.format == PixelFormat::I420 {
            picture
        } else {
            converted = picture.clone().convert(PixelFormat::I420)?;
            &converted
        };
        let (y, u, v) = pic.planes().ok_or(MediaError::PixelFormat(pic.format))?;
        let (w, h) = (pic.width as usize, pic.height as usize);
        // Sizes are even and the planes' lengths were validated, as YUVSlices requires.
        let source = YUVSlices::new((y, u, v), (w, h), (w, w / 2, w / 2));
        if std::mem::take(&mut self.force_keyframe) {
            self.inner.force_intra_frame();
        }
        self.size = (pic.width, pic.height);
        let timestamp = openh264::Timestamp::from_millis(pic.timestamp_us / 1_000);
        let bitstream = self.inner.encode_at(&source, timestamp).map_err(h264_err)?;
        let keyframe = matches!(bitstream.frame_type(), FrameType::IDR | FrameType::I);
        let skipped = matches!(bitstream.frame_type(), FrameType::Skip | FrameType::Invalid);
        let data = bitstream.to_vec();
        if skipped || data.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![EncodedFrame {
            data,
            keyframe,
            timestamp_us: pic.timestamp_us,
        }])
    }
}

/// The NAL unit types of an Annex B byte stream (the byte after each start code).
fn nal_types(stream: &[u8]) -> impl Iterator<Item = u8> + '_ {
    stream
        .windows(3)
        .enumerate()
        .filter(|(_, w)| *w == [0, 0, 1])
        .filter_map(|(i, _)| stream.get(i + 3).map(|h| h & 0x1f))
}

/// Whether an Annex B access unit holds an IDR picture (NAL type 5), which decodes
/// without earlier units.
pub fn is_keyframe(access_unit: &[u8]) -> bool {
    nal_types(access_unit).any(|t| t == 5)
}

/// The picture size the first sequence parameter set (NAL type 7) of an Annex B
/// access unit announces, before cropping (ITU-T H.264 §7.3.2.1.1), or `None` when
/// there is none or it does not parse. Read before decoding, so a client cannot make
/// the decoder allocate a picture larger than the host allows.
pub fn sps_size(access_unit: &[u8]) -> Option<(u32, u32)> {
    let start = access_unit
        .windows(4)
        .position(|w| w[..3] == [0, 0, 1] && w[3] & 0x1f == 7)?;
    // The SPS payload, its emulation-prevention bytes (00 00 03) removed; 64 bytes
    // hold every field up to the size.
    let mut rbsp = Vec::with_capacity(64);
    let mut zeros = 0;
    for &b in access_unit[start + 4..].iter().take(96) {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        if zeros >= 2 && b <= 1 {
            break; // the next start code
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        rbsp.push(b);
    }
    let mut r = Bits {
        data: &rbsp,
        pos: 0,
    };
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, reserved bits, level
    r.ue()?; // seq_parameter_set_id
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        let chroma_format = r.ue()?;
        if chroma_format == 3 {
            r.bits(1)?; // separate_colour_plane_flag
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bits(1)?; // qpprime_y_zero_transform_bypass_flag
        if r.bits(1)? == 1 {
            let lists = if chroma_format == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bits(1)? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i64, 8i64);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + r.se()? + 256) % 256;
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bits(1)?;
            r.se()?;
            r.se()?;
            let cycle = r.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bits(1)?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.bits(1)?;
    let height_mbs = height_units * (2 - u64::from(frame_mbs_only));
    let w = u32::try_from(width_mbs * 16).ok()?;
    let h = u32::try_from(height_mbs * 16).ok()?;
    Some((w, h))
}

/// A big-endian bit reader over an RBSP.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(b))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0, |acc, _| Some(acc << 1 | self.bit()?))
    }

    /// Unsigned Exp-Golomb (at most 31 leading zeros).
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        Some(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    /// Signed Exp-Golomb.
    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// An H.264 decoder producing I420 pictures.
pub struct H264Decoder {
    inner: Decoder,
}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Decoder").finish_non_exhaustive()
    }
}

impl H264Decoder {
    /// Creates a decoder.
    pub fn new() -> Result<Self, MediaError> {
        Ok(H264Decoder {
            inner: Decoder::new().map_err(h264_err)?,
        })
    }

    /// Decodes one Annex B access unit; the picture, if it completes one, carries
    /// `timestamp_us`. A corrupt unit is an error: the caller should then ask for an IDR frame.
    pub fn decode(
        &mut self,
        access_unit: &[u8],
        timestamp_us: u64,
    ) -> Result<Option<Picture>, MediaError> {
        let Some(yuv) = self.inner.decode(access_unit).map_err(h264_err)? else {
            return Ok(None);
        };
        let (w, h) = yuv.dimensions();
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (sy, su, sv) = yuv.strides();
        let mut data = Vec::with_capacity(w * h + 2 * cw * ch);
        for (plane, stride, cols, rows) in [
            (yuv.y(), sy, w, h),
            (yuv.u(), su, cw, ch),
            (yuv.v(), sv, cw, ch),
        ] {
            for row in 0..rows {
                let line = plane
                    .get(row * stride..row * stride + cols)
                    .ok_or_else(|| {
                        MediaError::H264("decoded plane shorter than its size".into())
                    })?;
                data.extend_from_slice(line);
            }
        }
        let picture = Picture::new(w as u32, h as u32, PixelFormat::I420, data, timestamp_us)?;
        Ok(Some(picture))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(w: u32, h: u32, timestamp_us: u64) -> Picture {
        let mut pic = Picture::black(w, h, PixelFormat::I420, timestamp_us);
        for y in 0..h as usize {
            for x in 0..w as usize {
                let square = (101..171).contains(&x) && (203..269).contains(&y);
                pic.data[y * w as usize + x] = if square {
                    235
                } else if x < w as usize / 2 {
                    50
                } else {
                    200
                };
            }
        }
        pic
    }

    fn region_mean(pic: &Picture, xs: std::ops::Range<usize>, ys: std::ops::Range<usize>) -> f64 {
        let n = (xs.len() * ys.len()) as f64;
        let w = pic.width as usize;
        ys.flat_map(|y| xs.clone().map(move |x| y * w + x))
            .map(|i| f64::from(pic.data[i]))
            .sum::<f64>()
            / n
    }

    #[test]
    fn round_trip_640x480_pattern() {
        let (w, h) = (640, 480);
        let mut enc = H264Encoder::new(w, h, Settings::default()).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let mut kinds = Vec::new();
        let mut last = None;
        for i in 0..10u64 {
            if i == 6 {
                enc.force_keyframe();
            }
            let src = pattern(w, h, i * 33_333);
            let frames = enc.encode(&src).unwrap();
            assert_eq!(frames.len(), 1, "frame {i}");
            kinds.push(frames[0].keyframe);
            last = dec.decode(&frames[0].data, frames[0].timestamp_us).unwrap();
            assert!(last.is_some(), "frame {i} decoded to nothing");
        }
        assert!(kinds[0]);
        assert!(kinds[6]);
        assert!(kinds[1..6].iter().all(|k| !k));
        let out = last.unwrap();
        let src = pattern(w, h, 0);
        assert_eq!(
            (out.width, out.height, out.timestamp_us),
            (w, h, 9 * 33_333)
        );
        for (xs, ys) in [(8..300, 8..180), (340..632, 8..472), (104..168, 206..266)] {
            let got = region_mean(&out, xs.clone(), ys.clone());
            let want = region_mean(&src, xs.clone(), ys.clone());
            assert!(
                (got - want).abs() < 3.0,
                "{xs:?}x{ys:?}: {got:.1} vs {want:.1}"
            );
        }
    }

    #[test]
    fn the_sps_tells_the_picture_size_before_decoding() {
        for (w, h) in [(640, 480), (320, 240), (1280, 720)] {
            let mut enc = H264Encoder::new(w, h, Settings::default()).unwrap();
            let units = enc.encode(&pattern(w, h, 0)).unwrap();
            let key = units.iter().find(|u| is_keyframe(&u.data)).unwrap();
            // Coded in whole macroblocks: 720 is 45 of them, so exact here.
            assert_eq!(sps_size(&key.data), Some((w, h)));
        }
        assert_eq!(sps_size(&[0, 0, 0, 1, 0x65, 0x88]), None, "no SPS");
        assert_eq!(sps_size(&[0, 0, 0, 1, 0x67, 0x42]), None, "truncated");
    }

    #[test]
    fn keyframes_are_told_by_their_idr_unit() {
        let mut enc = H264Encoder::new(320, 240, Settings::default()).unwrap();
        let first = enc.encode(&pattern(320, 240, 0)).unwrap().remove(0);
        let next = enc.encode(&pattern(320, 240, 33_333)).unwrap().remove(0);
        assert!(is_keyframe(&first.data) && first.keyframe);
        assert!(!is_keyframe(&next.data) && !next.keyframe);
        assert!(!is_keyframe(&[]) && !is_keyframe(&[0, 0, 1]));
        assert!(is_keyframe(&[0, 0, 0, 1, 0x65, 0x88]));
    }

    #[test]
    fn resize_and_rejects() {
        let mut enc = H264Encoder::new(640, 480, Settings::default()).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let f = enc.encode(&pattern(640, 480, 0)).unwrap().remove(0);
        dec.decode(&f.data, 0).unwrap().unwrap();
        let small = Picture::black(320, 240, PixelFormat::Rgb24, 1);
        let f = enc.encode(&small).unwrap().remove(0);
        assert!(f.keyframe);
        let pic = dec.decode(&f.data, 1).unwrap().unwrap();
        assert_eq!((pic.width, pic.height), (320, 240));
        assert!(
            enc.encode(&Picture::black(33, 17, PixelFormat::I420, 2))
                .is_err()
        );
        assert!(H264Encoder::new(641, 480, Settings::default()).is_err());
    }
}
