// The demo page on a two-node fleet (two `wsfleet serve` processes sharing a real redis-server),
// in headless Chromium: Alice on node A, Bob on node B. Presence is counted fleet-wide and shown
// by name; a node restart shows "connection dropped" then "connection recovered".
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { startServer } from '../helpers/server.mjs';
import { startRedis } from '../helpers/fleet.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const buildDir = new URL('../../build/', import.meta.url);
const clientBuild = readFileSync(new URL('../../dist/wsfleet-client.min.js', import.meta.url), 'utf8');
const T = { timeout: 90000 };

let redis;
let nodeA;
let nodeB;
let browser;

const fleetEnv = (name) => ({ WSFLEET_REDIS: redis.address, WSFLEET_SERVER_NAME: name, WSFLEET_DRAIN_TIMEOUT: '1' });

before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is missing at ${CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM_PATH.`);
  redis = await startRedis();
  nodeA = await startServer({ env: fleetEnv('demo-a') });
  nodeB = await startServer({ env: fleetEnv('demo-b') });
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (browser) await browser.close();
  for (const node of [nodeA, nodeB]) if (node) await node.stop();
  if (redis) await redis.stop();
});

async function openDemo(node, size = { width: 820, height: 560 }) {
  const context = await browser.newContext({ viewport: size });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.route('**/wsfleet-client.js', (route) => route.fulfill({ contentType: 'text/javascript', body: clientBuild }));
  await page.goto(node.http + '/');
  return { page, context, errors };
}

async function joinAs(page, name, room) {
  await page.getByTestId('name-input').fill(name);
  await page.getByTestId('room-input').fill(room);
  await page.getByTestId('join-button').click();
  await page.getByTestId('room-title').filter({ hasText: '#' + room }).waitFor({ timeout: 10000 });
}

it('presence spans the fleet, by name; a node restart is shown as dropped, then recovered', T, async () => {
  const alice = await openDemo(nodeA);
  const bob = await openDemo(nodeB);
  const pa = alice.page;
  const pb = bob.page;

  await joinAs(pa, 'Alice', 'garden');
  await pa.getByTestId('message-list').getByText('you joined #garden, nobody else is here yet').waitFor({ timeout: 10000 });
  assert.equal(await pa.getByTestId('presence').textContent(), 'only you');

  await joinAs(pb, 'Bob', 'garden');
  // Bob's node asks every node for the room's members: Alice is on the other node.
  await pb.getByTestId('message-list').getByText('you joined #garden with Alice').waitFor({ timeout: 10000 });
  await pb.locator('[data-testid="presence"][data-count="2"]').waitFor({ timeout: 10000 });
  assert.equal(await pb.getByTestId('presence').textContent(), '2 here');
  await pa.getByTestId('message-list').getByText('Bob joined #garden').waitFor({ timeout: 10000 });
  assert.equal(await pa.getByTestId('presence').textContent(), '2 here');
  assert.match(await pb.getByTestId('status').textContent(), /^connected as Bob$/);
  assert.equal(await pb.getByTestId('whoami').textContent(), 'you are Bob');

  await pb.getByTestId('message-input').fill('Hello from the other node, with a long line that has to wrap inside the panel without pushing the time or the name');
  await pb.getByTestId('send-button').click();
  await pa.getByTestId('message-list').locator('li.msg', { hasText: 'Hello from the other node' }).waitFor({ timeout: 10000 });

  // Node B restarts: Bob's page says the connection dropped, Alice sees Bob leave, then Bob is back.
  const portB = nodeB.port;
  await nodeB.stop();
  await pb.locator('[data-kind="dropped"]').waitFor({ timeout: 10000 });
  await pa.getByTestId('message-list').getByText('Bob left #garden').waitFor({ timeout: 10000 });
  assert.equal(await pa.getByTestId('presence').textContent(), 'only you');
  nodeB = await startServer({ port: portB, env: fleetEnv('demo-b') });
  await pb.locator('[data-kind="recovered"]').waitFor({ timeout: 20000 });
  assert.match(await pb.locator('[data-kind="recovered"]').textContent(), /connection recovered after \d+\.\d s: joining #garden again/);
  await pb.getByTestId('message-list').getByText('you joined #garden with Alice').nth(1).waitFor({ timeout: 10000 });
  await pa.locator('[data-testid="presence"][data-count="2"]').waitFor({ timeout: 10000 });

  // Layout: the timestamps never wrap, and the message panel fills the window without overflowing it.
  const layout = await pa.evaluate(() => {
    const times = [...document.querySelectorAll('#messages time')];
    const list = document.querySelector('#messages').getBoundingClientRect();
    return {
      oneLineTimes: times.every((t) => t.getClientRects().length === 1 && t.getBoundingClientRect().height < 24),
      pageScrolls: document.documentElement.scrollHeight > window.innerHeight + 1,
      listBottom: list.bottom,
      windowHeight: window.innerHeight,
    };
  });
  assert.equal(layout.oneLineTimes, true);
  assert.equal(layout.pageScrolls, false);
  assert.ok(layout.listBottom > layout.windowHeight * 0.6, `the message list ends at ${layout.listBottom}px of ${layout.windowHeight}px`);

  mkdirSync(buildDir, { recursive: true });
  await pa.screenshot({ path: new URL('demo-fleet-alice.png', buildDir).pathname });
  await pb.screenshot({ path: new URL('demo-fleet-bob.png', buildDir).pathname });
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
  await alice.context.close();
  await bob.context.close();
});
