// Audio send-receive: plays the caller's audio back, scaled by a "gain" slider.

import { StreamHandler, exportHandler, spec, slider, asNumber } from './wasmrtc-handler.js';

/** At most this many frames are queued (1 s of 20 ms frames); older ones are dropped. */
const MAX_QUEUED = 50;

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
    this.factor = asNumber(values[0], this.factor);
  }

  onAudio(frame) {
    const f = this.factor;
    if (f !== 1) {
      const s = frame.samples; // an Int16Array: work on it in place
      for (let i = 0; i < s.length; i++) {
        const v = Math.round(s[i] * f);
        s[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v; // the store would wrap
      }
    }
    if (this.queue.length === MAX_QUEUED) this.queue.shift();
    this.queue.push(frame);
  }

  nextAudio() {
    return this.queue.shift();
  }
}

export const handler = exportHandler(Gain);
