// The demo page in a real Chromium (Debian's /usr/bin/chromium driven by playwright-core),
// served by a real `wsfleet serve`: two pages join a room; a message from the second reaches the first.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { startServer } from '../helpers/server.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const buildDir = new URL('../../build/', import.meta.url);
const clientBuild = readFileSync(new URL('../../dist/wsfleet-client.min.js', import.meta.url), 'utf8');
const T = { timeout: 45000 };

let server;
let browser;

before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium is missing at ${CHROMIUM}: install it with "apt-get install chromium" (or set CHROMIUM_PATH).`);
  }
  const { chromium } = await import('playwright-core');
  server = await startServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

/** A page of the demo in its own browser context (separate storage), with console errors collected. */
async function openDemo(t) {
  const context = await browser.newContext({ viewport: { width: 820, height: 640 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  if (!servedClient) {
    // The root Makefile copies dist/wsfleet-client.min.js next to the demo page; until then use the build.
    await page.route('**/wsfleet-client.js', (route) => route.fulfill({ contentType: 'text/javascript', body: clientBuild }));
  }
  await page.goto(server.http + '/');
  return { page, context, errors };
}

let servedClient = false;

it('the server serves the demo page and, once copied, the client script', T, async (t) => {
  const page = await fetch(server.http + '/');
  assert.equal(page.status, 200);
  assert.match(await page.text(), /wsfleet-client\.js/);
  const script = await fetch(server.http + '/wsfleet-client.js');
  if (script.status === 404) {
    t.diagnostic('GET /wsfleet-client.js is 404 (not copied yet by the root Makefile): the page test uses dist/wsfleet-client.min.js');
    return;
  }
  assert.equal(script.status, 200);
  assert.equal(await script.text(), clientBuild, 'the served /wsfleet-client.js is stale: copy dist/wsfleet-client.min.js again');
  servedClient = true;
});

it('two pages chat in a room; latency is shown; screenshot to build/demo.png', T, async () => {
  const alice = await openDemo();
  const bob = await openDemo();
  const { page: pa } = alice;
  const { page: pb } = bob;

  await pa.getByTestId('name-input').fill('Alice');
  await pa.getByTestId('room-input').fill('garden');
  await pa.getByTestId('join-button').click();
  await pa.getByTestId('status').and(pa.locator('[data-state="open"]')).waitFor({ timeout: 10000 });
  await pa.getByTestId('room-title').filter({ hasText: '#garden' }).waitFor({ timeout: 10000 });

  await pb.getByTestId('name-input').fill('Bob');
  await pb.getByTestId('room-input').fill('garden');
  await pb.getByTestId('join-button').click();
  await pb.getByTestId('room-title').filter({ hasText: '#garden' }).waitFor({ timeout: 10000 });
  await pa.getByTestId('message-list').getByText('Bob joined #garden').waitFor({ timeout: 10000 });

  await pb.getByTestId('message-input').fill('Hello from Bob');
  await pb.getByTestId('send-button').click();

  const arrived = pa.getByTestId('message-list').locator('li.msg', { hasText: 'Hello from Bob' });
  await arrived.waitFor({ timeout: 10000 });
  assert.match(await arrived.textContent(), /Bob\s*Hello from Bob/);
  // The sender sees its own message too, marked as its own.
  await pb.getByTestId('message-list').locator('li.msg.mine', { hasText: 'Hello from Bob' }).waitFor({ timeout: 10000 });

  await pa.getByTestId('message-input').fill('Hi Bob!');
  await pa.getByTestId('send-button').click();
  await pb.getByTestId('message-list').locator('li.msg', { hasText: 'Hi Bob!' }).waitFor({ timeout: 10000 });

  // Heartbeat every 3 s in the demo: the latency display shows "<n> ms".
  await pa.waitForFunction(() => /^\d+ ms$/.test(document.querySelector('[data-testid="latency"]').textContent), null, { timeout: 10000 });
  assert.match(await pa.getByTestId('status').textContent(), /^connected as Alice$/);

  mkdirSync(buildDir, { recursive: true });
  await pa.screenshot({ path: new URL('demo.png', buildDir).pathname, fullPage: true });
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
  await alice.context.close();
  await bob.context.close();
});
