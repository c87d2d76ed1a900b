// wasmrtc's built-in stream page: speaks FastRTC's protocol (offer, data channel,
// input_hook, outputs SSE) with plain browser APIs. Every URL is relative, so the page
// works under any prefix.

const $ = (id) => document.getElementById(id);

const LIMIT_MESSAGE = 'Too many concurrent connections. Please try again later!';
const SLOW_CONNECT_MS = 10_000;
const ICE_GATHERING_TIMEOUT_MS = 5_000;

/** What /spec said, normalised. */
let info = null;
/** The live session, or null. */
let session = null;
/** Current input values by name (the defaults until changed). */
const values = {};
/** Output elements by name. */
const outputViews = {};

// ---------------------------------------------------------------------------
// Spec helpers

/** "SendReceive", "send-receive", "send_receive" → "sendreceive". */
const norm = (s) => String(s ?? '').toLowerCase().replace(/[^a-z]/g, '');

/** An externally tagged enum (`{"Slider": {...}}`, `"Checkbox"`) → [tag, payload]. */
function variant(v) {
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    const [k] = Object.keys(v);
    return [norm(k), v[k]];
  }
  return [norm(v), undefined];
}

function describeMedia(spec) {
  const modality = norm(spec.modality);
  const mode = norm(spec.mode);
  const audio = modality === 'audio' || modality === 'audiovideo';
  const video = modality === 'video' || modality === 'audiovideo';
  return {
    modality, mode, audio, video,
    sends: mode !== 'receive', // the browser sends media
    receives: mode !== 'send', // the browser receives media
  };
}

function devicesText(m) {
  if (m.audio && m.video) return 'camera and microphone';
  return m.video ? 'camera' : 'microphone';
}

function kindText(m) {
  const modality = { audio: 'Audio', video: 'Video', audiovideo: 'Audio + video' }[m.modality] ?? m.modality;
  const mode = { sendreceive: 'send-receive', send: 'send', receive: 'receive' }[m.mode] ?? m.mode;
  let what;
  if (m.mode === 'receive') what = `the handler generates ${m.video ? (m.audio ? 'audio and video' : 'video') : 'audio'}; nothing is captured from you`;
  else if (m.mode === 'send') what = `sends your ${devicesText(m)}; the handler answers with outputs`;
  else what = `sends your ${devicesText(m)} and plays back what the handler returns`;
  return `${modality} · ${mode} — ${what}`;
}

