//! Minimal safe wrapper over the system libvpx VP8 encoder and decoder.
//!
//! This is the only crate of wasmrtc that calls C through FFI: it is kept tiny so that
//! every `unsafe` block can be checked by eye. The API deals in packed I420 buffers
//! (Y plane, then U, then V, each chroma plane `ceil(w/2) * ceil(h/2)` bytes, no padding)
//! and whole VP8 frames (already depacketized from RTP).
//!
//! The bindings come from `env-libvpx-sys`, which links the libvpx that `pkg-config`
//! finds (Debian's `libvpx-dev`) and ships pre-generated bindings per libvpx version.

use std::ffi::CStr;
use std::os::raw::{c_int, c_long, c_uint, c_ulong};
use std::ptr;

use vpx_sys as ffi;

/// Errors from libvpx or from invalid arguments given to this wrapper.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A libvpx call returned an error code.
    #[error("libvpx {op} failed: {message}")]
    Codec {
        /// The libvpx function that failed.
        op: &'static str,
        /// libvpx's description of the error code, followed by the context's detail string
        /// in parentheses when libvpx set one.
        message: String,
    },
    /// An argument was rejected before reaching libvpx.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Length in bytes of a packed I420 picture of `width` x `height`.
pub fn i420_len(width: u32, height: u32) -> usize {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    w * h + 2 * cw * ch
}

/// Builds an [`Error::Codec`] from an error code, reading the context's detail string.
fn codec_error(
    op: &'static str,
    err: ffi::vpx_codec_err_t,
    ctx: &mut ffi::vpx_codec_ctx_t,
) -> Error {
    // SAFETY: vpx_codec_err_to_string accepts any error code and returns a pointer to a
    // static NUL-terminated string (never null).
    let message = unsafe { CStr::from_ptr(ffi::vpx_codec_err_to_string(err)) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: `ctx` is a valid, exclusively borrowed context (initialised, or zeroed after a
    // failed init, which libvpx accepts); the function returns null or a NUL-terminated
    // string owned by the context that stays valid while we copy it.
    let detail_ptr = unsafe { ffi::vpx_codec_error_detail(ctx) };
    let message = if detail_ptr.is_null() {
        message
    } else {
        // SAFETY: checked non-null just above; libvpx guarantees NUL termination.
        let detail = unsafe { CStr::from_ptr(detail_ptr) }.to_string_lossy();
        format!("{message} ({detail})")
    };
    Error::Codec { op, message }
}

/// A zeroed codec context, ready for `vpx_codec_enc_init_ver` / `vpx_codec_dec_init_ver`.
fn zeroed_ctx() -> Box<ffi::vpx_codec_ctx_t> {
    // SAFETY: vpx_codec_ctx_t is plain data: raw pointers (null is valid), integers, a union
    // of raw pointers, and `err: vpx_codec_err_t` whose zero value is VPX_CODEC_OK. The
    // all-zero bit pattern is therefore a valid value, and is what libvpx documents as the
    // state of a context before init.
    Box::new(unsafe { std::mem::zeroed() })
}

/// Settings of a VP8 [`Encoder`], chosen for real-time, low-latency streaming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Target bitrate in kbit/s (constant-bitrate rate control).
    pub bitrate_kbps: u32,
    /// Nominal frame rate, used for frame durations and rate control.
    pub fps: u32,
    /// libvpx `cpu-used` speed setting, -16..=16; higher magnitude is faster and lower quality.
    pub cpu_used: i32,
    /// Maximum distance between key frames, in frames (0 lets libvpx decide).
    pub keyframe_interval: u32,
    /// Encoder threads.
    pub threads: u32,
}

impl EncoderConfig {
    /// Real-time defaults for a picture size: 30 fps, `cpu_used` 14, key frame at most every
    /// 3 s, one thread, and the given bitrate.
    pub fn realtime(width: u32, height: u32, bitrate_kbps: u32) -> Self {
        EncoderConfig {
            width,
            height,
            bitrate_kbps,
            fps: 30,
            cpu_used: 14,
            keyframe_interval: 90,
            threads: 1,
        }
    }
}

/// One compressed VP8 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The VP8 bitstream of the frame (what RTP packetization splits).
    pub data: Vec<u8>,
    /// Whether this is a key frame (decodable without earlier frames).
    pub keyframe: bool,
    /// Presentation timestamp, in the microseconds given to [`Encoder::encode`].
    pub pts: i64,
}

