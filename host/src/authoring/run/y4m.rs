//! YUV4MPEG2 (`.y4m`) files for `wasmrtc run`: 8-bit 4:2:0 frames in and out, the
//! format `ffmpeg -pix_fmt yuv420p out.y4m` writes and every video tool reads.
//!
//! A small parser of its own (the layout is one text line, then `FRAME` lines each
//! followed by the planes), bounded against hostile files: at most [`MAX_BYTES`] of
//! file, a header line of at most [`MAX_HEADER`] bytes and frame lines of at most
//! [`MAX_FRAME_HEADER`], pictures within the host's largest
//! ([`MAX_PICTURE`](crate::runtime::output_bounds::MAX_PICTURE), either orientation).
//! Errors name the byte offset or the frame.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::runtime::output_bounds::MAX_PICTURE;

/// Largest y4m file `wasmrtc run` reads: 4 GiB (22 minutes of 640x480 at 30 fps).
pub const MAX_BYTES: u64 = 4 << 30;
/// Longest stream header line, in bytes.
pub const MAX_HEADER: usize = 4096;
/// Longest `FRAME` line, in bytes.
pub const MAX_FRAME_HEADER: usize = 1024;
/// Highest frame rate accepted, in frames per second.
pub const MAX_FPS: f64 = 240.0;
/// The colour-space tags of 8-bit 4:2:0 (they differ only in chroma siting).
const CHROMA_420: [&str; 4] = ["420", "420jpeg", "420paldv", "420mpeg2"];

/// Why a y4m file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Y4mError {
    /// The file cannot be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_BYTES`].
    #[error("{path}: {size} bytes, more than the {MAX_BYTES} bytes (4 GiB) `wasmrtc run` reads")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The stream header is wrong.
    #[error("{path}: not a usable y4m file: {reason}")]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A frame is wrong.
    #[error("{path}: frame {frame} (at byte offset {offset}): {reason}")]
    Frame {
        /// The file.
        path: PathBuf,
        /// The frame's index, from 0.
        frame: u64,
        /// Where its `FRAME` line starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A frame to write does not fit the file.
    #[error(
        "{path}: output frame {frame} is {width}x{height} but the first was {first_width}x{first_height}: a y4m file has one frame size"
    )]
    SizeChange {
        /// The file.
        path: PathBuf,
        /// The frame's index, from 0.
        frame: u64,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// The first frame's width.
        first_width: u32,
        /// The first frame's height.
        first_height: u32,
    },
}

/// The stream header's facts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Header {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rate as a fraction; `None` when the file has no `F` tag.
    pub rate: Option<(u32, u32)>,
}

impl Header {
    /// Bytes of one I420 frame.
    pub fn frame_len(&self) -> usize {
        let (w, h) = (self.width as usize, self.height as usize);
        w * h + 2 * w.div_ceil(2) * h.div_ceil(2)
    }
}

/// Parse a stream header line (without its newline).
pub fn parse_header(line: &[u8]) -> Result<Header, String> {
    if !line.is_ascii() {
        return Err("the header is not ASCII text".into());
    }
    let text = std::str::from_utf8(line).map_err(|_| "the header is not ASCII text".to_string())?;
    let mut tags = text.split(' ');
    if tags.next() != Some("YUV4MPEG2") {
        return Err("it does not start with `YUV4MPEG2 `".into());
    }
    let (mut width, mut height, mut rate) = (None, None, None);
    for tag in tags.filter(|t| !t.is_empty()) {
        let (key, value) = tag.split_at(1);
        match key {
            "W" => width = Some(dimension("W", value)?),
            "H" => height = Some(dimension("H", value)?),
            "F" => rate = Some(frame_rate(value)?),
            "C" if CHROMA_420.contains(&value) => {}
            "C" => {
                return Err(format!(
                    "colour space C{value}: `wasmrtc run` reads 8-bit 4:2:0 (C420, C420jpeg, C420paldv, C420mpeg2 or no C tag)"
                ));
            }
            // Interlacing, aspect ratio and extensions do not change the layout.
            "I" | "A" | "X" => {}
            _ => return Err(format!("unknown header tag `{tag}`")),
        }
    }
    let (Some(width), Some(height)) = (width, height) else {
        return Err("the header has no W (width) or no H (height) tag".into());
    };
    let (long, short) = (width.max(height), width.min(height));
    if long > MAX_PICTURE.0 || short > MAX_PICTURE.1 {
        return Err(format!(
            "{width}x{height} pictures: at most {}x{} in either orientation",
            MAX_PICTURE.0, MAX_PICTURE.1
        ));
    }
    Ok(Header {
        width,
        height,
        rate,
    })
}

