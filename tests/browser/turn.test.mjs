// TURN: `flip` reached only through a real relay (Debian's coturn, TURN REST API
// credentials from `--turn-secret-file`), and an expired credential refused with the
// page saying why.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { countFrames, launchBrowser, metricValue, openPage, recordPeerConnections, selectedPair, startAndConnect, startServer, startTurn, turnCredential } from './harness.mjs';

const secret = crypto.randomBytes(18).toString('base64url');
const TTL = 600;

let turn;
let server;
let browser;
let dir;
before(async () => {
  turn = await startTurn({ secret });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wasmrtc-turn-secret-'));
  const secretFile = path.join(dir, 'turn-secret');
  fs.writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
  server = await startServer('flip', [
    '--turn', turn.url,
    '--turn-secret-file', secretFile,
    '--turn-ttl', String(TTL),
    '--ice-transport-policy', 'relay',
  ]);
  browser = await launchBrowser();
  // Every peer connection the page makes, the configuration it was given, its ICE
  // candidate errors and its connection states, for the assertions below.
  await recordPeerConnections(browser);
});
after(async () => {
  await browser?.close();
  await server?.stop();
  await turn?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** `wasmrtc_ice_outcomes_total{outcome="relay"}` from /metrics. */
async function relayOutcomes() {
  const r = await fetch(`${server.url}metrics`);
  assert.equal(r.status, 200);
  return metricValue(await r.text(), 'wasmrtc_ice_outcomes_total{outcome="relay"}');
}

test('relay: Chromium reaches flip only through coturn', async (t) => {
  // The configuration the page is given: a short-lived credential, never the secret.
  const r = await fetch(`${server.url}rtc_configuration`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('cache-control') ?? '', /\bno-store\b/);
  const text = await r.text();
  assert.ok(!text.includes(secret), 'the TURN secret is in /rtc_configuration');
  const config = JSON.parse(text);
  assert.equal(config.iceTransportPolicy, 'relay');
  assert.equal(config.iceServers?.length, 1, text);
  const [ice] = config.iceServers;
  assert.deepEqual([ice.urls].flat(), [turn.url]);
  assert.match(ice.username, /^\d+:/);
  assert.match(ice.credential, /^[A-Za-z0-9+/]+={0,2}$/);
  const expiry = Number(ice.username.split(':')[0]);
  const now = Date.now() / 1000;
  assert.ok(expiry > now && expiry <= now + TTL + 60, `expiry ${expiry} is not about ${TTL} s after ${now}`);
  assert.equal(ice.credential, crypto.createHmac('sha1', secret).update(ice.username).digest('base64'));

  const relayedBefore = await relayOutcomes();

  const page = await openPage(browser, server.url);
  await startAndConnect(page, 30_000);
  const remote = page.getByTestId('remote-video');
  await page.waitForFunction(() => document.querySelector('[data-testid="remote-video"]').videoWidth > 0, null, { timeout: 20_000 });
  const frames = await countFrames(page, 'remote-video', 2000);
  assert.ok(frames >= 10, `only ${frames} remote frames in 2 s`);
  assert.ok(await remote.evaluate((v) => !v.paused), 'the remote video is paused');

  // The page used the server's configuration.
  const used = await page.evaluate(() => window.__pcConfigs.at(-1));
  assert.equal(used?.iceTransportPolicy, 'relay', JSON.stringify(used));
  assert.deepEqual(used.iceServers?.flatMap((s) => [s.urls].flat()), [turn.url]);
  const username = used.iceServers[0].username;
  assert.match(username, /^\d+:/);

  // ICE chose a relayed pair.
  const selected = await selectedPair(page);
  assert.equal(selected?.candidateType, 'relay', JSON.stringify(selected));
  assert.equal(selected.pairState, 'succeeded', JSON.stringify(selected));

  // The server counted it as relayed (it may count once ICE settles: allow it a moment).
  let relayed = await relayOutcomes();
  for (let i = 0; i < 50 && relayed < relayedBefore + 1; i++) {
    await new Promise((r2) => setTimeout(r2, 200));
    relayed = await relayOutcomes();
  }
  assert.ok(relayed >= relayedBefore + 1, `wasmrtc_ice_outcomes_total{outcome="relay"} is ${relayed} (was ${relayedBefore})`);

  // coturn's own witness: an allocation for the page's username, and a permission
  // for a peer (the server's media address).
  const user = username.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const what of ['ALLOCATE', 'CREATE_PERMISSION']) {
    assert.match(turn.logs(), new RegExp(`user <${user}>: incoming packet ${what} processed, success`), turn.logs());
  }

  t.diagnostic(`${frames} frames in 2 s; selected ${JSON.stringify(selected)}; relay outcomes ${relayedBefore} -> ${relayed}`);
  assert.deepEqual(page.errors, []);
  await page.getByTestId('start').click();
  await page.locator('[data-testid="state"][data-state="idle"]').waitFor();
  await page.close();
});

test('an expired TURN credential is refused and the page says why', async (t) => {
  const expired = turnCredential(secret, -3600);
  let served = 0;
  const page = await openPage(browser, server.url, {
    beforeLoad: (p) => p.route('**/rtc_configuration', (route) => {
      served += 1;
      return route.fulfill({
        status: 200,
        contentType: 'application/json',
        headers: { 'Cache-Control': 'no-store' },
        body: JSON.stringify({ iceServers: [{ urls: [turn.url], ...expired }], iceTransportPolicy: 'relay' }),
      });
    }),
  });
  await page.getByTestId('start').click();
  const said = await page.waitForFunction(() => {
    const text = ['hint', 'banner-text']
      .map((id) => document.querySelector(`[data-testid="${id}"]`)?.textContent ?? '')
      .join(' | ');
    return /refused the credentials/.test(text) ? text : false;
  }, null, { timeout: 25_000 }).catch(async (e) => {
    const seen = await page.evaluate(() => ({
      hint: document.querySelector('[data-testid="hint"]')?.textContent,
      banner: document.querySelector('[data-testid="banner-text"]')?.textContent,
      iceErrors: window.__iceErrors,
      configs: window.__pcConfigs,
    }));
    throw new Error(`${e.message}\nthe page showed ${JSON.stringify(seen)}`);
  });
  const message = await said.jsonValue();
  assert.ok(served >= 1, 'the page did not fetch rtc_configuration');

  // Chromium saw coturn's 401 for this server, and coturn refused this username.
  const errors = await page.evaluate(() => window.__iceErrors);
  assert.ok(errors.some((e) => e.errorCode === 401 && e.url === turn.url), JSON.stringify(errors));
  const user = expired.username.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  assert.match(turn.logs(), new RegExp(`user <${user}>: incoming packet \\S+ processed, error 401`), turn.logs());
  assert.doesNotMatch(turn.logs(), new RegExp(`user <${user}>: incoming packet ALLOCATE processed, success`));

  // Nothing could play: the offer had no relayed candidate, and none other was allowed.
  const sdp = await page.evaluate(() => window.__pcs.at(-1)?.localDescription?.sdp ?? null);
  if (sdp !== null) assert.doesNotMatch(sdp, /typ relay/);
  const states = await page.evaluate(() => window.__pcStates);
  assert.ok(!states.includes('connected'), `the peer connection went through ${states.join(', ')}`);
  assert.equal(await page.getByTestId('remote-video').evaluate((v) => v.videoWidth), 0);
  assert.notEqual(await page.getByTestId('state').getAttribute('data-state'), 'connected');

  t.diagnostic(`page: ${JSON.stringify(message)}; Chromium: ${JSON.stringify(errors)}; states: ${states.join(', ')}`);
  await page.close();
});
