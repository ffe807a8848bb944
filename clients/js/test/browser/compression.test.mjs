// permessage-deflate with a server that has compression on (WSFLEET_COMPRESSION=true): Chromium
// and the ws package (Node 20) negotiate it, and a large message round-trips.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startServer, waitFor } from '../helpers/server.mjs';

const { WebSocketConnector } = await import(new URL('../../dist/index.mjs', import.meta.url).href);
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const clientBuild = new URL('../../dist/wsfleet-client.min.js', import.meta.url);
const BIG = 'wsfleet '.repeat(4000);
const T = { timeout: 45000 };

let server;
before(async () => {
  server = await startServer({ env: { WSFLEET_COMPRESSION: 'true', WSFLEET_COMPRESSION_THRESHOLD: '256' } });
});
after(async () => {
  if (server) await server.stop();
});

it('Node (ws package or the global WebSocket) negotiates permessage-deflate and round-trips', T, async () => {
  const c = new WebSocketConnector({ url: server.ws, customParams: { id: 'deflate-node' } });
  try {
    await waitFor(c, 'open');
    assert.match(c.ws.extensions, /permessage-deflate/);
    assert.deepEqual(await c.emitWithPromise('echo', BIG), { success: true, data: BIG });
  } finally {
    c.manualClose();
  }
});

it('Chromium negotiates permessage-deflate and round-trips', T, async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is missing at ${CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM_PATH.`);
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
  try {
    const page = await browser.newPage();
    await page.goto(server.http + '/');
    await page.addScriptTag({ path: clientBuild.pathname });
    const result = await page.evaluate(
      ({ url, big }) =>
        new Promise((resolve, reject) => {
          const c = new WsfleetClient({ url, customParams: { id: 'deflate-browser' } });
          setTimeout(() => reject(new Error('no echo within 10 s')), 10000);
          c.on('open', async () => {
            const echo = await c.emitWithPromise('echo', big);
            resolve({ extensions: c.ws.extensions, same: echo.success && echo.data === big });
            c.manualClose();
          });
        }),
      { url: server.ws, big: BIG },
    );
    assert.match(result.extensions, /permessage-deflate/);
    assert.equal(result.same, true);
  } finally {
    await browser.close();
  }
});
