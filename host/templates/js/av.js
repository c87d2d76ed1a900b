// Audio-video send-receive: plays the caller's audio back and returns each video
// frame flipped vertically.

import { StreamHandler, exportHandler, spec } from './wasmrtc-handler.js';

class AvEcho extends StreamHandler {
  constructor() {
    super();
    this.queue = [];
  }

  describe() {
    return spec('audio-video', 'send-receive', {
      inputSampleRate: 48000,
      outputSampleRate: 48000,
      videoFormat: 'rgb24',
    });
  }

  onAudio(frame) {
    if (this.queue.length === 50) this.queue.shift(); // at most 1 s of 20 ms frames
    this.queue.push(frame);
  }

  nextAudio() {
    return this.queue.shift();
  }

  onVideo(frame) {
    const stride = frame.width * 3;
    const h = frame.height;
    if (frame.data.length >= stride * h) {
      const out = new Uint8Array(frame.data.length);
      for (let y = 0; y < h; y++) {
        out.set(frame.data.subarray(y * stride, (y + 1) * stride), (h - 1 - y) * stride);
      }
      frame.data = out;
    }
    return frame;
  }
}

export const handler = exportHandler(AvEcho);
