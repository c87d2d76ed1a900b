// `wasmrtc dev`: the page follows rebuilds. A build error is shown over the page while
// the connection keeps running on the last good build; the fix clears it and the open
// connection moves to the new handler; a rebuild that changes the handler's inputs
// reloads an idle page, which then shows the new control.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { launchBrowser, newProject, openPage, screenshot, startAndConnect, startDev } from './harness.mjs';

let dir;
let server;
let browser;
before(async () => {
  dir = newProject('rust-audio', 'devpage');
  server = await startDev(dir);
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
  if (dir) fs.rmSync(path.dirname(dir), { recursive: true, force: true });
});

function edit(from, to) {
  const file = path.join(dir, 'src', 'lib.rs');
  const text = fs.readFileSync(file, 'utf8');
  assert.ok(text.includes(from), `src/lib.rs has no ${JSON.stringify(from)}`);
  fs.writeFileSync(file, text.replace(from, to));
}

const REBUILD_MS = 240_000;

test('dev: build errors show over the page, fixes and new inputs reach it', async () => {
  const page = await openPage(browser, server.url);
  await startAndConnect(page);

  edit('export_handler!(Gain);', 'export_handler!(Gain);\nfn broken( {}');
  const banner = page.locator('[data-testid="banner"][data-dev="build-failed"]');
  await banner.waitFor({ timeout: REBUILD_MS });
  const text = await page.getByTestId('banner-text').textContent();
  assert.match(text, /Build failed/);
  assert.match(text, /src\/lib\.rs:\d+/, `the compiler's file and line: ${text}`);
  await screenshot(page, 'dev-build-failed');
  assert.equal(await page.getByTestId('state').getAttribute('data-state'), 'connected', 'the call goes on');

  edit('\nfn broken( {}', '');
  await banner.waitFor({ state: 'hidden', timeout: REBUILD_MS });
  await page.getByTestId('toast-info').filter({ hasText: 'your connection now runs the new handler' }).waitFor({ timeout: 10_000 });
  assert.equal(await page.getByTestId('state').getAttribute('data-state'), 'connected');

  // Idle, then a new input: the page reloads itself and shows its control.
  await page.getByTestId('start').click();
  await page.locator('[data-testid="state"][data-state="idle"], [data-testid="state"][data-state="closed"]').first().waitFor({ timeout: 10_000 });
  edit('.input(InputSpec::slider("gain", "Gain", 0.0, 2.0, 0.01, 1.0))',
    '.input(InputSpec::slider("gain", "Gain", 0.0, 2.0, 0.01, 1.0))\n            .input(InputSpec::checkbox("mute", "Mute", false))');
  await page.getByTestId('input-mute').waitFor({ timeout: REBUILD_MS });
  assert.deepEqual(page.errors, []);
});
