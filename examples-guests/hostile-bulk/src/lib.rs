//! Hostile on purpose: `on_audio` makes the host (or wasmtime's bulk-memory code) do
//! work each instruction of which takes far longer than an epoch tick, picked by the
//! "mode" slider:
//!
//! - 0: nothing (a benign call);
//! - 1: `memory.fill` of 96 MiB, forever;
//! - 2: `memory.copy` of 48 MiB, forever;
//! - 3: one `get-random-bytes` of 32 MiB;
//! - 4: `get-random-bytes` of 64 KiB, forever;
//! - 5: pollables from `subscribe-duration`, never dropped, forever.

use core::hint::black_box;
use wasmrtc_guest::*;

#[derive(Default)]
struct HostileBulk {
    mode: u32,
}

impl Handler for HostileBulk {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::Audio, Mode::SendReceive)
            .input(InputSpec::slider("mode", "Mode", 0.0, 5.0, 1.0, 0.0))
    }

    fn set_inputs(&mut self, values: Vec<Value>) {
        if let Some(mode) = values.first().and_then(Value::as_f64) {
            self.mode = mode as u32;
        }
    }

    fn on_audio(&mut self, _frame: AudioFrame) {
        match self.mode {
            1 => fill(96 << 20),
            2 => copy(48 << 20),
            3 => {
                black_box(wasip2::random::random::get_random_bytes(32 << 20));
            }
            4 => loop {
                black_box(wasip2::random::random::get_random_bytes(64 << 10));
            },
            5 => loop {
                let pollable = wasip2::clocks::monotonic_clock::subscribe_duration(1 << 40);
                std::mem::forget(pollable);
            },
            _ => {}
        }
    }
}

/// One `memory.fill` of `len` bytes per turn of an endless loop.
fn fill(len: usize) -> ! {
    let mut buf = vec![0u8; len];
    let mut i = 0u8;
    loop {
        // `fill` of bytes is a memset, which bulk memory makes one `memory.fill`.
        black_box(&mut buf[..]).fill(i);
        i = i.wrapping_add(1);
    }
}

/// One `memory.copy` of `len` bytes per turn of an endless loop.
fn copy(len: usize) -> ! {
    let mut a = vec![1u8; len];
    let mut b = vec![2u8; len];
    loop {
        black_box(&mut a[..]).copy_from_slice(black_box(&b[..]));
        core::mem::swap(&mut a, &mut b);
    }
}

export_handler!(HostileBulk);
