// Audio receive: a sine tone with "frequency" and "volume" inputs. The caller sends
// nothing.

import { StreamHandler, exportHandler, spec, slider, numberInput, asNumber } from './wasmrtc-handler.js';

const RATE = 48000;
/** Samples per `nextAudio` call: 20 ms, mono. */
const FRAME = RATE / 50;

class Tone extends StreamHandler {
  constructor() {
    super();
    this.frequency = 440;
    this.volume = 0.5;
    /** Position in the current cycle, in 0..1, carried across calls. */
    this.phase = 0;
  }

  describe() {
    return spec('audio', 'receive', {
      inputSampleRate: RATE,
      outputSampleRate: RATE,
      inputs: [
        numberInput('frequency', 'Frequency (Hz)', 440, { min: 20, max: 20000 }),
        slider('volume', 'Volume', 0, 1, 0.01, 0.5),
      ],
    });
  }

  setInputs(values) {
    this.frequency = asNumber(values[0], this.frequency);
    this.volume = asNumber(values[1], this.volume);
  }

  nextAudio() {
    const step = this.frequency / RATE;
    const amplitude = this.volume * 32767;
    const samples = new Int16Array(FRAME);
    for (let i = 0; i < FRAME; i++) {
      samples[i] = Math.trunc(Math.sin(2 * Math.PI * this.phase) * amplitude);
      this.phase = (this.phase + step) % 1;
    }
    return { sampleRate: RATE, channels: 1, samples };
  }
}

export const handler = exportHandler(Tone);
