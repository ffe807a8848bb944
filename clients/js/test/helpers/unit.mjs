import { mock } from 'node:test';
import { existsSync } from 'node:fs';
import { FakeWebSocket } from './fake-ws.mjs';

const dist = new URL('../../dist/index.mjs', import.meta.url);
if (!existsSync(dist)) throw new Error('dist/index.mjs is missing: run `npm run build` first');
export const lib = await import(dist.href);
export { FakeWebSocket };

/** Let queued promise jobs run (the client connects in a microtask after the constructor). */
export const flush = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

/** Fake setTimeout/Date from t=0 and a fresh FakeWebSocket registry; call in beforeEach. */
export function setup() {
  FakeWebSocket.reset();
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
}

export function teardown() {
  mock.timers.reset();
  mock.restoreAll();
}

export const tick = (ms) => mock.timers.tick(ms);

/** A connector on a FakeWebSocket, created and connected (socket created, not open yet). */
export async function makeClient(options = {}) {
  const client = new lib.WebSocketConnector({ url: 'ws://test.local/ws', WebSocket: FakeWebSocket, ...options });
  await flush();
  return client;
}

/** Record every event fired on the given names into an array of [name, arg]. */
export function record(client, names = lib.SYSTEM_EVENTS) {
  const log = [];
  for (const name of names) client.on(name, (arg) => log.push([name, arg]));
  return log;
}
