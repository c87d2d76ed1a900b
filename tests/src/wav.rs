//! WAV files for the offline-run, template and tutorial tests: 16-bit PCM, written and
//! read back without the host's code.

use std::path::Path;

/// A 16-bit PCM WAV file of interleaved `samples`.
pub fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
    let data = samples.len() as u32 * 2;
    let mut bytes = Vec::with_capacity(44 + data as usize);
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&channels.to_le_bytes());
    bytes.extend_from_slice(&rate.to_le_bytes());
    bytes.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
    bytes.extend_from_slice(&(channels * 2).to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, bytes).expect("write the WAV");
}

/// The rate, channel count and samples of a canonical 16-bit WAV file.
pub fn read_wav(path: &Path) -> (u32, u16, Vec<i16>) {
    let bytes = std::fs::read(path).expect("read the WAV");
    assert_eq!(&bytes[..4], b"RIFF");
    let mut at = 12;
    let (mut rate, mut channels) = (0, 0);
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = &bytes[at + 8..at + 8 + len];
        match &bytes[at..at + 4] {
            b"fmt " => {
                channels = u16::from_le_bytes([body[2], body[3]]);
                rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
            }
            b"data" => {
                let samples = body
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect();
                return (rate, channels, samples);
            }
            _ => {}
        }
        at += 8 + len + len % 2;
    }
    panic!("{}: no data chunk", path.display());
}