/// A real-time VP8 encoder (libvpx, one pass, CBR, no lag, error resilient).
pub struct Encoder {
    /// Boxed so its address never changes: libvpx keeps pointers into it.
    ctx: Box<ffi::vpx_codec_ctx_t>,
    /// Boxed for the same reason; kept alive for the context's lifetime.
    cfg: Box<ffi::vpx_codec_enc_cfg_t>,
    config: EncoderConfig,
    last_pts: Option<i64>,
}

// SAFETY: a libvpx encoder context has no thread affinity and no thread-local state; it may
// be used from any thread as long as calls are not concurrent, which `&mut self` on every
// method that touches it guarantees. `Encoder` is deliberately not `Sync`.
unsafe impl Send for Encoder {}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("config", &self.config)
            .finish()
    }
}

impl Encoder {
    /// Creates an encoder for pictures of exactly `config.width` x `config.height`.
    pub fn new(config: EncoderConfig) -> Result<Self, Error> {
        if config.width == 0 || config.height == 0 || config.width > 16383 || config.height > 16383
        {
            return Err(Error::InvalidArgument(format!(
                "picture size {}x{} (VP8 allows 1..=16383)",
                config.width, config.height
            )));
        }
        if config.fps == 0 || config.bitrate_kbps == 0 {
            return Err(Error::InvalidArgument(
                "fps and bitrate must be positive".into(),
            ));
        }
        if !(-16..=16).contains(&config.cpu_used) {
            return Err(Error::InvalidArgument(format!(
                "cpu_used {} (allowed -16..=16)",
                config.cpu_used
            )));
        }
        // SAFETY: returns a pointer to libvpx's static VP8 encoder interface; no arguments.
        let iface = unsafe { ffi::vpx_codec_vp8_cx() };
        let mut cfg = std::mem::MaybeUninit::<ffi::vpx_codec_enc_cfg_t>::uninit();
        // SAFETY: `iface` is the valid VP8 encoder interface and `cfg` points to writable
        // storage of the right type; usage 0 is the only usage VP8 defines.
        let err = unsafe { ffi::vpx_codec_enc_config_default(iface, cfg.as_mut_ptr(), 0) };
        if err != ffi::vpx_codec_err_t::VPX_CODEC_OK {
            let mut ctx = zeroed_ctx();
            return Err(codec_error("vpx_codec_enc_config_default", err, &mut ctx));
        }
        // SAFETY: vpx_codec_enc_config_default returned OK, which means it copied a complete
        // default configuration (a struct assignment) into `cfg`.
        let mut cfg = Box::new(unsafe { cfg.assume_init() });

        cfg.g_w = config.width;
        cfg.g_h = config.height;
        cfg.g_threads = config.threads.max(1);
        // Timestamps are in microseconds.
        cfg.g_timebase = ffi::vpx_rational {
            num: 1,
            den: 1_000_000,
        };
        cfg.g_error_resilient = ffi::VPX_ERROR_RESILIENT_DEFAULT;
        cfg.g_pass = ffi::vpx_enc_pass::VPX_RC_ONE_PASS;
        cfg.g_lag_in_frames = 0;
        cfg.rc_end_usage = ffi::vpx_rc_mode::VPX_CBR;
        cfg.rc_target_bitrate = config.bitrate_kbps;
        cfg.rc_dropframe_thresh = 0;
        cfg.rc_resize_allowed = 0;
        cfg.rc_min_quantizer = 2;
        cfg.rc_max_quantizer = 56;
        cfg.rc_undershoot_pct = 100;
        cfg.rc_overshoot_pct = 15;
        cfg.rc_buf_initial_sz = 500;
        cfg.rc_buf_optimal_sz = 600;
        cfg.rc_buf_sz = 1000;
        cfg.kf_mode = ffi::vpx_kf_mode::VPX_KF_AUTO;
        cfg.kf_min_dist = 0;
        cfg.kf_max_dist = config.keyframe_interval;

        let mut ctx = zeroed_ctx();
        // SAFETY: `ctx` is a zeroed context at a stable (boxed) address, `iface` is the VP8
        // encoder interface, `cfg` is a fully initialised configuration at a stable address
        // that outlives the context (both are owned by the returned Encoder), and the ABI
        // version is the one the bindings were generated for.
        let err = unsafe {
            ffi::vpx_codec_enc_init_ver(
                &mut *ctx,
                iface,
                &*cfg,
                0,
                ffi::VPX_ENCODER_ABI_VERSION as c_int,
            )
        };
        if err != ffi::vpx_codec_err_t::VPX_CODEC_OK {
            // libvpx destroys the context itself when init fails.
            return Err(codec_error("vpx_codec_enc_init_ver", err, &mut ctx));
        }
        let mut encoder = Encoder {
            ctx,
            cfg,
            config,
            last_pts: None,
        };
        use ffi::vp8e_enc_control_id as id;
        encoder.control(id::VP8E_SET_CPUUSED, config.cpu_used)?;
        encoder.control(id::VP8E_SET_NOISE_SENSITIVITY, 0)?;
        encoder.control(id::VP8E_SET_STATIC_THRESHOLD, 1)?;
        // One token partition: one partition per frame keeps RTP packetization simple.
        encoder.control(id::VP8E_SET_TOKEN_PARTITIONS, 0)?;
        encoder.control(id::VP8E_SET_ENABLEAUTOALTREF, 0)?;
        // Cap key frames at ~9x an average frame, as WebRTC does (0.5 * optimal buffer * fps / 10).
        let max_intra = (encoder.cfg.rc_buf_optimal_sz / 2 * config.fps / 10).max(300);
        encoder.control(id::VP8E_SET_MAX_INTRA_BITRATE_PCT, max_intra as c_int)?;
        Ok(encoder)
    }

