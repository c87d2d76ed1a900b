// A client whose network leaves the TURN relay as its only path to the media: no
// `iceTransportPolicy: "relay"` anywhere, the topology alone decides.
//
// Two network namespaces made for this run, joined by a veth pair and to nothing else:
//
//   wrtc-srv-PID  veth-s 10.231.X.1/30  <-->  veth-c 10.231.X.2/30  wrtc-cli-PID
//     coturn   listening on 10.231.X.1:T, relaying from 127.0.0.1
//     wasmrtc  HTTP on 10.231.X.1:H, media on udp 127.0.0.1:U (so no ICE-TCP either)
//                                                    Chromium (fake camera)
//
// The answer's only candidate is 127.0.0.1:U, which in the client's namespace is its
// own loopback; the client has no route anywhere but 10.231.X.0/30. Its relayed
// candidate (coturn's 127.0.0.1, in the server's namespace) is the only one that can
// reach the server. This test process stays in the root namespace, which has no route
// to 10.231.X.0/30: it reads the server's endpoints through the page, and probes the
// network with `ip netns exec NS node`.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { countFrames, launchBrowser, metricValue, openPage, recordPeerConnections, selectedPair, startAndConnect, startServer, startTurn } from './harness.mjs';

const secret = crypto.randomBytes(18).toString('base64url');
const TTL = 600;

const SRV = `wrtc-srv-${process.pid}`;
const CLI = `wrtc-cli-${process.pid}`;
// Any private /30 does: the pair lives only between the two namespaces made here.
const X = process.pid % 256;
const SERVER_IP = `10.231.${X}.1`;
const CLIENT_IP = `10.231.${X}.2`;

