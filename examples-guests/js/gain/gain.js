// Audio send-receive: plays the client's audio back, scaled by a "gain" slider.
// The JavaScript twin of `examples-guests/gain` (Rust).

import { StreamHandler, exportHandler, spec, slider, asNumber } from '../wasmrtc-handler.js';

/** At most this many frames are queued (1 s of 20 ms frames); older ones are dropped. */
const MAX_QUEUED = 50;

/** 1.5 * 2^52: for |x| < 2^51, `(x + MAGIC) - MAGIC` is x rounded half to even. */
const MAGIC = 6755399441055744;
/** Scratch products, rounded to single precision by the typed-array store. */
let products = new Float32Array(960);

/**
 * `samples` times `factor` in single precision (like the Rust example's f32), rounded
 * half to even and saturated to s16, in place. Two passes over typed arrays with no
 * calls: the Float32Array store rounds each product to f32 and the MAGIC addition
 * rounds to an integer; a per-sample `Math.fround`/`Math.round` costs twice as much.
 */
function scale(samples, factor) {
  const n = samples.length;
  if (products.length < n) products = new Float32Array(n);
  for (let i = 0; i < n; i++) products[i] = samples[i] * factor;
  for (let i = 0; i < n; i++) {
    const r = products[i] + MAGIC - MAGIC;
    samples[i] = r > 32767 ? 32767 : r < -32768 ? -32768 : r; // Int16Array would wrap
  }
}

class Gain extends StreamHandler {
  constructor() {
    super();
    this.factor = 1;
    this.queue = [];
  }

  describe() {
    return spec('audio', 'send-receive', {
      inputSampleRate: 48000,
      outputSampleRate: 48000,
      inputs: [slider('gain', 'Gain', 0, 2, 0.01, 1)],
    });
  }

  setInputs(values) {
    const gain = asNumber(values[0]);
    if (gain !== undefined) this.factor = Math.fround(gain);
  }

  onAudio(frame) {
    if (this.factor !== 1) scale(frame.samples, this.factor);
    if (this.queue.length === MAX_QUEUED) this.queue.shift();
    this.queue.push(frame);
  }

  nextAudio() {
    return this.queue.shift();
  }
}

export const handler = exportHandler(Gain);