    /// Sets one integer-valued encoder control.
    fn control(&mut self, id: ffi::vp8e_enc_control_id, value: c_int) -> Result<(), Error> {
        // SAFETY: the context is initialised; every VP8E_SET_* control used here takes one
        // `int` vararg, which is exactly what is passed.
        let err = unsafe { ffi::vpx_codec_control_(&mut *self.ctx, id as c_int, value) };
        if err != ffi::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(codec_error("vpx_codec_control_", err, &mut self.ctx));
        }
        Ok(())
    }

    /// The configuration this encoder was created with (bitrate as last set).
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Changes the target bitrate without re-creating the encoder.
    pub fn set_bitrate(&mut self, bitrate_kbps: u32) -> Result<(), Error> {
        if bitrate_kbps == 0 {
            return Err(Error::InvalidArgument("bitrate must be positive".into()));
        }
        self.cfg.rc_target_bitrate = bitrate_kbps;
        // SAFETY: the context is initialised and `cfg` is a valid configuration at a stable
        // address that lives as long as the context.
        let err = unsafe { ffi::vpx_codec_enc_config_set(&mut *self.ctx, &*self.cfg) };
        if err != ffi::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(codec_error("vpx_codec_enc_config_set", err, &mut self.ctx));
        }
        self.config.bitrate_kbps = bitrate_kbps;
        Ok(())
    }

    /// Encodes one packed I420 picture of the configured size taken at `pts` microseconds.
    ///
    /// Timestamps must increase; a timestamp that does not is bumped by one microsecond
    /// past the previous one. Returns the compressed frames produced (one per call with
    /// these settings).
    pub fn encode(
        &mut self,
        i420: &[u8],
        pts: i64,
        force_keyframe: bool,
    ) -> Result<Vec<Packet>, Error> {
        let (w, h) = (self.config.width, self.config.height);
        let expected = i420_len(w, h);
        if i420.len() != expected {
            return Err(Error::InvalidArgument(format!(
                "I420 buffer of {} bytes, {w}x{h} needs {expected}",
                i420.len()
            )));
        }
        let pts = match self.last_pts {
            Some(last) if pts <= last => last + 1,
            _ => pts,
        };
        self.last_pts = Some(pts);

        let luma = (w as usize) * (h as usize);
        let cw = w.div_ceil(2);
        let chroma = (cw as usize) * (h.div_ceil(2) as usize);
        let y = i420.as_ptr().cast_mut();
        // Pointer arithmetic via slices: both offsets are within `i420` (checked length).
        let u = i420[luma..].as_ptr().cast_mut();
        let v = i420[luma + chroma..].as_ptr().cast_mut();
        // The encoder only reads the image (`const vpx_image_t *`), so handing it `*mut`
        // pointers into a shared slice is sound.
        let img = ffi::vpx_image_t {
            fmt: ffi::vpx_img_fmt::VPX_IMG_FMT_I420,
            cs: ffi::vpx_color_space::VPX_CS_BT_601,
            range: ffi::vpx_color_range::VPX_CR_STUDIO_RANGE,
            w,
            h,
            bit_depth: 8,
            d_w: w,
            d_h: h,
            r_w: w,
            r_h: h,
            x_chroma_shift: 1,
            y_chroma_shift: 1,
            planes: [y, u, v, ptr::null_mut()],
            stride: [w as c_int, cw as c_int, cw as c_int, 0],
            bps: 12,
            user_priv: ptr::null_mut(),
            img_data: y,
            img_data_owner: 0,
            self_allocd: 0,
            fb_priv: ptr::null_mut(),
        };
        let duration = (1_000_000 / self.config.fps.max(1)) as c_ulong;
        let flags = if force_keyframe {
            ffi::VPX_EFLAG_FORCE_KF as ffi::vpx_enc_frame_flags_t
        } else {
            0
        };
        // SAFETY: the context is initialised; `img` describes `i420`, whose length was checked
        // against the planes and strides above and which outlives this call; libvpx copies
        // what it needs from the image before returning (lag 0).
        let err = unsafe {
            ffi::vpx_codec_encode(
                &mut *self.ctx,
                &img,
                pts,
                duration,
                flags,
                ffi::VPX_DL_REALTIME as c_ulong,
            )
        };
        if err != ffi::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(codec_error("vpx_codec_encode", err, &mut self.ctx));
        }

        let mut packets = Vec::new();
        let mut iter: ffi::vpx_codec_iter_t = ptr::null();
        loop {
            // SAFETY: the context is initialised and `iter` starts null as libvpx requires;
            // the result is null at the end or points to a packet valid until the next call
            // on the context.
            let pkt = unsafe { ffi::vpx_codec_get_cx_data(&mut *self.ctx, &mut iter) };
            if pkt.is_null() {
                break;
            }
            // SAFETY: non-null, and valid until the next call on the context (we copy first).
            let pkt = unsafe { &*pkt };
            if pkt.kind != ffi::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                continue;
            }
            // SAFETY: for VPX_CODEC_CX_FRAME_PKT the `frame` member of the union is the
            // active one.
            let frame = unsafe { pkt.data.frame };
            let data = if frame.buf.is_null() || frame.sz == 0 {
                Vec::new()
            } else {
                // SAFETY: libvpx guarantees `buf` points to `sz` readable bytes until the next
                // call on the context; we copy them out right away.
                unsafe { std::slice::from_raw_parts(frame.buf as *const u8, frame.sz as usize) }
                    .to_vec()
            };
            packets.push(Packet {
                data,
                keyframe: frame.flags & ffi::VPX_FRAME_IS_KEY != 0,
                pts: frame.pts,
            });
        }
        Ok(packets)
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: the context was initialised successfully in `new` and is destroyed exactly
        // once, here; `cfg` is still alive at this point.
        unsafe { ffi::vpx_codec_destroy(&mut *self.ctx) };
    }
}

