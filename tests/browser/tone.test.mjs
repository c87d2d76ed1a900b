// `tone` (audio receive): plays with no microphone; the time limit counts down and ends it.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { audioPower, launchBrowser, openPage, screenshot, startAndConnect, startServer } from './harness.mjs';

const TIME_LIMIT = 6;
let server;
let browser;
before(async () => {
  server = await startServer('tone', ['--time-limit', String(TIME_LIMIT)]);
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('tone: plays without asking for a microphone, then the time limit ends it', async () => {
  const page = await openPage(browser, server.url);
  await page.evaluate(() => {
    window.gumCalls = 0;
    const gum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    navigator.mediaDevices.getUserMedia = (c) => { window.gumCalls += 1; return gum(c); };
  });
  assert.equal(await page.getByTestId('meter-local').isVisible(), false);
  // Both inputs are generated from the spec: a number box and a slider.
  assert.equal(await page.getByTestId('input-frequency').getAttribute('type'), 'number');
  assert.equal(await page.getByTestId('input-volume').getAttribute('type'), 'range');

  const started = Date.now();
  await startAndConnect(page);
  assert.equal(await page.evaluate(() => window.gumCalls), 0, 'the page asked for a device');
  const sdp = await page.evaluate(() => window.wasmrtc.pc.localDescription.sdp);
  assert.match(sdp, /a=recvonly/);
  assert.doesNotMatch(sdp, /a=sendrecv/);

  await page.getByTestId('countdown').waitFor();
  assert.match(await page.getByTestId('countdown-text').textContent(), /^0:0\d left$/);

  await page.waitForTimeout(1000);
  const heard = await audioPower(page, 1500);
  assert.ok(heard.packets > 40 && heard.power > 1e-4, `no tone: ${JSON.stringify(heard)}`);
  await page.waitForFunction(() => Number(document.querySelector('[data-testid="meter-remote"]').dataset.level) > 0.01, null, { timeout: 5_000 });

  // A different frequency, typed in the number box, is accepted.
  await page.getByTestId('input-frequency').fill('880');
  await page.getByTestId('input-frequency').press('Enter');
  await page.getByTestId('input-frequency').blur();
  assert.equal(await page.getByTestId('input-frequency').getAttribute('aria-invalid'), null);
  await screenshot(page, 'tone');

  // The server warns before the deadline, then ends the stream.
  await page.getByTestId('toast-warning').waitFor({ timeout: (TIME_LIMIT + 2) * 1000 });
  await page.locator('[data-testid="state"][data-state="idle"]').waitFor({ timeout: (TIME_LIMIT + 5) * 1000 });
  const lasted = (Date.now() - started) / 1000;
  assert.ok(lasted >= TIME_LIMIT - 0.5 && lasted < TIME_LIMIT + 6, `the stream lasted ${lasted} s`);
  assert.match(await page.getByTestId('hint').textContent(), /time limit/i);
  assert.equal((await page.getByTestId('start').textContent()).trim(), 'Start');
  assert.deepEqual(page.errors, []);
});
