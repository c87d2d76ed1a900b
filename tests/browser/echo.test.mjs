// `echo` (audio send-receive): the microphone comes back, with a level the page shows.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { audioPower, inboundAudio, launchBrowser, openPage, screenshot, startAndConnect, startServer } from './harness.mjs';

let server;
let browser;
before(async () => {
  server = await startServer('echo');
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('echo: audio packets come back with a non-zero level', async () => {
  const page = await openPage(browser, server.url);
  assert.equal(await page.getByTestId('stream-name').textContent(), 'echo');
  // Audio only: no video panels.
  assert.equal(await page.getByTestId('remote-video').isVisible(), false);
  await startAndConnect(page);

  await page.waitForFunction(async () => {
    const stats = await window.wasmrtc.pc?.getStats();
    for (const s of stats?.values() ?? []) if (s.type === 'inbound-rtp' && s.kind === 'audio') return s.packetsReceived > 50;
    return false;
  }, null, { timeout: 15_000, polling: 250 });
  const heard = await audioPower(page, 2000);
  assert.ok(heard.packets > 50, `only ${heard.packets} audio packets in 2 s`);
  assert.ok(heard.power > 1e-6, `the echoed audio is silent: ${JSON.stringify(heard)}`);
  const stats = await inboundAudio(page);
  assert.ok(stats.totalAudioEnergy > 0, JSON.stringify(stats));

  // The page's meters move: the microphone's and the handler's.
  await page.waitForFunction(() => Number(document.querySelector('[data-testid="meter-remote"]').dataset.level) > 0.001, null, { timeout: 10_000 });
  await page.waitForFunction(() => Number(document.querySelector('[data-testid="meter-local"]').dataset.level) > 0.001, null, { timeout: 10_000 });

  await screenshot(page, 'echo');
  assert.deepEqual(page.errors, []);
});