/// A decoded picture in packed I420.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Y plane, then U, then V, without padding.
    pub data: Vec<u8>,
}

/// A VP8 decoder (libvpx).
pub struct Decoder {
    /// Boxed so its address never changes: libvpx keeps pointers into it.
    ctx: Box<ffi::vpx_codec_ctx_t>,
    /// Kept alive as long as the context, which points to it.
    _cfg: Box<ffi::vpx_codec_dec_cfg_t>,
}

// SAFETY: as for `Encoder`: no thread affinity, and `&mut self` serialises every call.
unsafe impl Send for Decoder {}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").finish_non_exhaustive()
    }
}

impl Decoder {
    /// Creates a decoder using `threads` threads (0 or 1 means single-threaded).
    pub fn new(threads: u32) -> Result<Self, Error> {
        let cfg = Box::new(ffi::vpx_codec_dec_cfg_t {
            threads: threads.max(1) as c_uint,
            w: 0,
            h: 0,
        });
        let mut ctx = zeroed_ctx();
        // SAFETY: returns a pointer to libvpx's static VP8 decoder interface; no arguments.
        let iface = unsafe { ffi::vpx_codec_vp8_dx() };
        // SAFETY: `ctx` is a zeroed context at a stable address, `cfg` a valid configuration at
        // a stable address that lives as long as the context, and the ABI version matches the
        // bindings.
        let err = unsafe {
            ffi::vpx_codec_dec_init_ver(
                &mut *ctx,
                iface,
                &*cfg,
                0,
                ffi::VPX_DECODER_ABI_VERSION as c_int,
            )
        };
        if err != ffi::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(codec_error("vpx_codec_dec_init_ver", err, &mut ctx));
        }
        Ok(Decoder { ctx, _cfg: cfg })
    }

    /// Decodes one whole VP8 frame; returns the picture it shows, if any.
    pub fn decode(&mut self, frame: &[u8]) -> Result<Option<Image>, Error> {
        if frame.is_empty() {
            return Err(Error::InvalidArgument("empty VP8 frame".into()));
        }
        let len = c_uint::try_from(frame.len())
            .map_err(|_| Error::InvalidArgument("VP8 frame too large".into()))?;
        // SAFETY: the context is initialised and `frame` is `len` readable bytes that outlive
        // the call; no user data; deadline 0 means "as long as needed".
        let err = unsafe {
            ffi::vpx_codec_decode(
                &mut *self.ctx,
                frame.as_ptr(),
                len,
                ptr::null_mut(),
                0 as c_long,
            )
        };
        if err != ffi::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(codec_error("vpx_codec_decode", err, &mut self.ctx));
        }
        let mut out = None;
        let mut iter: ffi::vpx_codec_iter_t = ptr::null();
        loop {
            // SAFETY: the context is initialised, `iter` starts null; the result is null at the
            // end or an image valid until the next decode call.
            let img = unsafe { ffi::vpx_codec_get_frame(&mut *self.ctx, &mut iter) };
            if img.is_null() {
                break;
            }
            // SAFETY: non-null and valid until the next decode call; copied out below.
            let img = unsafe { &*img };
            out = Some(copy_image(img)?);
        }
        Ok(out)
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: the context was initialised successfully in `new` and is destroyed exactly
        // once, here.
        unsafe { ffi::vpx_codec_destroy(&mut *self.ctx) };
    }
}

