// Audio send: measures the caller's audio and emits its level (dBFS) four times a
// second. Nothing is sent back.

import { StreamHandler, exportHandler, spec, output, number, emitOutputs } from './wasmrtc-handler.js';

const RATE = 16000;
/** Samples per measurement: 250 ms. */
const WINDOW = RATE / 4;

class Meter extends StreamHandler {
  constructor() {
    super();
    this.energy = 0;
    this.samples = 0;
  }

  describe() {
    return spec('audio', 'send', {
      inputSampleRate: RATE,
      outputSampleRate: RATE,
      outputs: [output('level', 'Level (dBFS)', 'number')],
    });
  }

  onAudio(frame) {
    const s = frame.samples;
    const step = Math.max(1, frame.channels); // the first channel only
    for (let i = 0; i < s.length; i += step) {
      this.energy += s[i] * s[i];
      if (++this.samples === WINDOW) {
        const rms = Math.sqrt(this.energy / WINDOW) / 32768;
        const level = rms > 0 ? 20 * Math.log10(rms) : -120;
        emitOutputs([number(Math.round(level * 10) / 10)]);
        this.energy = 0;
        this.samples = 0;
      }
    }
  }
}

export const handler = exportHandler(Meter);
