// The live fleet view on the internal port, in headless Chromium, on a real two-node fleet:
// the numbers on the page match each node's /cluster, the charts draw (checked on a screenshot),
// and a Redis hot-plug and a drain show up as recent changes.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, waitFor } from '../helpers/server.mjs';
import { internalUrl, startRedis } from '../helpers/fleet.mjs';

const { WebSocketConnector } = await import(new URL('../../dist/index.mjs', import.meta.url).href);

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const buildDir = new URL('../../build/', import.meta.url);
const T = { timeout: 120000 };

let redis;
let redis2;
let configDir;
let nodeA;
let nodeB;
let browser;
const clients = [];
let traffic;

const fleetEnv = (name) => ({ WSFLEET_CONFIG_DIR: configDir, WSFLEET_CONFIG_POLL_INTERVAL: '0.2', WSFLEET_SERVER_NAME: name, WSFLEET_DRAIN_TIMEOUT: '3' });

before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is missing at ${CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM_PATH.`);
  redis = await startRedis();
  redis2 = await startRedis();
  configDir = mkdtempSync(join(tmpdir(), 'wsfleet-view-config-'));
  writeFileSync(join(configDir, 'redis'), redis.address + '\n');
  nodeA = await startServer({ env: fleetEnv('view-a') });
  nodeB = await startServer({ env: fleetEnv('view-b') });
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  clearInterval(traffic);
  for (const c of clients) c.manualClose();
  if (browser) await browser.close();
  for (const node of [nodeA, nodeB]) if (node) await node.stop();
  for (const r of [redis, redis2]) if (r) await r.stop();
  if (configDir) rmSync(configDir, { recursive: true, force: true });
});

async function client(node, id, room) {
  const c = new WebSocketConnector({ url: node.ws, customParams: { id, name: id }, fastReconnectInterval: 200 });
  clients.push(c);
  await waitFor(c, 'open');
  const joined = await c.emitWithPromise('join', { room });
  assert.equal(joined.success, true);
  return c;
}

async function cluster(node) {
  const r = await fetch(internalUrl(node) + '/cluster');
  return r.json();
}

/** The text of one cell of a node's row. */
const cell = (page, node, field) => page.locator(`[data-testid="node-row"][data-node="${node}"] [data-field="${field}"]`);

/** How many pixels of the element's screenshot are close to `rgb` (read back in the page's canvas). */
async function pixelsOfColor(page, locator, rgb) {
  const png = (await locator.screenshot()).toString('base64');
  return page.evaluate(
    async ({ png, rgb }) => {
      const img = new Image();
      img.src = 'data:image/png;base64,' + png;
      await img.decode();
      const canvas = document.createElement('canvas');
      canvas.width = img.width;
      canvas.height = img.height;
      const ctx = canvas.getContext('2d');
      ctx.drawImage(img, 0, 0);
      const data = ctx.getImageData(0, 0, img.width, img.height).data;
      let n = 0;
      for (let i = 0; i < data.length; i += 4) {
        if (Math.abs(data[i] - rgb[0]) < 40 && Math.abs(data[i + 1] - rgb[1]) < 40 && Math.abs(data[i + 2] - rgb[2]) < 40) n++;
      }
      return n;
    },
    { png, rgb },
  );
}

it('shows the fleet as /cluster sees it, draws live charts, and lists hot-plugs and drains', T, async () => {
  await client(nodeA, 'a1', 'r1');
  await client(nodeA, 'a2', 'r1');
  await client(nodeA, 'a3', 'r3');
  await client(nodeB, 'b1', 'r2');
  await client(nodeB, 'b2', 'r1');
  // Steady traffic, so that the message-rate chart has something to draw.
  traffic = setInterval(() => clients.forEach((c) => c.readyState === 1 && c.emit('echo', { t: Date.now() })), 100);

  const context = await browser.newContext({ viewport: { width: 1200, height: 1000 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(internalUrl(nodeA) + '/?interval=500');
  await page.locator('[data-testid="status"][data-state="live"]').waitFor({ timeout: 10000 });
  assert.equal(await page.getByTestId('self').textContent(), 'view-a');

  // Per-node numbers match each node's own /cluster.
  await cell(page, 'view-b', 'connections').filter({ hasText: /^2$/ }).waitFor({ timeout: 15000 });
  await cell(page, 'view-a', 'connections').filter({ hasText: /^3$/ }).waitFor({ timeout: 15000 });
  for (const [node, name] of [[nodeA, 'view-a'], [nodeB, 'view-b']]) {
    const c = await cluster(node);
    assert.equal(await cell(page, name, 'connections').textContent(), String(c.connections), name);
    assert.equal(await cell(page, name, 'sockets').textContent(), String(c.sockets), name);
    assert.equal(await cell(page, name, 'rooms').textContent(), String(c.rooms), name);
    assert.equal(await cell(page, name, 'members').textContent(), String(c.roomMembers), name);
    assert.equal(await cell(page, name, 'health').textContent(), 'ready', name);
  }
  assert.equal(await cell(page, 'view-a', 'rooms').textContent(), '2'); // r1, r3
  assert.equal(await cell(page, 'view-b', 'rooms').textContent(), '2'); // r2, r1
  assert.equal(await page.getByTestId('summary-connections').textContent(), '5');
  assert.equal(await page.getByTestId('summary-nodes').textContent(), '2 / 2');
  // The demo's join asks every node for the room's members: each of the 5 joins is one call,
  // counted by outcome (complete, or timed out on a very busy machine).
  let calls = 0;
  for (const name of ['view-a', 'view-b']) {
    for (const field of ['rpc-complete', 'rpc-timeout', 'rpc-failed']) calls += Number(await cell(page, name, field).textContent());
  }
  assert.equal(calls, 5);

  const redisRow = page.locator(`[data-testid="redis-row"][data-redis="${redis.address}/0"]`);
  assert.equal(await redisRow.locator('[data-field="state"]').textContent(), 'up');
  assert.equal(await redisRow.locator('[data-field="up"]').textContent(), '2 / 2 nodes');

  // Live charts: rates need two polls; then the lines are drawn in their colours.
  await page.waitForFunction(() => Number(document.querySelector('[data-testid="summary-in"]').textContent.replace(/,/g, '')) > 10, null, { timeout: 15000 });
  await page.waitForFunction(() => document.querySelectorAll('#chart-messages polyline[data-series="in"]')[0]?.getAttribute('points').split(' ').length >= 3, null, { timeout: 15000 });
  assert.ok((await pixelsOfColor(page, page.getByTestId('chart-messages'), [47, 111, 237])) > 30, 'the "in" line is drawn');
  assert.ok((await pixelsOfColor(page, page.getByTestId('chart-connections'), [47, 111, 237])) + (await pixelsOfColor(page, page.getByTestId('chart-connections'), [31, 157, 85])) > 30, 'connections per node are drawn');

  // Hot-plug: a second Redis node in the watched list appears on both nodes, and as a change.
  writeFileSync(join(configDir, 'redis'), `${redis.address}\n${redis2.address}\n`);
  await page.locator(`[data-testid="event"][data-kind="redis-added"][data-subject="redis://${redis2.address}/0"]`).waitFor({ timeout: 20000 });
  await page.locator(`[data-testid="redis-row"][data-redis="${redis2.address}/0"] [data-field="up"]`).filter({ hasText: '2 / 2 nodes' }).waitFor({ timeout: 20000 });

  // A drain of node B: shown while it lasts, and remembered once B has left.
  await nodeB.stop('SIGTERM', 15000);
  await page.locator('[data-testid="event"][data-kind="drain"][data-subject="view-b"]').waitFor({ timeout: 20000 });
  await page.locator('[data-testid="event"][data-kind="node-left"][data-subject="view-b"]').waitFor({ timeout: 20000 });
  await page.locator('[data-testid="node-row"][data-node="view-b"]').waitFor({ state: 'detached', timeout: 20000 });
  assert.equal(await page.getByTestId('summary-nodes').textContent(), '1 / 1');

  mkdirSync(buildDir, { recursive: true });
  await page.screenshot({ path: new URL('fleet-view.png', buildDir).pathname, fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});
