// Write wasmrtc stream handlers in JavaScript.
//
// The JavaScript counterpart of the Rust SDK (`guest-sdk/`): spec builders with
// FastRTC's defaults, value helpers, the host functions, a `StreamHandler` base
// class whose methods all have defaults except `describe`, and `exportHandler`
// to turn a handler class into the component's `handler` export; for turn-taking
// (FastRTC's `ReplyOnPause`), `TurnTakingHandler`, `turnTaking` and `exportTurns`
// (the optional `turns` export).
//
// componentize-js maps the WIT types of `wasmrtc:handler@0.1.2` onto plain
// JavaScript values:
//
// | WIT                  | JavaScript                                              |
// |----------------------|---------------------------------------------------------|
// | record               | object with camelCase fields (`timestampUs`, `sampleRate`) |
// | enum                 | string: `'rgb24'`, `'i420'`, `'send-receive'`, `'number'` |
// | variant `value`      | `{ tag: 'number', val: 0.5 }`, `{ tag: 'none' }`          |
// | option               | the value, or `undefined` for none                       |
// | list<s16> / list<u8> | `Int16Array` / `Uint8Array`                              |
// | u64 (`timestampUs`)  | `BigInt`                                                 |
//
// The engine is SpiderMonkey's interpreter inside WebAssembly (no JIT): a
// per-sample or per-pixel loop costs tens of nanoseconds an element. Work on
// typed arrays, touch each element once, and prefer built-ins that run natively
// (`TypedArray.prototype.set`, `subarray`, `copyWithin`, `fill`).

import * as host from 'wasmrtc:handler/host@0.1.2';

// --- values ------------------------------------------------------------------

/** `value::number`. */
export const number = (n) => ({ tag: 'number', val: n });
/** `value::integer` (a BigInt). */
export const integer = (n) => ({ tag: 'integer', val: BigInt(n) });
/** `value::boolean`. */
export const boolean = (b) => ({ tag: 'boolean', val: !!b });
/** `value::text`. */
export const text = (s) => ({ tag: 'text', val: String(s) });
/** `value::json` (the argument is serialised with JSON.stringify). */
export const json = (v) => ({ tag: 'json', val: JSON.stringify(v) });
/** `value::none`. */
export const none = () => ({ tag: 'none' });

/** The value as a number if it is a number or an integer, else `fallback`. */
export function asNumber(value, fallback = undefined) {
  if (value && (value.tag === 'number' || value.tag === 'integer')) return Number(value.val);
  return fallback;
}

/** The value as a string if it is text or JSON, else `fallback`. */
export function asString(value, fallback = undefined) {
  if (value && (value.tag === 'text' || value.tag === 'json')) return value.val;
  return fallback;
}

/** The value as a boolean if it is one, else `fallback`. */
export function asBoolean(value, fallback = undefined) {
  if (value && value.tag === 'boolean') return value.val;
  return fallback;
}

// --- spec builders -------------------------------------------------------------

/**
 * A stream spec with FastRTC's defaults: 48 kHz in, 24 kHz out, BGR frames, 30 fps.
 * `modality`: 'audio' | 'video' | 'audio-video'; `mode`: 'send-receive' | 'send' | 'receive'.
 */
export function spec(modality, mode, {
  inputs = [],
  outputs = [],
  inputSampleRate = 48000,
  outputSampleRate = 24000,
  videoFormat = 'bgr24',
  fps = 30,
} = {}) {
  return { modality, mode, inputs, outputs, inputSampleRate, outputSampleRate, videoFormat, fps };
}

/** A slider from `min` to `max` in steps of `step`, starting at `def`. */
export const slider = (name, label, min, max, step, def) =>
  ({ name, label, control: { tag: 'slider', val: { min, max, step, default: def } } });

/** A number field with optional bounds, starting at `def`. */
export const numberInput = (name, label, def, { min, max } = {}) =>
  ({ name, label, control: { tag: 'number', val: { min, max, default: def } } });

/** A text field starting with `def`. */
export const textInput = (name, label, def = '') =>
  ({ name, label, control: { tag: 'text', val: def } });

/** A checkbox starting at `def`. */
export const checkbox = (name, label, def = false) =>
  ({ name, label, control: { tag: 'checkbox', val: def } });

/** A drop-down list of `choices`, starting at `def`. */
export const dropdown = (name, label, choices, def) =>
  ({ name, label, control: { tag: 'dropdown', val: { choices, default: def } } });

/** An additional output; `kind`: 'number' | 'text' | 'json'. */
export const output = (name, label, kind = 'number') => ({ name, label, kind });

// --- host functions ------------------------------------------------------------

