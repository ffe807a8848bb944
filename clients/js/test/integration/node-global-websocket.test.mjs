// The same client with Node's built-in global WebSocket (Node >= 22, or Node 20 with
// --experimental-websocket) instead of the ws package: run in a child node process.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startServer } from '../helpers/server.mjs';

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  if (server) await server.stop();
});

const script = `
const { WebSocketConnector } = await import(${JSON.stringify(new URL('../../dist/index.mjs', import.meta.url).href)});
if (typeof WebSocket !== 'function') throw new Error('no global WebSocket');
const c = new WebSocketConnector({ url: process.argv[1], customParams: { id: 'native', name: 'N' }, pingInterval: 100 });
const out = {};
const timer = setTimeout(() => { console.log(JSON.stringify({ timeout: true, out })); process.exit(2); }, 10000);
c.on('open', async () => {
  out.native = c.ws instanceof WebSocket;
  out.echo = await c.emitWithPromise('echo', { a: 1 });
  out.who = await c.emitWithPromise('whoami', {});
  c.once('pong', (ms) => {
    out.pong = typeof ms;
    c.once('close', (ev) => {
      out.close = ev.code;
      out.reconnecting = c.reconnecting();
      clearTimeout(timer);
      console.log(JSON.stringify(out));
      c.manualClose();
    });
    c.emit('close-me', { code: 4011, reason: 'x' });
  });
});
`;

it('works with the global WebSocket of Node (undici)', { timeout: 20000 }, async () => {
  const args = process.versions.node.split('.')[0] < 22 ? ['--experimental-websocket'] : [];
  const child = spawn(process.execPath, [...args, '--no-warnings', '--input-type=module', '-e', script, server.ws], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  const code = await new Promise((res) => child.once('exit', res));
  assert.equal(code, 0, out);
  const r = JSON.parse(out.trim().split('\n').pop());
  assert.equal(r.native, true);
  assert.deepEqual(r.echo, { success: true, data: { a: 1 } });
  assert.equal(r.who.data.id, 'native');
  assert.equal(r.pong, 'number');
  assert.equal(r.close, 4011);
  assert.equal(r.reconnecting, false);
});