/// Copies a decoder-owned 8-bit I420 image into a packed buffer.
fn copy_image(img: &ffi::vpx_image_t) -> Result<Image, Error> {
    if img.fmt != ffi::vpx_img_fmt::VPX_IMG_FMT_I420
        || img.x_chroma_shift != 1
        || img.y_chroma_shift != 1
    {
        return Err(Error::InvalidArgument(format!(
            "decoder produced unsupported image format {:?}",
            img.fmt
        )));
    }
    let (w, h) = (img.d_w as usize, img.d_h as usize);
    let mut data = Vec::with_capacity(i420_len(img.d_w, img.d_h));
    for plane in 0..3 {
        let (cols, rows) = if plane == 0 {
            (w, h)
        } else {
            (w.div_ceil(2), h.div_ceil(2))
        };
        let stride = img.stride[plane];
        let base = img.planes[plane];
        if base.is_null() || stride < cols as c_int {
            return Err(Error::InvalidArgument(
                "decoder image has a bad plane".into(),
            ));
        }
        for row in 0..rows {
            // SAFETY: libvpx guarantees each plane holds `rows` rows of `stride` bytes with at
            // least `cols` valid bytes each (stride >= cols checked above), valid until the
            // next decode call, which cannot happen while `img` is borrowed.
            let line = unsafe {
                std::slice::from_raw_parts(base.add(row * stride as usize) as *const u8, cols)
            };
            data.extend_from_slice(line);
        }
    }
    Ok(Image {
        width: img.d_w,
        height: img.d_h,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_flat_grey() {
        let (w, h) = (64u32, 48u32);
        let mut enc = Encoder::new(EncoderConfig::realtime(w, h, 300)).unwrap();
        let mut dec = Decoder::new(1).unwrap();
        let mut pic = vec![128u8; i420_len(w, h)];
        pic[..(w * h) as usize].fill(90);
        let mut last = None;
        for i in 0..5 {
            let packets = enc.encode(&pic, i * 33_333, false).unwrap();
            assert_eq!(packets.len(), 1);
            assert_eq!(packets[0].keyframe, i == 0);
            last = dec.decode(&packets[0].data).unwrap();
        }
        let img = last.unwrap();
        assert_eq!((img.width, img.height), (w, h));
        let y_mean = img.data[..(w * h) as usize]
            .iter()
            .map(|&p| p as f64)
            .sum::<f64>()
            / (w * h) as f64;
        assert!((y_mean - 90.0).abs() < 2.0, "luma mean {y_mean}");
    }

    #[test]
    fn odd_size_round_trip() {
        // Odd sizes exercise the chroma rounding and the decoder's padded strides.
        let (w, h) = (33u32, 17u32);
        let mut enc = Encoder::new(EncoderConfig::realtime(w, h, 200)).unwrap();
        let mut dec = Decoder::new(1).unwrap();
        let mut pic = vec![128u8; i420_len(w, h)];
        for y in 0..h as usize {
            for x in 0..w as usize {
                pic[y * w as usize + x] = (40 + x * 5) as u8;
            }
        }
        let packets = enc.encode(&pic, 0, false).unwrap();
        let img = dec.decode(&packets[0].data).unwrap().unwrap();
        assert_eq!((img.width, img.height), (w, h));
        assert_eq!(img.data.len(), pic.len());
        let mean_err = img
            .data
            .iter()
            .zip(&pic)
            .map(|(&a, &b)| f64::from(a.abs_diff(b)))
            .sum::<f64>()
            / pic.len() as f64;
        assert!(mean_err < 2.0, "mean error {mean_err}");
    }

    #[test]
    fn rejects_garbage() {
        let mut dec = Decoder::new(1).unwrap();
        assert!(dec.decode(&[1, 2, 3, 4, 5]).is_err());
        assert!(dec.decode(&[]).is_err());
        let mut enc = Encoder::new(EncoderConfig::realtime(16, 16, 100)).unwrap();
        assert!(enc.encode(&[0; 10], 0, false).is_err());
    }
}
