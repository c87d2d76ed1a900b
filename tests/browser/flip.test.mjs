// `flip` (video send-receive): the remote video plays and is the camera's picture upside down.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { averageOf, bands, countFrames, launchBrowser, openPage, screenshot, startAndConnect, startServer } from './harness.mjs';

let server;
let browser;
before(async () => {
  server = await startServer('flip');
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('flip: the remote video plays and is the local picture flipped', async (t) => {
  const page = await openPage(browser, server.url);
  assert.equal(await page.getByTestId('stream-name').textContent(), 'flip');
  await startAndConnect(page);
  const remote = page.getByTestId('remote-video');
  await page.waitForFunction(() => document.querySelector('[data-testid="remote-video"]').videoWidth > 0, null, { timeout: 20_000 });

  const frames = await countFrames(page, 'remote-video', 2000);
  assert.ok(frames >= 10, `only ${frames} remote frames in 2 s`);
  assert.ok(await remote.evaluate((v) => !v.paused), 'the remote video is paused');

  // Chromium's fake camera writes its clock in the top band: the top is brighter than
  // the bottom in the camera's picture, and the other way round in the handler's.
  const local = await averageOf(5, 150, () => bands(page, 'local-video'));
  const flipped = await averageOf(5, 150, () => bands(page, 'remote-video'));
  const msg = `${frames} frames in 2 s; local ${JSON.stringify(local)} remote ${JSON.stringify(flipped)}`;
  assert.ok(local.top - local.bottom > 4, `the fake camera's top band is not brighter: ${msg}`);
  assert.ok(flipped.bottom - flipped.top > 4, `the remote picture is not flipped: ${msg}`);
  assert.ok(Math.abs((flipped.bottom - flipped.top) - (local.top - local.bottom)) < 0.6 * (local.top - local.bottom) + 4, msg);

  t.diagnostic(msg);
  await screenshot(page, 'flip');
  assert.deepEqual(page.errors, []);
  await page.getByTestId('start').click();
  await page.locator('[data-testid="state"][data-state="idle"]').waitFor();
});
