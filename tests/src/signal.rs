//! Measurements of test signals: frequency, level, tone generation.

/// Frequency of a (mostly) periodic mono signal, from the interval between the
/// first and last rising zero crossing.
pub fn frequency(samples: &[i16], sample_rate: u32) -> f64 {
    let crossings: Vec<f64> = samples
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0 && w[1] >= 0)
        .map(|(i, w)| {
            // Interpolate where the signal crosses zero between the two samples.
            let (a, b) = (f64::from(w[0]), f64::from(w[1]));
            i as f64 + (-a / (b - a))
        })
        .collect();
    if crossings.len() < 2 {
        return 0.0;
    }
    let span = crossings[crossings.len() - 1] - crossings[0];
    (crossings.len() - 1) as f64 * f64::from(sample_rate) / span
}

/// Root-mean-square level of a signal, in sample units.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// Frequency and level of `samples` after the first `skip` (e.g. the start of an echo
/// that may still be settling).
pub fn measure(samples: &[i16], skip: usize, sample_rate: u32) -> (f64, f64) {
    let tail = &samples[skip.min(samples.len())..];
    (frequency(tail, sample_rate), rms(tail))
}

/// `n` samples of a sine at `freq` Hz and `amplitude`, starting at sample `offset`.
pub fn sine(freq: f64, amplitude: f64, sample_rate: u32, offset: usize, n: usize) -> Vec<i16> {
    (offset..offset + n)
        .map(|i| {
            let t = i as f64 / f64::from(sample_rate);
            (amplitude * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
        })
        .collect()
}

/// `n` samples of white noise with peak `amplitude`, the same for the same `seed`.
pub fn noise(amplitude: f64, seed: u64, n: usize) -> Vec<i16> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
            let unit = r as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            (unit * amplitude) as i16
        })
        .collect()
}
