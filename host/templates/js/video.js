// Video send-receive: returns every frame flipped vertically (rows in reverse order).

import { StreamHandler, exportHandler, spec } from './wasmrtc-handler.js';

/** `height` rows of `stride` bytes of `data`, in reverse order (row copies, no per-pixel code). */
function flipRows(data, stride, height) {
  if (data.length < stride * height) return data;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < height; y++) {
    out.set(data.subarray(y * stride, (y + 1) * stride), (height - 1 - y) * stride);
  }
  return out;
}

class Flip extends StreamHandler {
  describe() {
    return spec('video', 'send-receive', { videoFormat: 'rgb24' });
  }

  onVideo(frame) {
    frame.data = flipRows(frame.data, frame.width * 3, frame.height);
    return frame;
  }
}

export const handler = exportHandler(Flip);
