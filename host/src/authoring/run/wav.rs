//! WAV files for `wasmrtc run`: 16-bit PCM in (mono or stereo, 8..=48 kHz), read as a
//! stream in 20 ms blocks and mixed down to mono as a client's microphone is; 16-bit
//! mono PCM out, written at the playback clock's positions (gaps are silence).
//!
//! Bounds on hostile files: at most [`MAX_BYTES`] of file, at most [`MAX_HEADER`]
//! before the samples (the reader refuses to go further while it looks for them), and
//! a data chunk that ends early is an error naming the sample and byte it ends at.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::media::channels_convert;

/// Largest WAV file `wasmrtc run` reads: 1 GiB (93 minutes of 48 kHz stereo).
pub const MAX_BYTES: u64 = 1 << 30;
/// Most bytes of chunks before the samples (`RIFF`, `fmt `, `LIST`, …): 1 MiB.
pub const MAX_HEADER: u64 = 1 << 20;
/// Sample rates accepted (those of a handler's spec).
pub const RATES: std::ops::RangeInclusive<u32> = 8_000..=48_000;

/// Why a WAV file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// The file cannot be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_BYTES`].
    #[error("{path}: {size} bytes, more than the {MAX_BYTES} bytes (1 GiB) `wasmrtc run` reads")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The header is not a WAV header the reader understands.
    #[error("{path}: not a usable WAV file: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the byte offset where it is known.
        reason: String,
    },
    /// A valid WAV file of a kind `wasmrtc run` does not take.
    #[error(
        "{path}: {what}; `wasmrtc run` reads 16-bit integer PCM, mono or stereo, 8000..=48000 Hz"
    )]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What it is.
        what: String,
    },
    /// The samples end before the data chunk says they do.
    #[error(
        "{path}: truncated: the data chunk declares {declared} samples but the file ends at byte offset {offset}, after {read} of them"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Samples (all channels) the data chunk declares.
        declared: u64,
        /// Samples read before the end.
        read: u64,
        /// Where the file ended.
        offset: u64,
    },
    /// Writing the output failed.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Counts the bytes read through it and refuses to read past a limit while one is set.
struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
    limit: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let at = self.read.load(Ordering::Relaxed);
        let room = self.limit.load(Ordering::Relaxed).saturating_sub(at);
        if room == 0 {
            return Err(std::io::Error::other("header limit"));
        }
        let len = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..len])?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A WAV file being read, 20 ms at a time, as mono.
pub struct WavIn {
    path: PathBuf,
    reader: hound::WavReader<Counted<BufReader<File>>>,
    read: Arc<AtomicU64>,
    rate: u32,
    channels: u16,
    /// Interleaved samples the data chunk declares.
    declared: u64,
    /// Interleaved samples read so far.
    done: u64,
    /// Interleaved samples to read in all (the declared ones, or fewer for `--duration`).
    total: u64,
}