function fmtSeconds(s) {
  s = Math.max(0, Math.ceil(s));
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, '0')}`;
}

/** A slider's value with as many decimals as its step has. */
function fmtStep(v, step) {
  const decimals = step > 0 && step < 1 ? Math.min(4, Math.ceil(-Math.log10(step) - 1e-9)) : 0;
  return Number(v).toFixed(decimals);
}

function fmtNumber(v) {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(1) : v.toFixed(2);
}

// ---------------------------------------------------------------------------
// Status, banner, toasts

function setState(state, text) {
  const el = $('state');
  el.dataset.state = state;
  el.textContent = text;
}

function showBanner(text, kind = 'error') {
  $('banner-text').textContent = text;
  $('banner').dataset.kind = kind;
  $('banner').hidden = false;
}

function hideBanner() {
  $('banner').hidden = true;
  $('banner-text').textContent = '';
}

function toast(text, kind = 'info', ms = 6000) {
  const el = document.createElement('div');
  el.className = 'toast';
  el.dataset.kind = kind;
  el.dataset.testid = `toast-${kind}`;
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  const p = document.createElement('p');
  const title = document.createElement('strong');
  title.textContent = { warning: 'Warning', error: 'Error', info: 'Notice' }[kind] ?? kind;
  p.append(title, document.createTextNode(text));
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'icon-button';
  close.setAttribute('aria-label', 'Dismiss');
  close.textContent = '×';
  close.addEventListener('click', () => el.remove());
  el.append(p, close);
  $('toasts').append(el);
  while ($('toasts').children.length > 4) $('toasts').firstElementChild.remove();
  if (ms) setTimeout(() => el.remove(), ms);
}

function setHint(text) {
  $('hint').textContent = text ?? '';
}

function setButton(running) {
  const b = $('start');
  b.dataset.running = String(running);
  $('start-label').textContent = running ? 'Stop' : 'Start';
  b.setAttribute('aria-label', running ? 'Stop the stream' : 'Start the stream');
}

// ---------------------------------------------------------------------------
// Level meters (WebAudio AnalyserNode)

let audioCtx = null;

function ensureAudioContext() {
  if (!audioCtx) {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return null;
    audioCtx = new Ctx();
  }
  if (audioCtx.state === 'suspended') audioCtx.resume().catch(() => {});
  return audioCtx;
}

class Meter {
  constructor(el, stream, color) {
    this.el = el;
    this.color = color;
    this.fill = el.querySelector('.meter-fill');
    this.shown = 0;
    const ctx = ensureAudioContext();
    if (!ctx) return;
    this.source = ctx.createMediaStreamSource(stream);
    this.analyser = ctx.createAnalyser();
    this.analyser.fftSize = 2048;
    this.buf = new Float32Array(this.analyser.fftSize);
    this.source.connect(this.analyser);
    this.timer = setInterval(() => this.update(), 50);
  }

  /** The latest samples, or null before the first update and after stop. */
  get samples() {
    return this.live ? this.buf : null;
  }

  update() {
    this.analyser.getFloatTimeDomainData(this.buf);
    this.live = true;
    let sum = 0;
    for (const x of this.buf) sum += x * x;
    const rms = Math.sqrt(sum / this.buf.length);
    // -60 dBFS .. 0 dBFS → 0 .. 100 %.
    const db = rms > 0 ? 20 * Math.log10(rms) : -Infinity;
    const pct = Math.max(0, Math.min(100, ((db + 60) / 60) * 100));
    this.shown = Math.max(pct, this.shown * 0.85);
    this.fill.style.width = `${this.shown.toFixed(1)}%`;
    this.fill.style.setProperty('--meter-size', `${this.shown > 0 ? (100 / this.shown) * 100 : 100}%`);
    this.el.dataset.level = rms.toFixed(5);
    this.el.setAttribute('aria-valuenow', String(Math.round(this.shown)));
  }

  stop() {
    clearInterval(this.timer);
    this.live = false;
    try { this.source?.disconnect(); } catch { /* already gone */ }
    this.fill.style.width = '0%';
    this.el.dataset.level = '0';
    this.el.setAttribute('aria-valuenow', '0');
  }
}

const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

/** Draw the waveforms of `meters` (microphone, handler) on the scope canvas. */
function drawScope(meters = []) {
  const c = $('scope');
  if (!c || c.offsetParent === null) return;
  const dpr = window.devicePixelRatio || 1;
  const w = Math.round(c.clientWidth * dpr);
  const h = Math.round(c.clientHeight * dpr);
  if (c.width !== w || c.height !== h) {
    c.width = w;
    c.height = h;
  }
  const g = c.getContext('2d');
  g.clearRect(0, 0, w, h);
  g.strokeStyle = cssVar('--border');
  g.lineWidth = dpr;
  g.beginPath();
  g.moveTo(0, h / 2);
  g.lineTo(w, h / 2);
  g.stroke();
  for (const m of meters) {
    const buf = m.samples;
    if (!buf) continue;
    g.strokeStyle = cssVar(m.color);
    g.lineWidth = 2 * dpr;
    g.lineJoin = 'round';
    g.beginPath();
    const n = buf.length;
    for (let i = 0; i < n; i += 2) {
      const x = (i / (n - 1)) * w;
      const y = h / 2 - Math.max(-1, Math.min(1, buf[i])) * (h / 2) * 0.92;
      if (i) g.lineTo(x, y); else g.moveTo(x, y);
    }
    g.stroke();
  }
}

// ---------------------------------------------------------------------------
// Inputs

function fieldId(name) {
  return `input-${name}`;
}

function setFieldError(name, message) {
  const input = $(fieldId(name));
  const err = $(`${fieldId(name)}-error`);
  if (!input || !err) return;
  if (message) {
    input.setAttribute('aria-invalid', 'true');
    err.textContent = message;
  } else {
    input.removeAttribute('aria-invalid');
    err.textContent = '';
  }
}

async function postInputs(update) {
  if (!session || !session.id) return;
  const id = session.id;
  try {
    const r = await fetch('input_hook', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ webrtc_id: id, ...update }),
    });
    if (r.ok) {
      for (const name of Object.keys(update)) setFieldError(name, '');
      return;
    }
    let body = null;
    try { body = await r.json(); } catch { /* not JSON */ }
    if (!session || session.id !== id) return; // the stream ended meanwhile
    const detail = body?.detail?.[0];
    if (detail) {
      const name = detail.loc?.[1];
      if (name && name in update) setFieldError(name, detail.msg);
      else toast(detail.msg ?? `Input rejected (HTTP ${r.status})`, 'warning');
    } else if (body?.meta?.error !== 'unknown_connection') {
      toast(body?.meta?.message ?? `Input rejected (HTTP ${r.status})`, 'warning');
    }
  } catch (e) {
    toast(`Could not send the input: ${e.message}`, 'warning');
  }
}

function sendAllInputs() {
  if (Object.keys(values).length) postInputs({ ...values });
}

/** Set an input's value locally and, while streaming, on the server. */
function commit(name, value) {
  values[name] = value;
  postInputs({ [name]: value });
}

function throttle(fn, ms) {
  let last = 0;
  let timer = null;
  let pending = null;
  const run = () => {
    last = Date.now();
    timer = null;
    const args = pending;
    pending = null;
    fn(...args);
  };
  const wrapped = (...args) => {
    pending = args;
    if (timer) return;
    const wait = Math.max(0, ms - (Date.now() - last));
    timer = setTimeout(run, wait);
  };
  wrapped.flush = (...args) => {
    clearTimeout(timer);
    pending = args;
    run();
  };
  return wrapped;
}

function buildInputs(inputs) {
  const form = $('inputs');
  form.replaceChildren();
  form.addEventListener('submit', (e) => e.preventDefault());
  for (const input of inputs) {
    const [kind, c] = variant(input.control);
    const id = fieldId(input.name);
    const field = document.createElement('div');
    field.className = 'field';
    field.dataset.testid = `field-${input.name}`;
    const label = document.createElement('label');
    label.htmlFor = id;
    label.textContent = input.label || input.name;
    const error = document.createElement('p');
    error.className = 'error';
    error.id = `${id}-error`;
    error.setAttribute('aria-live', 'polite');
    let control;

    if (kind === 'slider') {
      values[input.name] = c.default;
      const row = document.createElement('div');
      row.className = 'row';
      control = document.createElement('input');
      control.type = 'range';
      control.min = c.min;
      control.max = c.max;
      control.step = c.step;
      control.value = c.default;
      const out = document.createElement('output');
      out.htmlFor = id;
      out.dataset.testid = `value-${input.name}`;
      out.textContent = fmtStep(c.default, c.step);
      const send = throttle((v) => commit(input.name, v), 120);
      control.addEventListener('input', () => {
        const v = Number(control.value);
        out.textContent = fmtStep(v, c.step);
        send(v);
      });
      control.addEventListener('change', () => send.flush(Number(control.value)));
      row.append(control, out);
      field.append(label, row);
    } else if (kind === 'number') {
      values[input.name] = c.default;
      control = document.createElement('input');
      control.type = 'number';
      control.step = 'any';
      control.inputMode = 'decimal';
      if (c.min != null) control.min = c.min;
      if (c.max != null) control.max = c.max;
      control.value = c.default;
      control.addEventListener('change', () => {
        const v = Number(control.value);
        if (control.value.trim() === '' || !Number.isFinite(v)) {
          setFieldError(input.name, 'Enter a number.');
        } else if (c.min != null && v < c.min) {
          setFieldError(input.name, `The smallest value is ${c.min}.`);
        } else if (c.max != null && v > c.max) {
          setFieldError(input.name, `The largest value is ${c.max}.`);
        } else {
          setFieldError(input.name, '');
          commit(input.name, v);
        }
      });
      field.append(label, control);
    } else if (kind === 'text') {
      values[input.name] = c ?? '';
      control = document.createElement('input');
      control.type = 'text';
      control.maxLength = 4096;
      control.value = c ?? '';
      control.addEventListener('change', () => commit(input.name, control.value));
      field.append(label, control);
    } else if (kind === 'checkbox') {
      values[input.name] = Boolean(c);
      field.classList.add('checkbox');
      control = document.createElement('input');
      control.type = 'checkbox';
      control.checked = Boolean(c);
      control.addEventListener('change', () => commit(input.name, control.checked));
      field.append(control, label);
    } else if (kind === 'dropdown') {
      values[input.name] = c.default;
      control = document.createElement('select');
      for (const choice of c.choices) {
        const o = document.createElement('option');
        o.value = choice;
        o.textContent = choice;
        o.selected = choice === c.default;
        control.append(o);
      }
      control.addEventListener('change', () => commit(input.name, control.value));
      field.append(label, control);
    } else {
      continue; // a control this page does not know
    }
    control.id = id;
    control.name = input.name;
    control.dataset.testid = `input-${input.name}`;
    control.setAttribute('aria-describedby', error.id);
    field.append(error);
    form.append(field);
  }
  $('inputs-card').hidden = form.children.length === 0;
}

// ---------------------------------------------------------------------------
// Outputs

function buildOutputs(outputs) {
  const list = $('outputs');
  list.replaceChildren();
  for (const o of outputs) {
    const kind = norm(o.kind);
    const item = document.createElement('div');
    item.className = 'output';
    item.dataset.testid = `output-${o.name}`;
    const dt = document.createElement('dt');
    dt.textContent = o.label || o.name;
    const dd = document.createElement('dd');
    const value = document.createElement(kind === 'json' ? 'pre' : 'span');
    value.className = `value empty${kind === 'json' ? ' json' : ''}`;
    value.dataset.testid = `output-value-${o.name}`;
    value.textContent = 'No value yet';
    dd.append(value);
    let spark = null;
    if (kind === 'number') {
      spark = document.createElement('canvas');
      spark.width = 160;
      spark.height = 32;
      spark.setAttribute('aria-hidden', 'true');
      dd.append(spark);
    }
    item.append(dt, dd);
    list.append(item);
    outputViews[o.name] = { kind, value, spark, history: [] };
  }
  $('outputs-card').hidden = outputs.length === 0;
}

function drawSpark(view) {
  const c = view.spark;
  const g = c.getContext('2d');
  const h = view.history;
  g.clearRect(0, 0, c.width, c.height);
  if (h.length < 2) return;
  const min = Math.min(...h);
  const max = Math.max(...h);
  const span = max - min || 1;
  g.strokeStyle = getComputedStyle(document.documentElement).getPropertyValue('--accent').trim() || '#4f46e5';
  g.lineWidth = 2;
  g.beginPath();
  h.forEach((v, i) => {
    const x = (i / (h.length - 1)) * (c.width - 2) + 1;
    const y = c.height - 3 - ((v - min) / span) * (c.height - 6);
    if (i) g.lineTo(x, y); else g.moveTo(x, y);
  });
  g.stroke();
}

function showOutput(name, v) {
  const view = outputViews[name];
  if (!view) return;
  view.value.classList.remove('empty');
  if (typeof v === 'number') {
    view.value.textContent = fmtNumber(v);
    if (view.spark) {
      view.history.push(v);
      if (view.history.length > 60) view.history.shift();
      drawSpark(view);
    }
  } else if (typeof v === 'string') {
    view.value.textContent = v;
  } else {
    view.value.textContent = JSON.stringify(v, null, view.kind === 'json' ? 2 : 0);
  }
  view.value.dataset.updated = String(Date.now());
}

function onOutputEvent(ev) {
  let data;
  try { data = JSON.parse(ev.data); } catch { data = ev.data; }
  if (data && typeof data === 'object' && !Array.isArray(data)) {
    for (const [k, v] of Object.entries(data)) showOutput(k, v);
  } else {
    const first = info.spec.outputs[0];
    if (first) showOutput(first.name, data);
  }
}

function resetOutputs() {
  for (const view of Object.values(outputViews)) {
    view.history = [];
    if (view.spark) drawSpark(view);
  }
}

// ---------------------------------------------------------------------------
// The connection

function gumErrorMessage(e, media) {
  const what = devicesText(media);
  switch (e?.name) {
    case 'NotAllowedError':
    case 'PermissionDeniedError':
    case 'SecurityError':
      return `Access to your ${what} was denied. Allow it in your browser's site settings (the icon next to the address), then press Start again.`;
    case 'NotFoundError':
    case 'DevicesNotFoundError':
    case 'OverconstrainedError':
      return `No ${what} was found. Connect one and press Start again.`;
    case 'NotReadableError':
    case 'TrackStartError':
      return `Your ${what} could not be started; another application may be using it.`;
    default:
      return `Could not open your ${what}: ${e?.message || e}`;
  }
}

