// Shared pieces of the browser tests: a `wasmrtc serve` per test, Debian's Chromium
// with fake media devices, and measurements taken inside the page.

import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository root. */
export const ROOT = path.resolve(here, '..', '..');
/** Where screenshots go (gitignored). */
export const ARTIFACTS = path.join(ROOT, 'tests', 'artifacts');
/** Debian's Chromium; never a downloaded browser. */
export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

const BIN = path.resolve(ROOT, process.env.WASMRTC_BIN ?? 'target/release/wasmrtc');
const GUESTS = process.env.WASMRTC_GUESTS ?? path.join(ROOT, 'examples-guests', 'target', 'wasm32-wasip2', 'release');

export const CHROMIUM_ARGS = [
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  // Tabs in the background must keep their media and timers running.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

/** The path of an example guest's component, e.g. `guest('flip')`. */
export function guest(name) {
  const p = path.join(GUESTS, `${name.replaceAll('-', '_')}.wasm`);
  if (!fs.existsSync(p)) {
    throw new Error(`${p} is missing: build the example guests (cargo build --release in examples-guests, or cargo test --release -p wasmrtc-tests)`);
  }
  return p;
}

/** Servers still running, killed if this process ends first. */
const running = new Set();
process.on('exit', () => { for (const c of running) c.kill('SIGKILL'); });
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    for (const c of running) c.kill('SIGKILL');
    process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
  });
}

/**
 * The command prefix that runs a program the way `opts` asks: `opts.wrap` (an argv
 * prefix, e.g. `['ip', 'netns', 'exec', 'NS']`) or `opts.netns` (shorthand for that
 * prefix); none by default. The prefix must exec the program, so that its pid (and
 * the signals sent to it) are the program's own.
 */
function wrapper(opts = {}) {
  if (opts.wrap && opts.netns) throw new Error('give { wrap } or { netns }, not both');
  if (opts.wrap) return [...opts.wrap];
  if (opts.netns) return ['ip', 'netns', 'exec', opts.netns];
  return [];
}

/** `spawn(cmd, args, options)` behind `prefix` (see `wrapper`). */
function spawnWrapped(prefix, cmd, args, options) {
  return prefix.length ? spawn(prefix[0], [...prefix.slice(1), cmd, ...args], options) : spawn(cmd, args, options);
}

/**
 * Start `wasmrtc serve HANDLER --listen 127.0.0.1:0 ARGS…` and wait for its address.
 * Returns `{ url, logs(), stop() }`. Optional `opts`: `listen` (the HTTP address,
 * default 127.0.0.1:0), and `wrap` or `netns` to start it inside a network namespace
 * (`ip netns exec NS wasmrtc …`; see `wrapper`).
 */
export async function startServer(handler, args = [], opts = {}) {
  return startWasmrtc(['serve', guest(handler), '--listen', opts.listen ?? '127.0.0.1:0', ...args], opts);
}

/** The Rust build folder the template tests share (`tests/tests/e2e/authoring.rs`). */
export const TEMPLATE_TARGET = path.join(ROOT, 'target', 'authoring-templates');

/**
 * `wasmrtc new TEMPLATE NAME` in a fresh temporary folder, built once (a cold Rust
 * build can take minutes); the project's folder.
 */
export function newProject(template, name = 'demo') {
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'wasmrtc-browser-'));
  const env = { ...process.env, CARGO_TARGET_DIR: TEMPLATE_TARGET };
  execFileSync(BIN, ['new', template, name], { cwd: parent, env, stdio: 'inherit' });
  const dir = path.join(parent, name);
  execFileSync(BIN, ['build'], { cwd: dir, env, stdio: 'inherit', timeout: 600_000 });
  return dir;
}

/** Start `wasmrtc dev DIR` on a free port; like `startServer`'s result. */
export async function startDev(dir) {
  return startWasmrtc(['dev', dir, '--listen', '127.0.0.1:0'], { env: { CARGO_TARGET_DIR: TEMPLATE_TARGET } });
}

