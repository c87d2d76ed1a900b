// Turn-taking: plays each of the caller's utterances back, at an adjustable speed.
// The JavaScript twin of `examples-guests/parrot` (Rust): FastRTC's `ReplyOnPause`
// quick-start (`def echo(audio): yield audio`). The host detects when the caller
// starts and stops talking; after each pause `onUtterance` gets the whole utterance
// and `nextAudio` plays it back in 100 ms chunks, resampled from 16 to 24 kHz with
// linear interpolation (and by the `speed` input, like a tape).

import {
  TurnTakingHandler, exportHandler, exportTurns, turnTaking, spec, numberInput, output,
  asNumber, number, emitOutputs,
} from '../wasmrtc-handler.js';

/** Rate of the utterances the host hands over. */
const IN_RATE = 16000;
/** Rate of the reply. */
const OUT_RATE = 24000;
/** Samples of reply per `nextAudio` (100 ms), so an interruption drops the rest here. */
const CHUNK = OUT_RATE / 10;
/** 1.5 * 2^52: for |x| < 2^51, `(x + MAGIC) - MAGIC` is x rounded half to even. */
const MAGIC = 6755399441055744;

class Parrot extends TurnTakingHandler {
  constructor() {
    super();
    this.speed = 1;
    /** The utterance being played back. */
    this.utterance = new Int16Array(0);
    /** Position in `utterance`, in input samples. */
    this.position = 0;
  }

  describe() {
    return spec('audio', 'send-receive', {
      inputSampleRate: IN_RATE,
      outputSampleRate: OUT_RATE,
      inputs: [numberInput('speed', 'Playback speed', 1, { min: 0.5, max: 2 })],
      outputs: [output('heard', 'Utterance (s)', 'number')],
    });
  }

  describeTurns() {
    return turnTaking({ pauseMs: 500, minSpeechMs: 200, maxUtteranceMs: 15000, interruptible: true });
  }

  setInputs(values) {
    this.speed = Math.min(2, Math.max(0.5, asNumber(values[0], 1)));
  }

  onUtterance(utterance) {
    const channels = Math.max(1, utterance.channels);
    const samples = utterance.samples;
    const seconds = samples.length / channels / utterance.sampleRate;
    emitOutputs([number(Math.round(seconds * 100) / 100)]);
    if (channels === 1) {
      this.utterance = samples;
    } else {
      // Mono: the first channel.
      const mono = new Int16Array(Math.floor(samples.length / channels));
      for (let i = 0, j = 0; i < mono.length; i++, j += channels) mono[i] = samples[j];
      this.utterance = mono;
    }
    this.position = 0;
  }

  nextAudio() {
    const a = this.utterance;
    const last = a.length - 1;
    if (last < 0) return undefined;
    if (this.position > last) {
      this.onInterrupt();
      return undefined;
    }
    // Input samples per output sample: the speed, times the rate ratio.
    const step = (this.speed * IN_RATE) / OUT_RATE;
    const out = new Int16Array(CHUNK);
    let n = 0;
    let pos = this.position;
    // One plain loop over typed arrays, no calls: linear interpolation between
    // the two input samples around each output sample.
    while (n < CHUNK && pos <= last) {
      const i = pos | 0;
      const x = a[i];
      const y = i < last ? a[i + 1] : x;
      out[n++] = x + (y - x) * (pos - i) + MAGIC - MAGIC;
      pos += step;
    }
    this.position = pos;
    return { sampleRate: OUT_RATE, channels: 1, samples: n === CHUNK ? out : out.slice(0, n) };
  }

  onInterrupt() {
    this.utterance = new Int16Array(0);
    this.position = 0;
  }
}

export const handler = exportHandler(Parrot);
export const turns = exportTurns(Parrot);