function offerErrorMessage(body, status) {
  const code = body?.meta?.error;
  if (code === 'concurrency_limit_reached') return LIMIT_MESSAGE;
  if (code === 'connection_already_exists') return 'Connection already exists';
  if (body?.meta?.message) return body.meta.message;
  if (code) return `The server refused the connection: ${code.replaceAll('_', ' ')}.`;
  const detail = body?.detail?.[0]?.msg;
  if (detail) return `The server refused the connection: ${detail}`;
  return status ? `Unexpected server error (HTTP ${status})` : 'Unexpected server error';
}

function waitForIceGathering(pc) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => pc.iceGatheringState === 'complete' && done();
    const timer = setTimeout(done, ICE_GATHERING_TIMEOUT_MS);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

/** The `RTCConfiguration` the server hands out (its STUN and TURN servers). */
async function loadRtcConfiguration() {
  try {
    const r = await fetch('rtc_configuration', { cache: 'no-store' });
    const config = r.ok ? await r.json() : null;
    if (config && Array.isArray(config.iceServers)) return config;
  } catch { /* an older server, or offline: no servers */ }
  return { iceServers: [] };
}

function isTurnUrl(url) {
  return /^turns?:/i.test(String(url));
}

/** Why ICE has not completed, as far as the page can tell. */
function iceReason(s) {
  const turnErrors = s.iceErrors.filter((e) => isTurnUrl(e.url));
  const refused = turnErrors.find((e) => e.code === 401 || e.code === 403 || e.code === 431);
  if (refused) {
    return `The TURN server refused the credentials (${refused.code}${refused.text ? ` ${refused.text}` : ''}): they may have expired. Reload the page to get new ones.`;
  }
  if (turnErrors.length) {
    const e = turnErrors[0];
    return `The TURN server ${e.url} could not be used (${e.code}${e.text ? ` ${e.text}` : ''}).`;
  }
  if (!s.relay) return 'No TURN relay is configured, so a network that blocks direct connections cannot reach this server.';
  return 'No route to the server worked in time, the TURN relay included.';
}

