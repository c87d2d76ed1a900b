//! Hostile on purpose: describes a spec the host must refuse (7 Hz input, slider with min > max).

use wasmrtc_guest::*;

#[derive(Default)]
struct BadSpec;

impl Handler for BadSpec {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::Audio, Mode::SendReceive)
            // Both faults are deliberate: rates must be 8000..=48000, and min < max.
            .sample_rates(7, 48_000)
            .input(InputSpec::slider("gain", "Gain", 2.0, 0.0, 0.01, 1.0))
    }
}

export_handler!(BadSpec);
