//! G.711 μ-law: 8-bit companded samples to and from 16-bit linear PCM, as telephone
//! networks, Twilio Media Streams and FastRTC's WebSocket transport carry audio.
//!
//! The classic table-driven codec (Sun/CCITT reference, bias 0x84, clip 32635): decoding
//! is one lookup in a 256-entry table built at compile time, encoding one lookup of the
//! segment (exponent) plus a shift. Decoded values match Python's `audioop.ulaw2lin`.

/// Added to the magnitude before finding the segment, so segment boundaries are powers of two.
const BIAS: i32 = 0x84;
/// Largest magnitude that encodes without overflowing the top segment.
const CLIP: i32 = 32_635;

/// Linear value of every μ-law byte.
const DECODE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        let u = !(i as u8);
        let exponent = ((u >> 4) & 0x07) as i32;
        let mantissa = (u & 0x0F) as i32;
        let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
        table[i] = if u & 0x80 != 0 {
            -magnitude as i16
        } else {
            magnitude as i16
        };
        i += 1;
    }
    table
};

/// Segment (exponent) of a biased magnitude, indexed by its bits 7..15.
const SEGMENT: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 1;
    while i < 256 {
        // Position of the highest set bit of `i`.
        let mut e = 0u8;
        let mut v = i >> 1;
        while v > 0 {
            e += 1;
            v >>= 1;
        }
        table[i] = e;
        i += 1;
    }
    table
};

/// Encode one linear sample.
#[inline]
pub fn encode(sample: i16) -> u8 {
    let s = i32::from(sample);
    let (sign, magnitude) = if s < 0 { (0x80, -s) } else { (0, s) };
    let biased = magnitude.min(CLIP) + BIAS;
    let exponent = SEGMENT[((biased >> 7) & 0xFF) as usize];
    let mantissa = ((biased >> (i32::from(exponent) + 3)) & 0x0F) as u8;
    !(sign | (exponent << 4) | mantissa)
}

/// Decode one μ-law byte.
#[inline]
pub fn decode(byte: u8) -> i16 {
    DECODE[usize::from(byte)]
}

/// Encode linear samples, one byte each.
pub fn encode_slice(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| encode(s)).collect()
}

/// Decode μ-law bytes, one sample each.
pub fn decode_slice(bytes: &[u8]) -> Vec<i16> {
    bytes.iter().map(|&b| decode(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::test_util::sine;

    #[test]
    fn decodes_the_reference_table() {
        // Values of the G.711 reference table (= audioop.ulaw2lin).
        assert_eq!(decode(0x00), -32124);
        assert_eq!(decode(0x0F), -16764); // start of the top segment
        assert_eq!(decode(0x7E), -8);
        assert_eq!(decode(0x7F), 0);
        assert_eq!(decode(0x80), 32124);
        assert_eq!(decode(0xEF), 132);
        assert_eq!(decode(0xFE), 8);
        assert_eq!(decode(0xFF), 0);
        for b in 0..=0x7Fu8 {
            assert_eq!(decode(b), -decode(b | 0x80), "byte {b:#04x}");
        }
    }

    #[test]
    fn encodes_known_values() {
        assert_eq!(encode(0), 0xFF);
        assert_eq!(encode(-1), 0x7F);
        assert_eq!(encode(i16::MAX), 0x80);
        assert_eq!(encode(i16::MIN), 0x00);
        assert_eq!(encode(32124), 0x80);
        assert_eq!(encode(-32124), 0x00);
        assert_eq!(encode(132), 0xEF);
        assert_eq!(encode(8), 0xFE);
    }

    #[test]
    fn every_code_survives_a_round_trip() {
        for b in 0..=255u8 {
            let expected = if b == 0x7F { 0xFF } else { b }; // -0 encodes as +0
            assert_eq!(encode(decode(b)), expected, "byte {b:#04x}");
        }
    }

    #[test]
    fn error_stays_within_half_a_step() {
        for s in i16::MIN..=i16::MAX {
            let back = i32::from(decode(encode(s)));
            let s = i32::from(s);
            let magnitude = s.abs().min(CLIP);
            // Step of the segment the magnitude falls in: 8 << exponent.
            let exponent = i32::from(SEGMENT[(((magnitude + BIAS) >> 7) & 0xFF) as usize]);
            let step = 8 << exponent;
            let clipped = s.clamp(-CLIP, CLIP);
            assert!(
                (back - clipped).abs() <= step / 2,
                "{s} -> {:#04x} -> {back} (step {step})",
                encode(s as i16)
            );
        }
    }

    #[test]
    fn a_sine_keeps_its_shape() {
        let pcm = sine(440.0, 8_000, 1, 8_000, 0.5);
        let bytes = encode_slice(&pcm);
        assert_eq!(bytes.len(), pcm.len());
        let back = decode_slice(&bytes);
        let (mut err, mut sig) = (0f64, 0f64);
        for (a, b) in pcm.iter().zip(&back) {
            sig += f64::from(*a).powi(2);
            err += (f64::from(*a) - f64::from(*b)).powi(2);
        }
        let snr_db = 10.0 * (sig / err).log10();
        // G.711 gives about 38 dB on a half-scale tone.
        assert!(snr_db > 33.0, "SNR {snr_db:.1} dB");
    }
}
