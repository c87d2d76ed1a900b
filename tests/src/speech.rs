//! Synthesized speech for turn-taking tests: Debian's `espeak-ng` renders a sentence
//! to WAV (installed by `scripts/setup.sh`), read here as mono PCM at any rate.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use wasmrtc::media::Resampler;

/// Level below which a sample counts as silence when trimming.
const QUIET: i16 = 300;

/// `text` spoken by espeak-ng (English, 160 words per minute), as mono samples at
/// `rate` Hz with the synthesizer's leading and trailing silence trimmed.
pub fn sentence(text: &str, rate: u32) -> anyhow::Result<Vec<i16>> {
    let dir = std::env::temp_dir().join(format!("wasmrtc-speech-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let file = dir.join(format!("{:016x}-{n}.wav", fxhash(text)));
    let status = Command::new("espeak-ng")
        .args(["-v", "en", "-s", "160", "-w"])
        .arg(&file)
        .arg(text)
        .status()
        .context("run espeak-ng (install it with scripts/setup.sh or apt-get install espeak-ng)")?;
    if !status.success() {
        bail!("espeak-ng failed with {status}");
    }
    let wav = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
    let _ = std::fs::remove_file(&file);
    let (from, samples) = parse_wav(&wav)?;
    let mut resampler = Resampler::new(from, rate, 1)?;
    let mut out = resampler.process(&samples)?;
    out.extend(resampler.flush()?);
    Ok(trim(out))
}

/// Seconds of `samples` at `rate`.
pub fn seconds(samples: &[i16], rate: u32) -> f64 {
    samples.len() as f64 / f64::from(rate)
}

fn fxhash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn trim(samples: Vec<i16>) -> Vec<i16> {
    let loud = |s: &i16| s.unsigned_abs() > QUIET.unsigned_abs();
    let start = samples.iter().position(loud).unwrap_or(0);
    let end = samples.iter().rposition(loud).map_or(start, |i| i + 1);
    samples[start..end].to_vec()
}

/// The sample rate and samples of a 16-bit PCM mono WAV file.
fn parse_wav(bytes: &[u8]) -> anyhow::Result<(u32, Vec<i16>)> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        bail!("not a WAV file");
    }
    let mut at = 12;
    let mut rate = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into()?) as usize;
        let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
        match id {
            b"fmt " if body.len() >= 16 => {
                let channels = u16::from_le_bytes([body[2], body[3]]);
                let bits = u16::from_le_bytes([body[14], body[15]]);
                if channels != 1 || bits != 16 {
                    bail!("expected 16-bit mono, got {bits}-bit with {channels} channels");
                }
                rate = Some(u32::from_le_bytes(body[4..8].try_into()?));
            }
            b"data" => {
                let rate = rate.context("data before fmt")?;
                let samples = body
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect();
                return Ok((rate, samples));
            }
            _ => {}
        }
        // espeak-ng streams its WAV and may leave the data length at 0 or too large.
        at += 8 + len + (len & 1);
        if len == 0 || len > bytes.len() {
            break;
        }
    }
    bail!("no data chunk")
}
