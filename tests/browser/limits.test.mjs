// Past `--concurrency-limit`, a second tab is told to come back later; after the first
// leaves, the slot is free again.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, openPage, screenshot, startAndConnect, startServer } from './harness.mjs';

const LIMIT_MESSAGE = 'Too many concurrent connections. Please try again later!';
let server;
let browser;
before(async () => {
  server = await startServer('tone', ['--concurrency-limit', '1']);
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('a second tab past the concurrency limit shows the limit message', async (t) => {
  const first = await openPage(browser, server.url);
  await startAndConnect(first);

  const second = await openPage(browser, server.url);
  assert.match(await second.getByTestId('about').textContent(), /At most 1 at once/);
  await second.getByTestId('start').click();
  await second.getByTestId('banner').waitFor({ timeout: 10_000 });
  assert.equal(await second.getByTestId('banner-text').textContent(), LIMIT_MESSAGE);
  assert.equal(await second.getByTestId('state').getAttribute('data-state'), 'idle');
  assert.equal((await second.getByTestId('start').textContent()).trim(), 'Start');
  await screenshot(second, 'concurrency-limit');

  // The first tab leaves; the second gets in.
  await first.bringToFront();
  await first.getByTestId('start').click();
  await first.locator('[data-testid="state"][data-state="idle"]').waitFor();
  await second.bringToFront();
  const left = Date.now();
  const deadline = left + 15_000;
  let attempts = 0;
  for (;;) {
    attempts += 1;
    await second.getByTestId('start').click();
    const outcome = await second.waitForFunction(() => {
      if (document.querySelector('[data-testid="state"]').dataset.state === 'connected') return 'connected';
      return !document.querySelector('[data-testid="banner"]').hidden && 'refused';
    }, null, { timeout: 10_000 }).then((h) => h.jsonValue());
    if (outcome === 'connected') break;
    assert.ok(Date.now() < deadline, 'the first connection\'s slot was not released within 15 s');
    await second.getByTestId('banner-close').click();
    await second.waitForTimeout(500);
  }
  t.diagnostic(`the second tab got in ${Date.now() - left} ms after the first left (${attempts} attempt(s))`);
  assert.equal(await second.getByTestId('banner').isVisible(), false);
  assert.deepEqual(first.errors, []);
  assert.deepEqual(second.errors, []);
});