function ip(...args) {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The network namespaces `ip netns` knows. */
function namespaces() {
  return ip('netns', 'list').split('\n').map((l) => l.split(' ')[0]).filter(Boolean);
}

/** Delete this run's namespaces (their veth ends go with them); idempotent. */
function deleteNamespaces() {
  for (const ns of [SRV, CLI]) {
    try { ip('netns', 'del', ns); } catch { /* not there */ }
  }
}

/** Namespaces a crashed earlier run left behind: `wrtc-srv-PID`/`wrtc-cli-PID` with PID dead. */
function deleteStaleNamespaces() {
  for (const ns of namespaces()) {
    const m = /^wrtc-(?:srv|cli)-(\d+)$/.exec(ns);
    if (!m || Number(m[1]) === process.pid) continue;
    let alive = true;
    try { process.kill(Number(m[1]), 0); } catch (e) { alive = e.code === 'EPERM'; }
    if (!alive) {
      try { ip('netns', 'del', ns); } catch { /* gone meanwhile */ }
    }
  }
}

let dir;
process.on('exit', () => {
  deleteNamespaces();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function makeTopology() {
  deleteStaleNamespaces();
  deleteNamespaces();
  ip('netns', 'add', SRV);
  ip('netns', 'add', CLI);
  ip('-n', SRV, 'link', 'set', 'lo', 'up');
  ip('-n', CLI, 'link', 'set', 'lo', 'up');
  // Made inside the server's namespace with its peer straight in the client's: the
  // root namespace never holds either end.
  ip('-n', SRV, 'link', 'add', 'veth-s', 'type', 'veth', 'peer', 'name', 'veth-c', 'netns', CLI);
  ip('-n', SRV, 'addr', 'add', `${SERVER_IP}/30`, 'dev', 'veth-s');
  ip('-n', CLI, 'addr', 'add', `${CLIENT_IP}/30`, 'dev', 'veth-c');
  ip('-n', SRV, 'link', 'set', 'veth-s', 'up');
  ip('-n', CLI, 'link', 'set', 'veth-c', 'up');
}

// Run in a namespace: for each probe, TCP connect (-> "connected" or the error code)
// or a STUN Binding request from a connected UDP socket (-> "reply", "silence", or
// the error code: ECONNREFUSED when an ICMP port unreachable says no socket is there).
const PROBE = `
const dgram = require('node:dgram');
const net = require('node:net');
const crypto = require('node:crypto');
const probes = JSON.parse(process.argv[1]);
const WAIT = 1500;
function tcp(host, port) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const t = setTimeout(() => { s.destroy(); resolve('timeout'); }, WAIT);
    s.once('connect', () => { clearTimeout(t); s.destroy(); resolve('connected'); });
    s.once('error', (e) => { clearTimeout(t); resolve(e.code); });
  });
}
function stun(host, port) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const req = Buffer.alloc(20);
    req.writeUInt16BE(0x0001, 0);
    req.writeUInt32BE(0x2112a442, 4);
    crypto.randomBytes(12).copy(req, 8);
    const done = (r) => { clearTimeout(t); try { s.close(); } catch {} resolve(r); };
    const t = setTimeout(() => done('silence'), WAIT);
    s.on('message', (m) => done(m.length >= 20 && m.subarray(8, 20).equals(req.subarray(8, 20)) ? 'reply' : 'other'));
    s.on('error', (e) => done(e.code));
    s.connect(port, host, () => s.send(req, (e) => { if (e) done(e.code); }));
  });
}
Promise.all(probes.map((p) => (p.proto === 'tcp' ? tcp : stun)(p.host, p.port)))
  .then((r) => process.stdout.write(JSON.stringify(r)));
`;

function probe(ns, probes) {
  const out = execFileSync('ip', ['netns', 'exec', ns, process.execPath, '-e', PROBE, JSON.stringify(probes)], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  return Object.fromEntries(JSON.parse(out).map((r, i) => [`${probes[i].proto} ${probes[i].host}:${probes[i].port}`, r]));
}

let turn;
let server;
let browser;
let mediaPort;
before(async () => {
  makeTopology();
  turn = await startTurn({ secret, listeningIp: SERVER_IP, relayIp: '127.0.0.1', netns: SRV });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wasmrtc-netns-'));
  const secretFile = path.join(dir, 'turn-secret');
  fs.writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
  server = await startServer('flip', [
    '--udp', '127.0.0.1:0',
    '--turn', turn.url,
    '--turn-secret-file', secretFile,
    '--turn-ttl', String(TTL),
  ], { listen: `${SERVER_IP}:0`, netns: SRV });
  const m = /WebRTC media on udp 127\.0\.0\.1:(\d+)\b/.exec(server.logs());
  assert.ok(m, `no media address in the log:\n${server.logs()}`);
  mediaPort = Number(m[1]);
  // http://10.231.X.1 is no secure context (only localhost is), where a page has no
  // navigator.mediaDevices: vouch for this one origin.
  browser = await launchBrowser({
    netns: CLI,
    args: [`--unsafely-treat-insecure-origin-as-secure=${new URL(server.url).origin}`],
  });
  // Every peer connection the page makes and the configuration it was given.
  await recordPeerConnections(browser);
});
after(async () => {
  await browser?.close();
  await server?.stop();
  await turn?.stop();
  deleteNamespaces();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** `GET path` from inside the page (this process cannot reach the server). */
async function pageFetch(page, url) {
  return page.evaluate(async (u) => {
    const r = await fetch(u, { cache: 'no-store' });
    return { status: r.status, cacheControl: r.headers.get('cache-control'), text: await r.text() };
  }, url);
}

/** `wasmrtc_ice_outcomes_total{outcome="relay"}` from /metrics, fetched by the page. */
async function relayOutcomes(page) {
  const r = await pageFetch(page, '/metrics');
  assert.equal(r.status, 200);
  return metricValue(r.text, 'wasmrtc_ice_outcomes_total{outcome="relay"}');
}

/** What the page's peer connection went through, for failure messages. */
async function whatIceSaw(page) {
  return JSON.stringify(await page.evaluate(async () => {
    const pc = window.wasmrtc?.pc ?? window.__pcs.at(-1);
    const stats = pc ? [...(await pc.getStats()).values()].filter((s) => /candidate/.test(s.type)) : [];
    return {
      secureContext: window.isSecureContext,
      hint: document.querySelector('[data-testid="hint"]')?.textContent,
      banner: document.querySelector('[data-testid="banner-text"]')?.textContent,
      configs: window.__pcConfigs,
      iceErrors: window.__iceErrors,
      states: pc && { ice: pc.iceConnectionState, connection: pc.connectionState, gathering: pc.iceGatheringState },
      local: pc?.localDescription?.sdp,
      remote: pc?.remoteDescription?.sdp,
      stats,
    };
  }).catch((e) => String(e)), null, 1);
}

test('netns: a client that can reach only the TURN server connects through it', async (t) => {
  const httpPort = Number(new URL(server.url).port);
  assert.equal(new URL(server.url).hostname, SERVER_IP, server.url);

  // 1. The topology. In the server's namespace the media socket is on 127.0.0.1 only,
  // and nothing listens on TCP at the media port (no ICE-TCP).
  const sockets = execFileSync('ip', ['netns', 'exec', SRV, 'ss', '-Hntuln'], { encoding: 'utf8' });
  const atMediaPort = sockets.split('\n').filter((l) => new RegExp(`:${mediaPort}\\s`).test(l));
  assert.equal(atMediaPort.length, 1, sockets);
  assert.match(atMediaPort[0], new RegExp(`^udp\\s.*\\s127\\.0\\.0\\.1:${mediaPort}\\s`), sockets);
  // The client's namespace: only its loopback and the veth, no route beyond the /30.
  const routes = ip('-n', CLI, '-4', 'route', 'show').trim();
  assert.equal(routes.split('\n').length, 1, routes);
  assert.match(routes, new RegExp(`^10\\.231\\.${X}\\.0/30 dev veth-c\\b`), routes);
  // From the client's namespace: the page and the TURN server answer (the same
  // probes do hear a reply), the media port does not, on either address.
  const seen = probe(CLI, [
    { proto: 'tcp', host: SERVER_IP, port: httpPort },
    { proto: 'udp', host: SERVER_IP, port: turn.port },
    { proto: 'udp', host: SERVER_IP, port: mediaPort },
    { proto: 'tcp', host: SERVER_IP, port: mediaPort },
    { proto: 'udp', host: '127.0.0.1', port: mediaPort },
    { proto: 'tcp', host: '127.0.0.1', port: mediaPort },
    { proto: 'tcp', host: '192.0.2.1', port: 80 },
  ]);
  t.diagnostic(`from ${CLI}: ${JSON.stringify(seen)}`);
  assert.deepEqual(seen, {
    [`tcp ${SERVER_IP}:${httpPort}`]: 'connected',
    [`udp ${SERVER_IP}:${turn.port}`]: 'reply',
    [`udp ${SERVER_IP}:${mediaPort}`]: 'ECONNREFUSED',
    [`tcp ${SERVER_IP}:${mediaPort}`]: 'ECONNREFUSED',
    [`udp 127.0.0.1:${mediaPort}`]: 'ECONNREFUSED',
    [`tcp 127.0.0.1:${mediaPort}`]: 'ECONNREFUSED',
    'tcp 192.0.2.1:80': 'ENETUNREACH',
  });
  // The same UDP probe inside the server's namespace is not refused: the socket is there.
  const inside = probe(SRV, [{ proto: 'udp', host: '127.0.0.1', port: mediaPort }]);
  t.diagnostic(`from ${SRV}: ${JSON.stringify(inside)}`);
  assert.ok(['reply', 'silence'].includes(inside[`udp 127.0.0.1:${mediaPort}`]), JSON.stringify(inside));

  // 2. Chromium, in the client's namespace, opens the page and plays the remote video.
  const page = await openPage(browser, server.url);
  const r = await pageFetch(page, '/rtc_configuration');
  assert.equal(r.status, 200);
  assert.match(r.cacheControl ?? '', /\bno-store\b/);
  assert.ok(!r.text.includes(secret), 'the TURN secret is in /rtc_configuration');
  const config = JSON.parse(r.text);
  assert.equal(config.iceTransportPolicy, undefined, r.text);
  assert.deepEqual(config.iceServers?.flatMap((s) => [s.urls].flat()), [turn.url], r.text);
  const relayedBefore = await relayOutcomes(page);
  assert.equal(relayedBefore, 0);

  await startAndConnect(page, 30_000).catch(async (e) => {
    throw new Error(`${e.message}\n${await whatIceSaw(page)}\ncoturn:\n${turn.logs()}\nwasmrtc:\n${server.logs()}`);
  });
  const remote = page.getByTestId('remote-video');
  await page.waitForFunction(() => document.querySelector('[data-testid="remote-video"]').videoWidth > 0, null, { timeout: 20_000 });
  const frames = await countFrames(page, 'remote-video', 2000);
  assert.ok(frames >= 10, `only ${frames} remote frames in 2 s`);
  assert.ok(await remote.evaluate((v) => !v.paused), 'the remote video is paused');

  // 3. The page's configuration was the server's, with no transport policy; the pair
  // ICE selected runs from Chromium's relayed candidate to the server's 127.0.0.1.
  const used = await page.evaluate(() => window.__pcConfigs.at(-1));
  assert.ok(used?.iceTransportPolicy === undefined || used.iceTransportPolicy === 'all', JSON.stringify(used));
  assert.deepEqual(used.iceServers?.flatMap((s) => [s.urls].flat()), [turn.url]);
  const { username, credential } = used.iceServers[0];
  assert.match(username, /^\d+:/);
  assert.equal(credential, crypto.createHmac('sha1', secret).update(username).digest('base64'));
  const expiry = Number(username.split(':')[0]);
  const now = Date.now() / 1000;
  assert.ok(expiry > now && expiry <= now + TTL + 60, `expiry ${expiry} is not about ${TTL} s after ${now}`);
  const pcPolicy = await page.evaluate(() => (window.wasmrtc?.pc ?? window.__pcs.at(-1)).getConfiguration().iceTransportPolicy);
  assert.equal(pcPolicy, 'all');

  const selected = await selectedPair(page);
  assert.equal(selected?.candidateType, 'relay', JSON.stringify(selected));
  assert.equal(selected.pairState, 'succeeded', JSON.stringify(selected));
  assert.equal(selected.remote, `127.0.0.1:${mediaPort}`, JSON.stringify(selected));
  assert.equal(selected.related.split(':')[0], CLIENT_IP, JSON.stringify(selected));
  // The server offered nothing else: one UDP host candidate, on its 127.0.0.1.
  const offered = await page.evaluate(async () => {
    const stats = await (window.wasmrtc?.pc ?? window.__pcs.at(-1)).getStats();
    return [...stats.values()].filter((s) => s.type === 'remote-candidate')
      .map((s) => `${s.candidateType} ${s.protocol} ${s.address}:${s.port}`);
  });
  assert.deepEqual([...new Set(offered)], [`host udp 127.0.0.1:${mediaPort}`]);

  // 4. The server counted it as relayed (it may count once ICE settles: allow it a moment).
  let relayed = await relayOutcomes(page);
  for (let i = 0; i < 50 && relayed < 1; i++) {
    await new Promise((r2) => setTimeout(r2, 200));
    relayed = await relayOutcomes(page);
  }
  assert.equal(relayed, 1, `wasmrtc_ice_outcomes_total{outcome="relay"} is ${relayed}`);

  // 5. coturn's own witness: an allocation for the page's username, and a permission
  // for a peer (the server's media address).
  const user = username.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const what of ['ALLOCATE', 'CREATE_PERMISSION']) {
    assert.match(turn.logs(), new RegExp(`user <${user}>: incoming packet ${what} processed, success`), turn.logs());
  }

  t.diagnostic(`${SRV} ${SERVER_IP} <-> ${CLI} ${CLIENT_IP}; media udp 127.0.0.1:${mediaPort}; ${frames} frames in 2 s; selected ${JSON.stringify(selected)}; relay outcomes ${relayedBefore} -> ${relayed}`);
  assert.deepEqual(page.errors, []);
  await page.getByTestId('start').click();
  await page.locator('[data-testid="state"][data-state="idle"]').waitFor();
  await page.close();
});