async function start() {
  const media = info.media;
  hideBanner();
  setHint('');
  resetOutputs();
  const s = {
    id: null,
    pc: null,
    dc: null,
    local: null,
    es: null,
    meters: [],
    timers: [],
    connected: false,
    ended: false,
  };
  session = s;
  setButton(true);
  if (media.audio) s.timers.push(setInterval(() => drawScope(s.meters), 50));
  if (media.audio && media.receives) ensureAudioContext(); // while the click still counts

  // 1. Devices.
  if (media.sends) {
    setState('requesting', `Waiting for your ${devicesText(media)}…`);
    if (!navigator.mediaDevices?.getUserMedia) {
      return fail(`This page cannot use your ${devicesText(media)}: the browser allows it only on https or localhost.`);
    }
    try {
      s.local = await navigator.mediaDevices.getUserMedia({
        audio: media.audio ? { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 } : false,
        video: media.video ? { facingMode: 'user', width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } } : false,
      });
    } catch (e) {
      return fail(gumErrorMessage(e, media), 'denied');
    }
    if (session !== s) return s.local.getTracks().forEach((t) => t.stop());
    if (media.video) {
      $('local-video').srcObject = s.local;
      $('local-video-box').hidden = false;
    }
    if (media.audio) {
      $('local-meter-row').hidden = false;
      s.meters.push(new Meter($('local-meter'), s.local, '--scope-local'));
    }
  }

  // 2. Peer connection, data channel, transceivers.
  setState('connecting', 'Connecting…');
  const rtcConfig = await loadRtcConfiguration();
  if (session !== s) return s.local?.getTracks().forEach((t) => t.stop());
  s.relay = rtcConfig.iceServers.some((server) => [server.urls].flat().some(isTurnUrl));
  s.iceErrors = [];
  let pc;
  try {
    pc = new RTCPeerConnection(rtcConfig);
  } catch (e) {
    return fail(`The server's ICE configuration was refused by the browser: ${e.message}`);
  }
  s.pc = pc;
  pc.addEventListener('icecandidateerror', (e) => {
    if (session === s && s.iceErrors.length < 16) s.iceErrors.push({ url: e.url ?? '', code: e.errorCode, text: e.errorText ?? '' });
  });
  s.id = Math.random().toString(36).substring(2);
  const dc = pc.createDataChannel('text');
  s.dc = dc;
  dc.addEventListener('open', () => dc.send('handshake'));
  dc.addEventListener('message', (e) => onChannelMessage(s, e.data));
  dc.addEventListener('close', () => {
    if (session === s && s.connected) stop('The server closed the connection.');
  });

  const direction = media.mode === 'receive' ? 'recvonly' : media.mode === 'send' ? 'sendonly' : 'sendrecv';
  for (const kind of ['audio', 'video']) {
    if (!media[kind]) continue;
    if (media.sends) {
      const track = kind === 'audio' ? s.local.getAudioTracks()[0] : s.local.getVideoTracks()[0];
      pc.addTransceiver(track, { direction, streams: [s.local] });
    } else {
      pc.addTransceiver(kind, { direction });
    }
  }
  const remoteAudio = new MediaStream();
  const remoteVideo = new MediaStream();
  pc.addEventListener('track', (e) => {
    if (session !== s) return;
    if (e.track.kind === 'audio') {
      remoteAudio.addTrack(e.track);
      const el = $('remote-audio');
      el.srcObject = remoteAudio;
      el.play().catch(() => setHint('Your browser blocked sound: press Stop, then Start again.'));
      $('remote-meter-row').hidden = false;
      s.meters.push(new Meter($('remote-meter'), remoteAudio, '--accent'));
    } else {
      remoteVideo.addTrack(e.track);
      const el = $('remote-video');
      el.srcObject = remoteVideo;
      el.play().catch(() => {});
    }
  });
  pc.addEventListener('connectionstatechange', () => onConnectionState(s));

  // 3. Offer, gathered candidates included (the server does not trickle).
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc);
    if (session !== s) return;
    const r = await fetch('webrtc/offer', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type, webrtc_id: s.id }),
    });
    let body = null;
    try { body = await r.json(); } catch { /* not JSON */ }
    if (session !== s) return;
    if (!r.ok || !body || body.status === 'failed' || typeof body.sdp !== 'string') {
      return fail(offerErrorMessage(body, r.ok ? 0 : r.status), 'refused');
    }
    await pc.setRemoteDescription({ type: body.type ?? 'answer', sdp: body.sdp });
  } catch (e) {
    if (session === s) fail(`Could not connect: ${e.message}`);
    return;
  }

  // 4. Outputs, live.
  if (info.spec.outputs.length) {
    s.es = new EventSource(`outputs?webrtc_id=${encodeURIComponent(s.id)}`);
    s.es.addEventListener('output', onOutputEvent);
  }
  s.timers.push(setTimeout(() => {
    if (session === s && !s.connected) setHint(`Taking a while to connect. Are you on a VPN? ${iceReason(s)}`);
  }, SLOW_CONNECT_MS));
}

