// Turn-taking (FastRTC's `ReplyOnPause`): when the caller pauses, plays their
// utterance back to them and emits its length.

import {
  TurnTakingHandler, exportHandler, exportTurns, spec, output, number, emitOutputs, turnTaking,
} from './wasmrtc-handler.js';

/** Rate of the utterances the host hands over, and of the reply. */
const RATE = 16000;
/** Samples of reply per `nextAudio` (100 ms): an interruption drops the rest here. */
const CHUNK = RATE / 10;

class Parrot extends TurnTakingHandler {
  constructor() {
    super();
    /** The reply still to play (an Int16Array), and the position in it. */
    this.reply = new Int16Array(0);
    this.position = 0;
  }

  describe() {
    return spec('audio', 'send-receive', {
      inputSampleRate: RATE,
      outputSampleRate: RATE,
      outputs: [output('heard', 'Utterance (s)', 'number')],
    });
  }

  describeTurns() {
    return turnTaking({ pauseMs: 500, interruptible: true });
  }

  onUtterance(utterance) {
    const step = Math.max(1, utterance.channels); // mono: the first channel only
    this.reply = step === 1 ? utterance.samples : utterance.samples.filter((_, i) => i % step === 0);
    this.position = 0;
    emitOutputs([number(Math.round((this.reply.length / utterance.sampleRate) * 100) / 100)]);
  }

  nextAudio() {
    if (this.position >= this.reply.length) return undefined;
    const samples = this.reply.slice(this.position, this.position + CHUNK);
    this.position += samples.length;
    return { sampleRate: RATE, channels: 1, samples };
  }

  onInterrupt() {
    this.reply = new Int16Array(0);
    this.position = 0;
  }
}

export const handler = exportHandler(Parrot);
export const turns = exportTurns(Parrot);