impl std::fmt::Debug for WavIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavIn")
            .field("path", &self.path)
            .field("rate", &self.rate)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl WavIn {
    /// Open `path` and read its header.
    pub fn open(path: &Path) -> Result<Self, WavError> {
        let io = |source| WavError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        if size > MAX_BYTES {
            return Err(WavError::TooLarge {
                path: path.to_path_buf(),
                size,
            });
        }
        let read = Arc::new(AtomicU64::new(0));
        let limit = Arc::new(AtomicU64::new(MAX_HEADER));
        let counted = Counted {
            inner: BufReader::new(file),
            read: read.clone(),
            limit: limit.clone(),
        };
        let reader = hound::WavReader::new(counted).map_err(|e| {
            let at = read.load(Ordering::Relaxed);
            let reason = match e {
                _ if at >= MAX_HEADER => format!(
                    "no samples within the first {MAX_HEADER} bytes (the data chunk must start within 1 MiB)"
                ),
                hound::Error::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                    format!("the file ends at byte offset {at}, inside its header")
                }
                hound::Error::IoError(io) if io.to_string() == "Failed to read enough bytes." => {
                    format!("the file ends at byte offset {at}, inside its header")
                }
                hound::Error::Unsupported => {
                    "an encoding other than PCM (e.g. ADPCM, µ-law)".to_string()
                }
                other => format!("{other} (at byte offset {at})"),
            };
            WavError::Malformed {
                path: path.to_path_buf(),
                reason,
            }
        })?;
        limit.store(u64::MAX, Ordering::Relaxed);
        let spec = reader.spec();
        let unsupported = |what: String| WavError::Unsupported {
            path: path.to_path_buf(),
            what,
        };
        if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
            let kind = match spec.sample_format {
                hound::SampleFormat::Float => "floating-point",
                hound::SampleFormat::Int => "integer",
            };
            return Err(unsupported(format!(
                "{}-bit {kind} samples",
                spec.bits_per_sample
            )));
        }
        if !(1..=2).contains(&spec.channels) {
            return Err(unsupported(format!("{} channels", spec.channels)));
        }
        if !RATES.contains(&spec.sample_rate) {
            return Err(unsupported(format!("{} Hz", spec.sample_rate)));
        }
        let declared = u64::from(reader.len());
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            read,
            rate: spec.sample_rate,
            channels: spec.channels,
            declared,
            done: 0,
            total: declared,
        })
    }

    /// The file's sample rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Read at most `frames` samples per channel (the rest of the file is left unread).
    pub fn limit_frames(&mut self, frames: u64) {
        self.total = self.declared.min(frames * u64::from(self.channels));
    }

    /// Samples per channel still to read.
    pub fn frames_left(&self) -> u64 {
        (self.total - self.done) / u64::from(self.channels)
    }

    /// Samples per channel read so far.
    pub fn frames_read(&self) -> u64 {
        self.done / u64::from(self.channels)
    }

    /// The next `frames` samples per channel (fewer at the end; empty once done), mono.
    pub fn read_mono(&mut self, frames: usize) -> Result<Vec<i16>, WavError> {
        let want = (frames as u64 * u64::from(self.channels)).min(self.total - self.done);
        let mut out = Vec::with_capacity(want as usize);
        let mut samples = self.reader.samples::<i16>();
        for _ in 0..want {
            match samples.next() {
                Some(Ok(s)) => out.push(s),
                Some(Err(hound::Error::IoError(e)))
                    if e.kind() != std::io::ErrorKind::Other
                        || e.to_string().contains("enough bytes") =>
                {
                    return Err(self.truncated(out.len() as u64));
                }
                Some(Err(e)) => {
                    return Err(WavError::Malformed {
                        path: self.path.clone(),
                        reason: format!("sample {}: {e}", self.done + out.len() as u64),
                    });
                }
                None => return Err(self.truncated(out.len() as u64)),
            }
        }
        self.done += out.len() as u64;
        Ok(if self.channels == 1 {
            out
        } else {
            // Stereo to mono, as the host mixes any audio down.
            channels_convert(&out, self.channels as u8, 1)
        })
    }

    fn truncated(&self, extra: u64) -> WavError {
        WavError::Truncated {
            path: self.path.clone(),
            declared: self.declared,
            read: self.done + extra,
            offset: self.read.load(Ordering::Relaxed),
        }
    }
}

/// A mono 16-bit WAV file being written.
pub struct WavOut {
    path: PathBuf,
    writer: hound::WavWriter<BufWriter<File>>,
    /// Samples written (silence included).
    written: u64,
}

impl std::fmt::Debug for WavOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavOut")
            .field("path", &self.path)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl WavOut {
    /// Create `path` (replacing it) for mono audio at `rate`.
    pub fn create(path: &Path, rate: u32) -> Result<Self, WavError> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(path, spec).map_err(|e| WavError::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            writer,
            written: 0,
        })
    }

    /// Write `samples` starting at sample `position` of the file; a gap since the last
    /// write is filled with silence.
    pub fn write_at(&mut self, position: u64, samples: &[i16]) -> Result<(), WavError> {
        let err = |e: hound::Error| WavError::Write {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        while self.written < position {
            self.writer.write_sample(0i16).map_err(err)?;
            self.written += 1;
        }
        // A position behind the end (it never is: the playback clock only moves on)
        // overwrites nothing; the samples are appended.
        let mut i16s = self.writer.get_i16_writer(samples.len() as u32);
        for &s in samples {
            i16s.write_sample(s);
        }
        i16s.flush().map_err(err)?;
        self.written += samples.len() as u64;
        Ok(())
    }

    /// Finish the header and close the file.
    pub fn finish(self) -> Result<(), WavError> {
        let path = self.path;
        self.writer.finalize().map_err(|e| WavError::Write {
            path,
            reason: e.to_string(),
        })
    }
}