function onConnectionState(s) {
  if (session !== s) return;
  switch (s.pc.connectionState) {
    case 'connecting':
      setState('connecting', 'Connecting…');
      break;
    case 'connected':
      if (!s.connected) {
        s.connected = true;
        setHint('');
        startCountdown(s);
      }
      setState('connected', 'Connected');
      break;
    case 'disconnected':
      setState('connecting', 'Reconnecting…');
      break;
    case 'failed':
      fail(`The connection failed. Check your network and try again. ${iceReason(s)}`);
      break;
    case 'closed':
      stop('The connection closed.');
      break;
    default:
      break;
  }
}

function onChannelMessage(s, raw) {
  if (session !== s) return;
  let msg;
  try { msg = JSON.parse(raw); } catch { return; }
  const text = msg.message ?? msg.data ?? '';
  switch (msg.type) {
    case 'send_input':
      sendAllInputs();
      break;
    case 'warning':
      toast(String(text), 'warning');
      break;
    case 'error':
      showBanner(String(text), 'error');
      toast(String(text), 'error', 0);
      break;
    case 'end_stream':
      stop(text ? `The stream ended: ${text}.` : 'The stream ended.');
      break;
    case 'update_connection':
      if (text === 'closed') stop('The server closed the connection.');
      break;
    case 'log':
      if (text === 'pause_detected' || text === 'response_starting') setHint('Thinking…');
      else if (text === 'started_talking') setHint('Listening…');
      break;
    default:
      break; // fetch_output: the SSE route brings the values
  }
}

