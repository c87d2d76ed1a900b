// Video send: emits the mean brightness of the client's video, at most 4 times a second.
// The JavaScript twin of `examples-guests/brightness` (Rust).

import { StreamHandler, exportHandler, spec, output, number, emitOutputs } from '../wasmrtc-handler.js';

/** Minimum time between two emitted values: 250 ms (timestamps are BigInt µs). */
const PERIOD_US = 250_000n;

/** Sum of `bytes[0..n)`, four bytes per step through a Uint32Array view where aligned. */
function sumBytes(bytes, n) {
  let total = 0;
  let i = 0;
  if (bytes.byteOffset % 4 === 0) {
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, n >>> 2);
    // Two 16-bit lanes hold the sums of bytes 0+1 and 2+3 of each word: at most
    // 2 * 255 per word, so flush the lanes every 128 words before they overflow.
    for (let w = 0; w < words.length; ) {
      const end = Math.min(words.length, w + 128);
      let lanes = 0;
      for (; w < end; w++) {
        const v = words[w];
        lanes += (v & 0x00ff00ff) + ((v >>> 8) & 0x00ff00ff);
      }
      total += (lanes & 0xffff) + (lanes >>> 16);
    }
    i = words.length * 4;
  }
  for (; i < n; i++) total += bytes[i];
  return total;
}

/** Mean luma (0..=255) of the frame, or `undefined` if it is empty or too short. */
function meanLuma(frame) {
  const pixels = frame.width * frame.height;
  const data = frame.data;
  if (frame.format === 'i420') {
    if (pixels === 0 || data.length < pixels) return undefined;
    return sumBytes(data, pixels) / pixels;
  }
  // In case the format is changed: BT.601 luma, weights scaled by 256.
  if (pixels === 0 || data.length < pixels * 3) return undefined;
  const [wr, wb] = frame.format === 'rgb24' ? [77, 29] : [29, 77];
  let total = 0;
  for (let p = 0; p < pixels * 3; p += 3) {
    total += (wr * data[p] + 150 * data[p + 1] + wb * data[p + 2]) >> 8;
  }
  return total / pixels;
}

class Brightness extends StreamHandler {
  constructor() {
    super();
    /** Timestamp of the frame last measured; `undefined` before the first frame. */
    this.lastEmitUs = undefined;
  }

  describe() {
    // I420 so that the first `width * height` bytes are the luma plane.
    return spec('video', 'send', {
      videoFormat: 'i420',
      outputs: [output('brightness', 'Mean brightness (0-255)', 'number')],
    });
  }

  onVideo(frame) {
    const ts = BigInt(frame.timestampUs);
    const last = this.lastEmitUs;
    // Also emit when time goes backwards (a restarted stream) rather than stall.
    if (last === undefined || ts < last || ts >= last + PERIOD_US) {
      const mean = meanLuma(frame);
      if (mean !== undefined) {
        this.lastEmitUs = ts;
        emitOutputs([number(mean)]);
      }
    }
    return undefined;
  }
}

export const handler = exportHandler(Brightness);