/** Start `wasmrtc ARGV…` (which must serve on a free port) and wait for its address. */
async function startWasmrtc(argv, opts = {}) {
  if (!fs.existsSync(BIN)) throw new Error(`${BIN} is missing: cargo build --release -p wasmrtc (or set WASMRTC_BIN)`);
  const child = spawnWrapped(wrapper(opts), BIN, argv, {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'wasmrtc=info,warn', ...opts.env },
  });
  running.add(child);
  child.on('exit', () => running.delete(child));
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`wasmrtc did not start within 60 s:\n${output}`)), 60_000);
    child.stderr.on('data', (d) => {
      output += d;
      // The whole line: wasmrtc writes it in pieces, which may arrive apart.
      const m = /serving\b.*?\bon (http:\/\/[^\s)]+)[^\n]*\n/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(`${m[1]}/`);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`wasmrtc exited with ${code} before serving:\n${output}`));
    });
  });
  return {
    url,
    logs: () => output,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * A fresh Chromium profile with fake camera and microphone. `opts.fakeUi: false`
 * denies the permission prompt instead. `opts.executablePath` replaces Debian's
 * Chromium (e.g. with a script that execs it inside a network namespace);
 * `opts.netns: NS` writes such a script (`exec ip netns exec NS chromium "$@"`) and
 * uses it. Playwright drives Chromium over pipes, which the exec chain keeps.
 * `opts.args` are added to Chromium's arguments.
 */
export async function launchBrowser(opts = {}) {
  if (opts.netns && opts.executablePath) throw new Error('give { executablePath } or { netns }, not both');
  let executablePath = opts.executablePath ?? CHROMIUM;
  let wrapDir = null;
  if (opts.netns) {
    if (!/^[A-Za-z0-9_.-]+$/.test(opts.netns)) throw new Error(`odd namespace name ${JSON.stringify(opts.netns)}`);
    wrapDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wasmrtc-chromium-netns-'));
    executablePath = path.join(wrapDir, 'chromium-in-netns');
    const quoted = `'${CHROMIUM.replaceAll("'", "'\\''")}'`;
    fs.writeFileSync(executablePath, `#!/bin/sh\nexec ip netns exec ${opts.netns} ${quoted} "$@"\n`, { mode: 0o755 });
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wasmrtc-chromium-'));
  // Without the fake permission UI, deny every prompt outright: how headless Chromium
  // treats an unanswered prompt otherwise varies between machines.
  const args = [...(opts.fakeUi === false
    ? [...CHROMIUM_ARGS.filter((a) => a !== '--use-fake-ui-for-media-stream'), '--deny-permission-prompts']
    : CHROMIUM_ARGS), ...(opts.args ?? [])];
  const context = await chromium.launchPersistentContext(dir, {
    executablePath,
    headless: true,
    args,
    viewport: { width: 1280, height: 800 },
    colorScheme: opts.colorScheme ?? 'light',
  }).catch((e) => {
    if (wrapDir) fs.rmSync(wrapDir, { recursive: true, force: true });
    throw e;
  });
  const close = context.close.bind(context);
  context.close = async () => {
    await close().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
    if (wrapDir) fs.rmSync(wrapDir, { recursive: true, force: true });
  };
  return context;
}

/** Save a screenshot of `page` as tests/artifacts/NAME.png. */
export async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * Open the page and wait until it has read the spec. `opts.beforeLoad(page)`, if
 * given, runs before the page loads (to add routes or init scripts).
 */
export async function openPage(context, url, opts = {}) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.errors = errors;
  await opts.beforeLoad?.(page);
  await page.goto(url);
  await page.locator('[data-testid="start"]:enabled').waitFor({ timeout: 10_000 });
  return page;
}

/** Press Start and wait until the peer connection is up. */
export async function startAndConnect(page, timeout = 20_000) {
  await page.getByTestId('start').click();
  await page.locator('[data-testid="state"][data-state="connected"]').waitFor({ timeout });
}

/** The inbound audio RTP stats: packets, level, energy, samples. */
export async function inboundAudio(page) {
  return page.evaluate(async () => {
    const pc = window.wasmrtc.pc;
    if (!pc) return null;
    const stats = await pc.getStats();
    for (const s of stats.values()) {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        return {
          packetsReceived: s.packetsReceived ?? 0,
          audioLevel: s.audioLevel ?? 0,
          totalAudioEnergy: s.totalAudioEnergy ?? 0,
          totalSamplesDuration: s.totalSamplesDuration ?? 0,
        };
      }
    }
    return null;
  });
}

/** Mean audio power received over `ms` (from totalAudioEnergy / totalSamplesDuration). */
export async function audioPower(page, ms) {
  const a = await inboundAudio(page);
  await page.waitForTimeout(ms);
  const b = await inboundAudio(page);
  const dt = b.totalSamplesDuration - a.totalSamplesDuration;
  return {
    power: dt > 0 ? (b.totalAudioEnergy - a.totalAudioEnergy) / dt : 0,
    seconds: dt,
    packets: b.packetsReceived - a.packetsReceived,
  };
}

/** Frames presented by a <video> within `ms`, counted with requestVideoFrameCallback. */
export async function countFrames(page, testid, ms) {
  return page.evaluate(([id, ms]) => new Promise((resolve) => {
    const v = document.querySelector(`[data-testid="${id}"]`);
    let frames = 0;
    let handle;
    const cb = () => { frames += 1; handle = v.requestVideoFrameCallback(cb); };
    handle = v.requestVideoFrameCallback(cb);
    setTimeout(() => { v.cancelVideoFrameCallback(handle); resolve(frames); }, ms);
  }), [testid, ms]);
}