function startCountdown(s) {
  const limit = info.time_limit;
  if (!limit) return;
  const deadline = performance.now() + limit * 1000;
  $('countdown').hidden = false;
  const tick = () => {
    if (session !== s) return;
    const left = (deadline - performance.now()) / 1000;
    $('countdown-text').textContent = `${fmtSeconds(left)} left`;
    $('countdown-fill').style.width = `${Math.max(0, (left / limit) * 100)}%`;
    $('countdown').dataset.low = String(left <= Math.min(10, limit / 4));
    // The server closes the connection at the deadline; stop here if it did not say so.
    if (left < -3) stop('The time limit was reached.');
  };
  tick();
  s.timers.push(setInterval(tick, 250));
}

function teardown(s) {
  s.ended = true;
  for (const t of s.timers) { clearTimeout(t); clearInterval(t); }
  for (const m of s.meters) m.stop();
  s.es?.close();
  try { s.dc?.close(); } catch { /* closed */ }
  try { s.pc?.close(); } catch { /* closed */ }
  s.local?.getTracks().forEach((t) => t.stop());
  for (const id of ['local-video', 'remote-video', 'remote-audio']) $(id).srcObject = null;
  $('countdown').hidden = true;
  drawScope();
  $('local-video-box').hidden = !info.media.video || !info.media.sends;
  $('remote-meter-row').hidden = !(info.media.audio && info.media.receives);
}

