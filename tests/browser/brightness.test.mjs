// `brightness` (video send, outputs only): the handler's outputs appear on the page live.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, openPage, screenshot, startAndConnect, startServer } from './harness.mjs';

let server;
let browser;
before(async () => {
  server = await startServer('brightness');
  browser = await launchBrowser({ colorScheme: 'dark' });
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('brightness: outputs are shown by label and keep updating', async () => {
  const page = await openPage(browser, server.url);
  const output = page.getByTestId('output-brightness');
  await output.getByText('Mean brightness (0-255)').waitFor();
  // Send mode: the camera is shown, there is no remote video.
  assert.equal(await page.getByTestId('remote-video').isVisible(), false);

  await startAndConnect(page);
  assert.equal(await page.getByTestId('local-video').isVisible(), true);
  const value = page.getByTestId('output-value-brightness');
  await page.waitForFunction(() => !document.querySelector('[data-testid="output-value-brightness"]').classList.contains('empty'), null, { timeout: 15_000 });
  const first = Number(await value.textContent());
  assert.ok(first > 0 && first < 255, `brightness ${JSON.stringify(first)} is not a mean luma`);
  // The handler emits up to 4 values a second; the page shows each as it comes.
  const stamp = await value.getAttribute('data-updated');
  await page.waitForFunction((s) => document.querySelector('[data-testid="output-value-brightness"]').dataset.updated !== s, stamp, { timeout: 5_000 });
  const second = Number(await value.textContent());
  assert.ok(second > 0 && second < 255, `brightness ${JSON.stringify(second)} is not a mean luma`);

  await screenshot(page, 'brightness-dark');
  assert.deepEqual(page.errors, []);
});
