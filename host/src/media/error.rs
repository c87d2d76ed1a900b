//! The error type of the media module.

use super::frame::PixelFormat;

/// Errors from codecs, conversions and frame validation.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// A channel count the operation does not support.
    #[error("unsupported channel count {0}")]
    UnsupportedChannels(u8),
    /// A sample rate the operation does not support.
    #[error("unsupported sample rate {0} Hz")]
    UnsupportedSampleRate(u32),
    /// An audio frame of the wrong length was given to an encoder.
    #[error("audio frame of {actual} samples, expected {expected}")]
    FrameLength {
        /// Samples (all channels) expected.
        expected: usize,
        /// Samples (all channels) given.
        actual: usize,
    },
    /// A picture whose width or height is zero or too large.
    #[error("invalid picture size {width}x{height}")]
    PictureSize {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// A picture whose data length does not match its size and format.
    #[error("{format:?} picture {width}x{height} needs {expected} bytes, has {actual}")]
    PictureData {
        /// Pixel format of the picture.
        format: PixelFormat,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Bytes expected.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// A pixel format the operation does not accept.
    #[error("pixel format {0:?} not accepted here")]
    PixelFormat(PixelFormat),
    /// An encoder setting out of range.
    #[error("invalid setting: {0}")]
    Setting(String),
    /// The Opus codec reported an error.
    #[error("opus: {0}")]
    Opus(#[from] ::opus::Error),
    /// The resampler reported an error.
    #[error("resampler: {0}")]
    Resample(String),
    /// libvpx (VP8) reported an error.
    #[error("vp8: {0}")]
    Vp8(#[from] wasmrtc_vpx::Error),
    /// OpenH264 (H.264) reported an error.
    #[error("h264: {0}")]
    H264(String),
    /// Colour conversion failed.
    #[error("colour conversion: {0}")]
    Color(#[from] yuv::YuvError),
}