/** End the session normally; `reason` is shown as a notice. */
function stop(reason) {
  const s = session;
  if (!s) return;
  session = null;
  teardown(s);
  setButton(false);
  setState('idle', 'Idle');
  if (reason) setHint(reason);
}

/** End the session with an error shown in the banner. */
function fail(message, state = 'failed') {
  const s = session;
  if (s) {
    session = null;
    teardown(s);
  }
  setButton(false);
  setState(state === 'failed' ? 'failed' : 'idle', state === 'refused' ? 'Not connected' : state === 'denied' ? 'No access' : 'Failed');
  showBanner(message);
}

// ---------------------------------------------------------------------------
// Page set-up

function buildAbout(data) {
  const spec = data.spec;
  const m = data.media;
  const rows = [
    ['Stream', data.name],
    ['Media', { audio: 'Audio', video: 'Video', audiovideo: 'Audio + video' }[m.modality] ?? m.modality],
    ['Mode', { sendreceive: 'Send-receive', send: 'Send', receive: 'Receive' }[m.mode] ?? m.mode],
  ];
  if (m.audio) rows.push(['Audio rates', `${spec.input_sample_rate / 1000} kHz in, ${spec.output_sample_rate / 1000} kHz out`]);
  if (m.video) rows.push(['Video', m.mode === 'receive' ? `${spec.fps} fps` : `${String(spec.video_format ?? '').toLowerCase()} frames`]);
  rows.push(['Connections', data.concurrency_limit == null ? 'No limit' : `At most ${data.concurrency_limit} at once`]);
  rows.push(['Time limit', data.time_limit == null ? 'None' : `${fmtSeconds(data.time_limit)} per connection`]);
  const dl = $('about');
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    dl.append(dt, dd);
  }
}

