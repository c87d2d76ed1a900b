//! Hostile on purpose: every `on_audio` emits 100 000 outputs of 1 KiB and prints 100 000 lines.

use std::io::Write;
use wasmrtc_guest::*;

const COUNT: usize = 100_000;

#[derive(Default)]
struct HostileFlood;

impl Handler for HostileFlood {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::Audio, Mode::SendReceive).output(OutputSpec::new(
            "flood",
            "Flood",
            OutputKind::Text,
        ))
    }

    fn on_audio(&mut self, _frame: AudioFrame) {
        let values = [Value::Text("x".repeat(1024))];
        for _ in 0..COUNT {
            emit_outputs(&values);
        }
        // Not `println!`: it panics if stdout fails, and this fixture floods rather than traps.
        let mut out = std::io::stdout().lock();
        for i in 0..COUNT {
            let _ = writeln!(out, "hostile-flood: line {i}");
        }
    }
}

export_handler!(HostileFlood);
