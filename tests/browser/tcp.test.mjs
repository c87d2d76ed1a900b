// ICE-TCP: a client that cannot reach the media port over UDP connects over TCP.
//
// The server listens on 127.0.0.1:P (HTTP, UDP media and ICE-TCP on one port) and
// advertises 127.0.0.2: UDP sent to 127.0.0.2:P reaches no socket, and a relay on
// 127.0.0.2:P forwards TCP only, as a network that blocks UDP would leave it.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { countFrames, launchBrowser, metricValue, openPage, selectedPair, startAndConnect, startServer } from './harness.mjs';

let server;
let browser;
let relay;
const relayed = { connections: 0, bytes: 0 };
before(async () => {
  server = await startServer('flip', ['--advertise', '127.0.0.2']);
  const port = Number(new URL(server.url).port);
  relay = net.createServer((client) => {
    relayed.connections += 1;
    const upstream = net.connect(port, '127.0.0.1');
    client.on('data', (d) => { relayed.bytes += d.length; });
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise((resolve, reject) => {
    relay.once('error', reject);
    relay.listen(port, '127.0.0.2', resolve);
  });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
  relay?.close();
});

async function metric(name) {
  return metricValue(await (await fetch(`${server.url}metrics`)).text(), name);
}

test('tcp: with UDP unreachable, flip plays over ICE-TCP on the media port', async (t) => {
  const before = await metric('wasmrtc_ice_tcp_connections_total');
  const page = await openPage(browser, server.url);
  await startAndConnect(page);
  await page.waitForFunction(() => document.querySelector('[data-testid="remote-video"]').videoWidth > 0, null, { timeout: 20_000 });
  const frames = await countFrames(page, 'remote-video', 2000);
  assert.ok(frames >= 10, `only ${frames} remote frames in 2 s`);

  // The pair ICE selected runs over TCP to the server's passive candidate.
  const selected = await selectedPair(page);
  assert.deepEqual(
    selected && { state: selected.pairState, local: selected.protocol, remote: selected.remoteProtocol, tcpType: selected.remoteTcpType },
    { state: 'succeeded', local: 'tcp', remote: 'tcp', tcpType: 'passive' },
    JSON.stringify(selected),
  );
  assert.equal(selected.remoteAddress, '127.0.0.2');
  assert.ok(relayed.connections >= 1 && relayed.bytes > 10_000, `the TCP relay carried ${JSON.stringify(relayed)}`);

  let after = await metric('wasmrtc_ice_tcp_connections_total');
  for (let i = 0; i < 50 && after < before + 1; i++) {
    await new Promise((r) => setTimeout(r, 200));
    after = await metric('wasmrtc_ice_tcp_connections_total');
  }
  assert.ok(after >= before + 1, `wasmrtc_ice_tcp_connections_total went ${before} -> ${after}`);

  // The page itself still loads over the same port (HTTP and ICE-TCP share it).
  assert.equal((await fetch(`${server.url}spec`)).status, 200);
  t.diagnostic(`${frames} frames in 2 s over ${JSON.stringify(selected)}; relay ${JSON.stringify(relayed)}`);
  assert.deepEqual(page.errors, []);
  await page.getByTestId('start').click();
  await page.locator('[data-testid="state"][data-state="idle"]').waitFor();
  await page.close();
});