async function init() {
  $('banner-close').addEventListener('click', hideBanner);
  $('start').addEventListener('click', () => {
    if (session) stop('Stopped.');
    else start().catch((e) => fail(`Could not start: ${e.message}`));
  });
  let data;
  try {
    const r = await fetch('spec', { cache: 'no-store' });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    data = await r.json();
  } catch (e) {
    setState('failed', 'Unavailable');
    showBanner(`Could not load the stream's description (${e.message}). Reload the page to try again.`);
    return;
  }
  data.spec.inputs ??= [];
  data.spec.outputs ??= [];
  data.media = describeMedia(data.spec);
  info = data;
  document.title = `${data.name} · wasmrtc`;
  $('stream-name').textContent = data.name;
  $('stream-kind').textContent = kindText(data.media);
  const m = data.media;
  $('videos').hidden = !m.video;
  $('local-video-box').hidden = !m.video || !m.sends;
  $('remote-video-box').hidden = !m.video || !m.receives;
  $('audio').hidden = !m.audio;
  $('local-meter-row').hidden = !m.audio || !m.sends;
  $('remote-meter-row').hidden = !m.audio || !m.receives;
  $('remote-video').addEventListener('playing', () => { $('remote-video-placeholder').hidden = true; });
  $('remote-video').addEventListener('emptied', () => { $('remote-video-placeholder').hidden = false; });
  buildInputs(data.spec.inputs);
  buildOutputs(data.spec.outputs);
  buildAbout(data);
  setState('idle', 'Idle');
  drawScope();
  window.addEventListener('resize', () => { if (!session) drawScope(); });
  setHint(m.sends ? `Press Start; your browser will ask for your ${devicesText(m)}.` : 'Press Start to listen.');
  if (m.video && !m.audio && m.mode === 'receive') setHint('Press Start to watch.');
  $('start').disabled = false;
  watchDevBuilds();
}

// ---------------------------------------------------------------------------
// `wasmrtc dev`: follow rebuilds (GET dev/status, absent on a served host)

/** The media, inputs and outputs by name: what an open connection keeps across a rebuild. */
function shapeOf(spec) {
  const names = (xs) => (xs ?? []).map((x) => x.name).join(',');
  return [norm(spec.modality), norm(spec.mode), spec.input_sample_rate, spec.output_sample_rate,
    norm(spec.video_format), spec.fps, names(spec.inputs), names(spec.outputs)].join('|');
}

async function watchDevBuilds() {
  let seen = null;
  let failedShown = false;
  for (;;) {
    let status;
    try {
      const r = await fetch('dev/status', { cache: 'no-store' });
      status = await r.json();
      if (status.state === 'off') return; // not `wasmrtc dev`
    } catch {
      status = null; // the dev server is restarting or gone: try again
    }
    if (status) {
      if (status.state === 'failed') {
        showBanner(`Build failed; still serving the last good build.\n${status.error ?? ''}`);
        $('banner').dataset.dev = 'build-failed';
        failedShown = true;
      } else if (failedShown && status.state === 'ok') {
        hideBanner();
        delete $('banner').dataset.dev;
        failedShown = false;
      }
      if (seen !== null && status.generation !== seen) {
        const r = await fetch('spec', { cache: 'no-store' }).catch(() => null);
        const spec = r?.ok ? (await r.json()).spec : null;
        if (spec && shapeOf(spec) !== shapeOf(info.spec)) {
          if (!session) { location.reload(); return; }
          toast('Rebuilt: the handler\'s media, inputs or outputs changed. Stop and reload the page to use it.', 'warning', 0);
        } else {
          toast(session ? 'Rebuilt: your connection now runs the new handler.' : 'Rebuilt.', 'info', 4000);
        }
      }
      seen = status.generation;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

// For tests and the curious: the live peer connection and its id.
window.wasmrtc = {
  get pc() { return session?.pc ?? null; },
  get id() { return session?.id ?? null; },
  get spec() { return info; },
};

init();
