// Video send: emits the mean brightness (0-255) of the caller's video, at most four
// times a second. Nothing is sent back.

import { StreamHandler, exportHandler, spec, output, number, emitOutputs } from './wasmrtc-handler.js';

/** Minimum time between two emitted values: 250 ms (timestamps are BigInt µs). */
const PERIOD_US = 250_000n;

class Brightness extends StreamHandler {
  constructor() {
    super();
    this.lastEmitUs = undefined;
  }

  describe() {
    // I420, so the first `width * height` bytes are the luma plane.
    return spec('video', 'send', {
      videoFormat: 'i420',
      outputs: [output('brightness', 'Mean brightness (0-255)', 'number')],
    });
  }

  onVideo(frame) {
    const ts = BigInt(frame.timestampUs);
    const last = this.lastEmitUs;
    const pixels = frame.width * frame.height;
    if ((last === undefined || ts < last || ts >= last + PERIOD_US) && pixels > 0 && pixels <= frame.data.length) {
      this.lastEmitUs = ts;
      let total = 0;
      for (let i = 0; i < pixels; i++) total += frame.data[i];
      emitOutputs([number(total / pixels)]);
    }
    return undefined;
  }
}

export const handler = exportHandler(Brightness);
