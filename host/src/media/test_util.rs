//! Signal helpers shared by the media module's tests.

/// `frames` frames of a sine at `freq` Hz, amplitude `amp` of full scale, on every channel.
pub(crate) fn sine(freq: f64, rate: u32, channels: u8, frames: usize, amp: f64) -> Vec<i16> {
    let mut out = Vec::with_capacity(frames * usize::from(channels));
    for n in 0..frames {
        let v = (2.0 * std::f64::consts::PI * freq * n as f64 / f64::from(rate)).sin();
        let s = (v * amp * 32767.0).round() as i16;
        out.extend(std::iter::repeat_n(s, usize::from(channels)));
    }
    out
}

/// Channel `ch` of interleaved samples.
pub(crate) fn channel(samples: &[i16], channels: u8, ch: usize) -> Vec<i16> {
    samples
        .chunks_exact(usize::from(channels))
        .map(|f| f[ch])
        .collect()
}

/// Frequency of a (mono) tone, from its rising zero crossings, interpolated between samples.
pub(crate) fn dominant_frequency(samples: &[i16], rate: u32) -> f64 {
    let mut crossings = Vec::new();
    for (i, w) in samples.windows(2).enumerate() {
        let (a, b) = (f64::from(w[0]), f64::from(w[1]));
        if a < 0.0 && b >= 0.0 {
            crossings.push(i as f64 + (-a) / (b - a));
        }
    }
    if crossings.len() < 2 {
        return 0.0;
    }
    let span = crossings[crossings.len() - 1] - crossings[0];
    (crossings.len() - 1) as f64 * f64::from(rate) / span
}