fn dimension(tag: &str, value: &str) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(format!(
            "{tag}{value}: the size must be a positive whole number"
        )),
    }
}

fn frame_rate(value: &str) -> Result<(u32, u32), String> {
    let bad = || format!("F{value}: the frame rate must be N:D with 0 < N/D <= {MAX_FPS}");
    let (n, d) = value.split_once(':').ok_or_else(bad)?;
    let (n, d) = (
        n.parse::<u32>().map_err(|_| bad())?,
        d.parse::<u32>().map_err(|_| bad())?,
    );
    if n == 0 || d == 0 || f64::from(n) / f64::from(d) > MAX_FPS {
        return Err(bad());
    }
    Ok((n, d))
}

/// A y4m file being read frame by frame.
#[derive(Debug)]
pub struct Y4mIn {
    path: PathBuf,
    reader: BufReader<File>,
    header: Header,
    /// Where the next frame starts.
    offset: u64,
    /// Frames read.
    frames: u64,
    /// Frames to read in all (`None`: to the end of the file).
    limit: Option<u64>,
    done: bool,
}

impl Y4mIn {
    /// Open `path` and read its stream header.
    pub fn open(path: &Path) -> Result<Self, Y4mError> {
        let io = |source| Y4mError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        if size > MAX_BYTES {
            return Err(Y4mError::TooLarge {
                path: path.to_path_buf(),
                size,
            });
        }
        let mut reader = BufReader::new(file);
        let header_err = |reason: String| Y4mError::Header {
            path: path.to_path_buf(),
            reason,
        };
        let line = read_line(&mut reader, MAX_HEADER)
            .map_err(io)?
            .ok_or_else(|| header_err("the file is empty".into()))?
            .map_err(|()| {
                header_err(format!(
                    "no end of the header line within its first {MAX_HEADER} bytes"
                ))
            })?;
        let header = parse_header(&line).map_err(header_err)?;
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            header,
            offset: line.len() as u64 + 1,
            frames: 0,
            limit: None,
            done: false,
        })
    }

    /// The stream header.
    pub fn header(&self) -> Header {
        self.header
    }

    /// Read at most `frames` frames.
    pub fn limit_frames(&mut self, frames: u64) {
        self.limit = Some(frames);
    }

    /// The next frame's I420 bytes, or `None` at the end of the file (or the limit).
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, Y4mError> {
        if self.done || self.limit.is_some_and(|l| self.frames >= l) {
            return Ok(None);
        }
        let frame_err = |s: &Self, reason: String| Y4mError::Frame {
            path: s.path.clone(),
            frame: s.frames,
            offset: s.offset,
            reason,
        };
        let io = |s: &Self, source| Y4mError::Io {
            path: s.path.clone(),
            source,
        };
        let line = match read_line(&mut self.reader, MAX_FRAME_HEADER) {
            Err(e) => return Err(io(self, e)),
            Ok(None) => {
                self.done = true;
                return Ok(None);
            }
            Ok(Some(Err(()))) => {
                return Err(frame_err(
                    self,
                    format!("no end of the FRAME line within {MAX_FRAME_HEADER} bytes"),
                ));
            }
            Ok(Some(Ok(line))) => line,
        };
        if !(line.starts_with(b"FRAME") && matches!(line.get(5), None | Some(b' '))) {
            return Err(frame_err(self, "expected a `FRAME` line".into()));
        }
        let len = self.header.frame_len();
        let mut data = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match std::io::Read::read(&mut self.reader, &mut data[got..]) {
                Ok(0) => {
                    return Err(frame_err(
                        self,
                        format!(
                            "truncated: the file ends at byte offset {} with {got} of the frame's {len} bytes",
                            self.offset + line.len() as u64 + 1 + got as u64
                        ),
                    ));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(self, e)),
            }
        }
        self.offset += line.len() as u64 + 1 + len as u64;
        self.frames += 1;
        Ok(Some(data))
    }
}

