// The <script> build in a real Chromium recovers: its node (a real `wsfleet serve --recovery`
// process on a real redis-server) is drained with SIGTERM while a driver streams room and direct
// messages; the page's client reconnects to the other node and gets each message exactly once, in order.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { waitFor } from '../helpers/server.mjs';
import { redisExe, startRedis, node } from '../helpers/recovery.mjs';

const { WebSocketConnector } = await import(new URL('../../dist/index.mjs', import.meta.url).href);
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const clientBuild = readFileSync(new URL('../../dist/wsfleet-client.min.js', import.meta.url), 'utf8');
const T = { timeout: 90000 };

let redis;
let browser;
const nodes = [];

before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is missing at ${CHROMIUM} (set CHROMIUM_PATH)`);
  if (!redisExe) throw new Error('redis-server is not installed');
  const { chromium } = await import('playwright-core');
  redis = await startRedis();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
});

after(async () => {
  if (browser) await browser.close();
  for (const n of nodes) await n.stop('SIGKILL');
  if (redis) await redis.stop();
});

it('a page whose node is drained resumes on another node without losing or repeating a message', T, async () => {
  const a = await node(redis.port, 'br-a');
  const b = await node(redis.port, 'br-b');
  nodes.push(a, b);
  const page = await (await browser.newContext()).newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(a.http + '/'); // a local origin: Chromium blocks local WebSockets from about:blank
  await page.addScriptTag({ content: clientBuild });
  await page.evaluate((url) => {
    const got = (window.got = { room: [], direct: [], recoveries: [] });
    const c = (window.client = new WebSocketConnector({ url, customParams: { id: 'page1' }, recover: true, fastReconnectInterval: 100 }));
    c.on('tick', (p) => got.room.push(p.n));
    c.on('dm', (p) => got.direct.push(p.n));
    c.on('recovery', (info) => got.recoveries.push(info));
  }, a.ws);
  await page.waitForFunction(() => window.client.recovery.session !== null, null, { timeout: 15000 }).catch(async (e) => {
    const state = await page.evaluate(() => [window.client.recovery, window.got]);
    throw new Error(`${e.message}: ${JSON.stringify(state)} ${errors.join('; ')}`);
  });

  const driver = new WebSocketConnector({ url: b.ws, customParams: { id: 'driver' } });
  await waitFor(driver, 'open');
  let sent = 0;
  let stop = false;
  const pump = (async () => {
    while (!stop) {
      await driver.emitWithPromise('pub', { n: sent, to: 'page1' });
      sent += 1;
    }
  })();
  const counts = () => page.evaluate(() => [window.got.room.length, window.got.direct.length]);
  await page.waitForFunction(() => window.got.room.length > 20 && window.got.direct.length > 20, null, { timeout: 15000 });
  await page.evaluate((url) => {
    window.client.options.url = url; // the balancer's job: new connections go to a ready node
  }, b.ws);
  await a.stop('SIGTERM');
  await page.waitForFunction(() => window.got.recoveries.length === 1, null, { timeout: 20000 });
  const [room] = await counts();
  await page.waitForFunction((n) => window.got.room.length > n + 20, room, { timeout: 15000 });
  stop = true;
  await pump;
  driver.manualClose();
  await page.waitForFunction((n) => window.got.room.length >= n && window.got.direct.length >= n, sent, { timeout: 15000 });
  const got = await page.evaluate(() => window.got);
  assert.equal(got.recoveries[0].recovered, true, JSON.stringify(got.recoveries[0]));
  assert.deepEqual(got.room, [...Array(sent).keys()]);
  assert.deepEqual(got.direct, [...Array(sent).keys()]);
  assert.deepEqual(errors, []);
});
