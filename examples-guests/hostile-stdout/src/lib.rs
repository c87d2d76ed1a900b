//! Hostile on purpose: every `on_audio` prints 100 000 lines to stdout and to stderr.

use std::io::Write;
use wasmrtc_guest::*;

const COUNT: usize = 100_000;

#[derive(Default)]
struct HostileStdout;

impl Handler for HostileStdout {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::Audio, Mode::SendReceive)
    }

    fn on_audio(&mut self, _frame: AudioFrame) {
        // Not `println!`: it panics if stdout fails, and this fixture floods rather than traps.
        let mut out = std::io::stdout().lock();
        let mut err = std::io::stderr().lock();
        for i in 0..COUNT {
            let _ = writeln!(out, "hostile-stdout: line {i}");
            let _ = writeln!(err, "hostile-stdout: error line {i}");
        }
    }
}

export_handler!(HostileStdout);
