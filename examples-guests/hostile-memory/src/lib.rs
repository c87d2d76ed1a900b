//! Hostile on purpose: `on_audio` allocates 1 MiB chunks until memory runs out, then traps.

use wasmrtc_guest::*;

const CHUNK: usize = 1 << 20;

#[derive(Default)]
struct HostileMemory {
    /// Kept in the handler's state so that no allocation can be optimized away.
    chunks: Vec<Vec<u8>>,
}

impl Handler for HostileMemory {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::Audio, Mode::SendReceive)
    }

    fn on_audio(&mut self, _frame: AudioFrame) {
        loop {
            let mut chunk = Vec::new();
            if chunk.try_reserve_exact(CHUNK).is_err() {
                // A panic is a trap; the message says how far it got.
                panic!(
                    "hostile-memory: out of memory after {} MiB",
                    self.chunks.len()
                );
            }
            // A non-zero fill writes every page, so the memory is really committed.
            chunk.resize(CHUNK, 0xA5);
            self.chunks.push(chunk);
        }
    }
}

export_handler!(HostileMemory);