/// One line of at most `max` bytes before its `\n`: `None` at the end of the input,
/// `Err(())` when it is longer (or the input ends inside it).
fn read_line(
    reader: &mut impl BufRead,
    max: usize,
) -> std::io::Result<Option<Result<Vec<u8>, ()>>> {
    use std::io::Read as _;
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take(max as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Ok(Some(Err(())));
    }
    line.pop();
    Ok(Some(Ok(line)))
}

/// A y4m file being written: 4:2:0 (`C420jpeg`, what ffmpeg writes for yuv420p), its
/// frame size that of the first frame.
#[derive(Debug)]
pub struct Y4mOut {
    path: PathBuf,
    writer: BufWriter<File>,
    rate: (u32, u32),
    /// The first frame's size, once written.
    size: Option<(u32, u32)>,
    frames: u64,
}

impl Y4mOut {
    /// Create `path` (replacing it) for frames at `rate` (frames per second, as N:D).
    pub fn create(path: &Path, rate: (u32, u32)) -> Result<Self, Y4mError> {
        let file = File::create(path).map_err(|source| Y4mError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            writer: BufWriter::new(file),
            rate,
            size: None,
            frames: 0,
        })
    }

    /// Append one I420 frame of `width` x `height`.
    pub fn write(&mut self, width: u32, height: u32, i420: &[u8]) -> Result<(), Y4mError> {
        let io = |s: &Self, source| Y4mError::Io {
            path: s.path.clone(),
            source,
        };
        match self.size {
            None => {
                let (n, d) = self.rate;
                let header = format!("YUV4MPEG2 W{width} H{height} F{n}:{d} Ip A1:1 C420jpeg\n");
                self.writer
                    .write_all(header.as_bytes())
                    .map_err(|e| io(self, e))?;
                self.size = Some((width, height));
            }
            Some((w, h)) if (w, h) != (width, height) => {
                return Err(Y4mError::SizeChange {
                    path: self.path.clone(),
                    frame: self.frames,
                    width,
                    height,
                    first_width: w,
                    first_height: h,
                });
            }
            Some(_) => {}
        }
        self.writer
            .write_all(b"FRAME\n")
            .and_then(|()| self.writer.write_all(i420))
            .map_err(|e| io(self, e))?;
        self.frames += 1;
        Ok(())
    }

    /// Flush and close the file.
    pub fn finish(mut self) -> Result<(), Y4mError> {
        self.writer.flush().map_err(|source| Y4mError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_checked() {
        let h =
            parse_header(b"YUV4MPEG2 W64 H48 F30000:1001 Ip A1:1 C420jpeg XYSCSS=420JPEG").unwrap();
        assert_eq!((h.width, h.height, h.rate), (64, 48, Some((30000, 1001))));
        assert_eq!(h.frame_len(), 64 * 48 * 3 / 2);
        assert_eq!(parse_header(b"YUV4MPEG2 W3 H3").unwrap().frame_len(), 9 + 8);
        for (bad, says) in [
            (&b"YUV4MPEG W64 H48"[..], "YUV4MPEG2"),
            (b"YUV4MPEG2 W64", "no W"),
            (b"YUV4MPEG2 W0 H48", "positive"),
            (b"YUV4MPEG2 W99999999999 H48", "positive"),
            (b"YUV4MPEG2 W100000 H100000", "at most 3840x2160"),
            (b"YUV4MPEG2 W2160 H3840", ""),
            (b"YUV4MPEG2 W64 H48 C444", "C444"),
            (b"YUV4MPEG2 W64 H48 F0:1", "frame rate"),
            (b"YUV4MPEG2 W64 H48 F1000:1", "frame rate"),
            (b"YUV4MPEG2 W64 H48 Q1", "unknown"),
        ] {
            match parse_header(bad) {
                Ok(_) => assert!(says.is_empty(), "{bad:?} passed"),
                Err(e) => assert!(e.contains(says), "{bad:?}: {e}"),
            }
        }
    }
}