/** Publish additional outputs, one value per declared output, in declared order. */
export const emitOutputs = (values) => host.emitOutputs(values);
/** Send a message to the client; `level`: 'log' | 'warning' | 'error'. */
export const notify = (level, message) => host.notify(level, message);
/** Send a warning to the client. */
export const warn = (message) => host.notify('warning', message);
/** End this connection after the current call; the client gets `end_stream` with `reason`. */
export const closeStream = (reason) => host.closeStream(reason);
/** Drop the audio already queued for playback to the client (barge-in). */
export const clearAudio = () => host.clearAudio();

// --- the handler ---------------------------------------------------------------

/**
 * A stream handler. Override `describe` and the methods your modality and mode need
 * (video: `onVideo` / `nextVideo`; audio: `onAudio` / `nextAudio`). The object is
 * created with no arguments on the connection's first call.
 */
export class StreamHandler {
  /** The stream's spec (see `spec`). Called once, in a throwaway instance. */
  describe() {
    throw new Error(`${this.constructor.name} must define describe()`);
  }
  /** Every input value in declared order; called first with the defaults. */
  setInputs(_values) {}
  /** Audio from the client at the spec's `inputSampleRate`. */
  onAudio(_frame) {}
  /** Audio for the client at the spec's `outputSampleRate`; `undefined` = nothing now. */
  nextAudio() { return undefined; }
  /** Video from the client; return a frame to send it back now. */
  onVideo(_frame) { return undefined; }
  /** Video for the client in receive mode, called at the spec's `fps`. */
  nextVideo() { return undefined; }
}

/** The handler object of this instance, per handler class (shared by both exports). */
const instances = new Map();

function instance(HandlerClass) {
  let handler = instances.get(HandlerClass);
  if (handler === undefined) {
    handler = new HandlerClass();
    instances.set(HandlerClass, handler);
  }
  return handler;
}

/**
 * The component's `handler` export, backed by one `new HandlerClass()` per instance:
 * `export const handler = exportHandler(MyHandler);`
 */
export function exportHandler(HandlerClass) {
  const self = () => instance(HandlerClass);
  return {
    describe: () => self().describe(),
    setInputs: (values) => self().setInputs(values),
    onAudio: (frame) => self().onAudio(frame),
    nextAudio: () => self().nextAudio(),
    onVideo: (frame) => self().onVideo(frame),
    nextVideo: () => self().nextVideo(),
  };
}

// --- turn-taking -----------------------------------------------------------------

/**
 * Turn-taking settings (the `turn-taking` record); the defaults are the Rust SDK's
 * `TurnTaking::default()`:
 * - `pauseMs` (100..=5000): silence after speech that ends the caller's turn;
 * - `minSpeechMs` (16..=2000): shorter sounds are not a turn;
 * - `maxUtteranceMs` (1000..=60000): an utterance this long is handed over without
 *   waiting for a pause;
 * - `interruptible`: whether the caller's speech cuts a reply (`onInterrupt`).
 */
export function turnTaking({
  pauseMs = 600,
  minSpeechMs = 200,
  maxUtteranceMs = 30000,
  interruptible = true,
} = {}) {
  return { pauseMs, minSpeechMs, maxUtteranceMs, interruptible: !!interruptible };
}

/**
 * A voice handler with turn-taking. The host detects the caller's speech, calls
 * `onUtterance` with each whole utterance after the pause, then plays what
 * `nextAudio` returns until it returns `undefined`; `onAudio` is not called. The
 * stream must be audio send-receive. Export both interfaces:
 *
 *     export const handler = exportHandler(MyHandler);
 *     export const turns = exportTurns(MyHandler);
 */
export class TurnTakingHandler extends StreamHandler {
  /**
   * Turn-taking settings (see `turnTaking`), or `undefined` to stay frame by frame.
   * Called once at load, after `describe`, in a throwaway instance. The default is
   * `turnTaking()`: a 600 ms pause, speech from 200 ms, 30 s at most, interruptible.
   */
  describeTurns() { return turnTaking(); }
  /**
   * The caller's whole utterance (`samples` an `Int16Array`, mono, at the spec's
   * `inputSampleRate`); prepare the reply, which the host then takes from
   * `nextAudio` until it returns `undefined`.
   */
  onUtterance(_utterance) {}
  /**
   * The caller spoke during an interruptible reply: the host already dropped the
   * audio it had queued; drop the rest of the reply.
   */
  onInterrupt() {}
}

/**
 * The component's `turns` export, sharing the handler object of `exportHandler`:
 * `export const turns = exportTurns(MyHandler);`. A module that exports `turns` is
 * built against the `turn-taking-component` world (`build.mjs` picks it).
 */
export function exportTurns(HandlerClass) {
  const self = () => instance(HandlerClass);
  return {
    describeTurns: () => self().describeTurns(),
    onUtterance: (utterance) => self().onUtterance(utterance),
    onInterrupt: () => self().onInterrupt(),
  };
}
