// `gain` (audio send-receive with a slider): moving the slider changes what comes back.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { audioPower, launchBrowser, openPage, screenshot, startAndConnect, startServer } from './harness.mjs';

let server;
let browser;
before(async () => {
  server = await startServer('gain');
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('gain: the slider is generated from the spec and changes the level heard', async () => {
  const page = await openPage(browser, server.url);
  const slider = page.getByTestId('input-gain');
  assert.equal(await slider.getAttribute('type'), 'range');
  assert.equal(await slider.getAttribute('min'), '0');
  assert.equal(await slider.getAttribute('max'), '2');
  assert.equal(await slider.inputValue(), '1');
  assert.equal(await page.getByLabel('Gain').getAttribute('data-testid'), 'input-gain');

  await startAndConnect(page);
  await page.waitForFunction(async () => {
    const stats = await window.wasmrtc.pc?.getStats();
    for (const s of stats?.values() ?? []) if (s.type === 'inbound-rtp' && s.kind === 'audio') return s.totalSamplesDuration > 1;
    return false;
  }, null, { timeout: 15_000, polling: 250 });
  const loud = await audioPower(page, 3000);

  // Down to 0.1 with the keyboard-free path a user takes: drag = input events + change.
  await slider.fill('0.1');
  assert.equal(await page.getByTestId('value-gain').textContent(), '0.10');
  await page.waitForTimeout(1500); // the handler keeps up to 1 s of audio queued
  const quiet = await audioPower(page, 3000);
  const msg = `gain 1: ${JSON.stringify(loud)}, gain 0.1: ${JSON.stringify(quiet)}`;
  assert.ok(loud.power > 1e-6, `no audio at gain 1: ${msg}`);
  assert.ok(quiet.power < loud.power / 10, `gain 0.1 is not much quieter: ${msg}`);

  // And back up with the keyboard.
  await slider.focus();
  await page.keyboard.press('End');
  assert.equal(await page.getByTestId('value-gain').textContent(), '2.00');
  await page.waitForTimeout(1500);
  const louder = await audioPower(page, 3000);
  assert.ok(louder.power > quiet.power * 10, `gain 2 is not louder than 0.1: ${msg}, gain 2: ${JSON.stringify(louder)}`);

  await screenshot(page, 'gain');
  assert.deepEqual(page.errors, []);
});