/**
 * Mean luma of a top and a bottom band of a <video>'s current picture, away from
 * the middle (where Chromium's fake camera draws its rotating disc) and the corners:
 * rows 6–18 % and 82–94 %, columns 10–70 %. The fake camera writes its clock in the
 * top band, so the top is the brighter one in the camera's own picture.
 */
export async function bands(page, testid) {
  return page.evaluate((id) => {
    const v = document.querySelector(`[data-testid="${id}"]`);
    const w = 160;
    const h = 120;
    const c = document.createElement('canvas');
    c.width = w;
    c.height = h;
    const g = c.getContext('2d', { willReadFrequently: true });
    g.drawImage(v, 0, 0, w, h);
    const d = g.getImageData(0, 0, w, h).data;
    const band = (y0, y1) => {
      let sum = 0;
      let n = 0;
      for (let y = Math.round(y0 * h); y < Math.round(y1 * h); y++) {
        for (let x = Math.round(0.1 * w); x < Math.round(0.7 * w); x++) {
          const p = (y * w + x) * 4;
          sum += 0.299 * d[p] + 0.587 * d[p + 1] + 0.114 * d[p + 2];
          n += 1;
        }
      }
      return sum / n;
    };
    return { top: band(0.06, 0.18), bottom: band(0.82, 0.94), width: v.videoWidth, height: v.videoHeight };
  }, testid);
}

/** Average `fn()` (returning numbers by key) over `n` samples `gap` ms apart. */
export async function averageOf(n, gap, fn) {
  const sums = {};
  for (let i = 0; i < n; i++) {
    const r = await fn();
    for (const [k, v] of Object.entries(r)) sums[k] = (sums[k] ?? 0) + v / n;
    if (i + 1 < n) await new Promise((r2) => setTimeout(r2, gap));
  }
  return sums;
}

/** Debian's coturn. */
export const TURNSERVER = process.env.TURNSERVER_BIN ?? '/usr/bin/turnserver';

/** A port free for both UDP and TCP on 127.0.0.1 just now (bound to 0, then closed). */
async function freePort() {
  for (;;) {
    const udp = dgram.createSocket('udp4');
    const port = await new Promise((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(0, '127.0.0.1', () => resolve(udp.address().port));
    });
    const tcp = net.createServer();
    const ok = await new Promise((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, '127.0.0.1', () => resolve(true));
    });
    await new Promise((r) => udp.close(r));
    if (ok) {
      await new Promise((r) => tcp.close(r));
      return port;
    }
  }
}

/**
 * Start coturn on 127.0.0.1 with TURN REST API credentials (`--use-auth-secret`):
 * UDP and TCP on a free port, relay ports on 127.0.0.1, loopback peers allowed (the
 * wasmrtc under test listens on 127.0.0.1), everything it writes in a fresh temporary
 * directory, its log on stdout. Returns `{ port, url, logs(), stop() }` once its UDP
 * listener is open. Optional: `listeningIp` and `relayIp` (both 127.0.0.1 by default),
 * and `wrap` or `netns` to start it inside a network namespace (see `wrapper`; the
 * free port is then only probed in this process's namespace, and retried if taken).
 */
