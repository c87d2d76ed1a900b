// When the browser denies the camera or microphone, the page says so clearly.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, openPage, screenshot, startServer } from './harness.mjs';

let server;
let browser;
before(async () => {
  server = await startServer('av-echo');
  // Without the fake permission UI, Chromium denies the request.
  browser = await launchBrowser({ fakeUi: false });
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('denied devices: a clear message, no connection attempt', async () => {
  const page = await openPage(browser, server.url);
  let offers = 0;
  page.on('request', (r) => { if (r.url().endsWith('/webrtc/offer')) offers += 1; });
  assert.match(await page.getByTestId('hint').textContent(), /camera and microphone/);
  await page.getByTestId('start').click();
  await page.getByTestId('banner').waitFor({ timeout: 10_000 });
  assert.match(await page.getByTestId('banner-text').textContent(), /Access to your camera and microphone was denied/);
  assert.equal(await page.getByTestId('state').getAttribute('data-state'), 'idle');
  assert.equal(offers, 0);
  await screenshot(page, 'devices-denied');
  // The start button is a real, focusable button.
  await page.getByTestId('start').focus();
  assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), 'start');
});
