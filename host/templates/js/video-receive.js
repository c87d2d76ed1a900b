// Video receive: generates a grey ramp that scrolls left, at 15 fps, with a
// "brightness" slider. The caller sends nothing.

import { StreamHandler, exportHandler, spec, slider, asNumber } from './wasmrtc-handler.js';

const WIDTH = 320;
const HEIGHT = 240;
const FPS = 15;

class Ramp extends StreamHandler {
  constructor() {
    super();
    this.brightness = 1;
    /** Frames generated so far. */
    this.frame = 0;
  }

  describe() {
    return spec('video', 'receive', {
      videoFormat: 'rgb24',
      fps: FPS,
      inputs: [slider('brightness', 'Brightness', 0, 1, 0.05, 1)],
    });
  }

  setInputs(values) {
    this.brightness = Math.min(1, Math.max(0, asNumber(values[0], this.brightness)));
  }

  nextVideo() {
    // One row, shifted 4 pixels per frame, copied into every row.
    const row = new Uint8Array(WIDTH * 3);
    const shift = this.frame * 4;
    for (let x = 0; x < WIDTH; x++) {
      row.fill(((x + shift) % 256) * this.brightness, x * 3, x * 3 + 3);
    }
    const data = new Uint8Array(row.length * HEIGHT);
    for (let y = 0; y < HEIGHT; y++) data.set(row, y * row.length);
    const timestampUs = BigInt(Math.floor((this.frame * 1e6) / FPS));
    this.frame += 1;
    return { width: WIDTH, height: HEIGHT, format: 'rgb24', data, timestampUs };
  }
}

export const handler = exportHandler(Ramp);