export async function startTurn({ secret, realm = 'wasmrtc.test', listeningIp = '127.0.0.1', relayIp = '127.0.0.1', wrap, netns } = {}) {
  if (!secret) throw new Error('startTurn needs { secret }');
  if (!fs.existsSync(TURNSERVER)) throw new Error(`${TURNSERVER} is missing: apt-get install coturn (or set TURNSERVER_BIN)`);
  let last = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    // Relay ports: a random block, away from the listening port; coturn skips any
    // port of it that is taken.
    const minPort = 20000 + Math.floor(Math.random() * 100) * 100;
    const maxPort = minPort + 99;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wasmrtc-turn-'));
    const args = [
      '-n', // no configuration file
      '-v', // logs the listeners it opens, and sessions and allocations
      '--no-cli', '--no-tls', '--no-dtls', '--no-rfc5780',
      `--listening-ip=${listeningIp}`, `--relay-ip=${relayIp}`,
      `--listening-port=${port}`, `--min-port=${minPort}`, `--max-port=${maxPort}`,
      '--relay-threads=1',
      '--use-auth-secret', `--static-auth-secret=${secret}`, `--realm=${realm}`,
      '--allow-loopback-peers', '--no-multicast-peers',
      `--pidfile=${path.join(dir, 'turn.pid')}`, `--userdb=${path.join(dir, 'turn.db')}`,
      '--log-file=stdout', '--simple-log',
    ];
    const child = spawnWrapped(wrapper({ wrap, netns }), TURNSERVER, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let output = '';
    const started = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), 10_000);
      const check = () => {
        if (output.includes(`UDP listener opened on: ${listeningIp}:${port}`)) {
          clearTimeout(timer);
          resolve(true);
        } else if (/Cannot bind|Address already in use/.test(output)) {
          clearTimeout(timer);
          resolve(false);
        }
      };
      child.stdout.on('data', (d) => { output += d; check(); });
      child.stderr.on('data', (d) => { output += d; check(); });
      child.on('error', (e) => { output += `\n${e}`; clearTimeout(timer); resolve(false); });
      child.on('exit', () => { clearTimeout(timer); resolve(false); });
    });
    const cleanup = () => {
      running.delete(child);
      fs.rmSync(dir, { recursive: true, force: true });
    };
    child.on('exit', cleanup);
    if (started) {
      return {
        port,
        url: `turn:${listeningIp}:${port}?transport=udp`,
        logs: () => output,
        async stop() {
          if (child.exitCode !== null || child.signalCode !== null) return;
          const exited = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(timer);
        },
      };
    }
    last = output;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
  }
  throw new Error(`turnserver did not start in 5 attempts; last output:\n${last}`);
}

/**
 * A TURN REST API credential for coturn's `--use-auth-secret`: the username is the
 * expiry (Unix seconds) and an id, the credential base64(HMAC-SHA1(secret, username)).
 * A negative `ttlSeconds` gives an expired one.
 */
export function turnCredential(secret, ttlSeconds) {
  const username = `${Math.floor(Date.now() / 1000) + ttlSeconds}:test`;
  const credential = crypto.createHmac('sha1', secret).update(username).digest('base64');
  return { username, credential };
}

/**
 * Record every RTCPeerConnection the pages of `context` make: `window.__pcs`, the
 * configuration each was given (`__pcConfigs`), their ICE candidate errors
 * (`__iceErrors`: url, errorCode, errorText) and connection states (`__pcStates`).
 */
export async function recordPeerConnections(context) {
  await context.addInitScript(() => {
    const Original = window.RTCPeerConnection;
    window.__pcs = [];
    window.__pcConfigs = [];
    window.__iceErrors = [];
    window.__pcStates = [];
    window.RTCPeerConnection = class extends Original {
      constructor(config, ...rest) {
        super(config, ...rest);
        window.__pcs.push(this);
        window.__pcConfigs.push(JSON.parse(JSON.stringify(config ?? {})));
        this.addEventListener('icecandidateerror', (e) => {
          window.__iceErrors.push({ url: e.url, errorCode: e.errorCode, errorText: e.errorText });
        });
        this.addEventListener('connectionstatechange', () => window.__pcStates.push(this.connectionState));
      }
    };
  });
}

/**
 * The candidate pair ICE selected on the page's peer connection: its state and both
 * ends. A selected pair reads `in-progress` while a consent check is out, so this
 * looks again for up to 5 s until it reads `succeeded`.
 */
export async function selectedPair(page) {
  let pair = await readSelectedPair(page);
  for (let i = 0; i < 25 && pair && pair.pairState !== 'succeeded'; i++) {
    await new Promise((r) => setTimeout(r, 200));
    pair = await readSelectedPair(page);
  }
  return pair;
}

async function readSelectedPair(page) {
  return page.evaluate(async () => {
    const pc = window.wasmrtc?.pc ?? window.__pcs?.at(-1);
    if (!pc) return null;
    const stats = await pc.getStats();
    let pair = null;
    for (const s of stats.values()) {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    }
    if (!pair) {
      for (const s of stats.values()) {
        if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
      }
    }
    if (!pair) return null;
    const local = stats.get(pair.localCandidateId);
    const remote = stats.get(pair.remoteCandidateId);
    return {
      pairState: pair.state,
      candidateType: local?.candidateType,
      protocol: local?.protocol,
      relayProtocol: local?.relayProtocol,
      url: local?.url,
      local: `${local?.address}:${local?.port}`,
      related: `${local?.relatedAddress}:${local?.relatedPort}`,
      remoteType: remote?.candidateType,
      remoteProtocol: remote?.protocol,
      remoteTcpType: remote?.tcpType,
      remoteAddress: remote?.address,
      remote: `${remote?.address}:${remote?.port}`,
    };
  });
}

/** The value of the series `series` (e.g. `name{label="x"}`) in /metrics `text`, 0 if absent. */
export function metricValue(text, series) {
  const escaped = series.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`^${escaped}\\s+(\\d+(?:\\.\\d+)?)\\s*$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}
