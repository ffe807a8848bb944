// The client (dist/index.mjs) against a real `wsfleet serve` process and its demo app.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, waitFor, recorder } from '../helpers/server.mjs';

const { WebSocketConnector } = await import(new URL('../../dist/index.mjs', import.meta.url).href);

const T = { timeout: 20000 };
let server;
const clients = [];

/** A connector on the test server with fast reconnects; closed after the suite. */
function connect(customParams, options = {}) {
  const c = new WebSocketConnector({ url: server.ws, customParams, fastReconnectInterval: 200, ...options });
  clients.push(c);
  return c;
}

async function connected(customParams, options) {
  const c = connect(customParams, options);
  await waitFor(c, 'open');
  return c;
}

describe('wsfleet-client against wsfleet serve', () => {
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    for (const c of clients) c.manualClose();
    if (server) await server.stop();
  });

  it('uses the global WebSocket, or the ws package on Node 20', T, async () => {
    const c = await connected({ id: 'impl-check' });
    if (typeof globalThis.WebSocket === 'undefined') {
      assert.equal(c.ws.constructor.name, 'WebSocket');
      assert.equal(typeof c.ws.on, 'function', 'the ws package socket (an EventEmitter)');
    }
    c.manualClose();
  });

  it('connects with customParams as query parameters (whoami)', T, async () => {
    const c = await connected({ id: 'alice', name: 'Alice', extra: 'a b&c', n: 5 });
    const r = await c.emitWithPromise('whoami', {});
    assert.equal(r.success, true, JSON.stringify(r));
    assert.equal(r.data.id, 'alice');
    assert.equal(r.data.name, 'Alice');
    assert.deepEqual(r.data.params, { id: 'alice', name: 'Alice', extra: 'a b&c', n: '5' });
    assert.equal(r.data.path, 'ws');
  });

  it('gets a guest- id without an id parameter', T, async () => {
    const c = await connected({ name: 'Nobody' });
    const r = await c.emitWithPromise('whoami', {});
    assert.match(r.data.id, /^guest-/);
    assert.equal(r.data.name, 'Nobody');
  });

  it('emit with a callback and emitWithPromise get the echo ack', T, async () => {
    const c = await connected({ id: 'echoer' });
    const payload = { hello: 'world', n: [1, 2, 3], nested: { ok: true }, text: 'ünïcødé ✓' };
    const viaCallback = await new Promise((res) => c.emit('echo', payload, (err, data) => res([err, data])));
    assert.deepEqual(viaCallback, [null, payload]);
    assert.deepEqual(await c.emitWithPromise('echo', payload), { success: true, data: payload });
    assert.deepEqual(await c.emitWithPromise('echo', 'plain string'), { success: true, data: 'plain string' });
    assert.deepEqual(await c.emitWithPromise('echo', 0), { success: true, data: 0 });
  });

  it('pending hook fires for a slow ack only', T, async () => {
    const c = await connected({ id: 'pender' });
    let pending = 0;
    const r = await c.emitWithPromise('echo', 1, { pendingTimeout: 1000, onPending: () => pending++ });
    assert.equal(r.success, true);
    assert.equal(pending, 0);
  });

  it('rooms: join ack with members, joined/said/left pushed to the members', T, async () => {
    const a = await connected({ id: 'room-a', name: 'Ann' });
    const b = await connected({ id: 'room-b', name: 'Bob' });
    assert.deepEqual(await a.emitWithPromise('join', { room: 'r1' }), { success: true, data: { room: 'r1', members: ['room-a'], names: { 'room-a': 'Ann' } } });
    const joined = waitFor(a, 'joined');
    const bJoin = await b.emitWithPromise('join', { room: 'r1' });
    assert.deepEqual(bJoin.data, { room: 'r1', members: ['room-a', 'room-b'], names: { 'room-a': 'Ann', 'room-b': 'Bob' } });
    assert.deepEqual(await joined, { room: 'r1', id: 'room-b', name: 'Bob' });

    const saidA = waitFor(a, 'said');
    const saidB = waitFor(b, 'said');
    assert.deepEqual(await b.emitWithPromise('say', { room: 'r1', text: 'hello room' }), { success: true, data: { ok: true } });
    for (const msg of [await saidA, await saidB]) {
      assert.equal(msg.room, 'r1');
      assert.equal(msg.id, 'room-b');
      assert.equal(msg.name, 'Bob');
      assert.equal(msg.text, 'hello room');
      assert.equal(typeof msg.ts, 'number');
    }

    const left = waitFor(a, 'left');
    assert.deepEqual(await b.emitWithPromise('leave', { room: 'r1' }), { success: true, data: { room: 'r1' } });
    assert.deepEqual(await left, { room: 'r1', id: 'room-b', name: 'Bob' });
  });

  it('broadcast reaches every connected socket as announcement', T, async () => {
    const a = await connected({ id: 'bc-a' });
    const b = await connected({ id: 'bc-b' });
    const got = Promise.all([waitFor(a, 'announcement'), waitFor(b, 'announcement')]);
    assert.deepEqual(await a.emitWithPromise('broadcast', { msg: 'hi all' }), { success: true, data: { ok: true } });
    assert.deepEqual(await got, [{ msg: 'hi all' }, { msg: 'hi all' }]);
  });

  it('heartbeat: the server echoes "" and the client reports latency with pong', T, async () => {
    const c = connect({ id: 'beater' }, { pingInterval: 150, pongTimeout: 2000 });
    const log = recorder(c, ['ping', 'pong', 'pong-timeout', 'close']);
    await waitFor(c, 'open');
    const first = await waitFor(c, 'pong');
    const second = await waitFor(c, 'pong');
    for (const ms of [first, second]) assert.ok(Number.isFinite(ms) && ms >= 0 && ms < 2000, `latency ${ms}`);
    assert.equal(c.latency, second);
    assert.deepEqual(log.slice(0, 4).map((e) => e[0]), ['ping', 'pong', 'ping', 'pong']);
  });

  it('no heartbeat reply (pingMsg the server does not echo): pong-timeout, close 4002, reconnect, open', T, async () => {
    const c = connect({ id: 'deaf' }, { pingMsg: 'no-such-heartbeat', pingInterval: 100, pongTimeout: 300 });
    const log = recorder(c, ['open', 'ping', 'pong', 'pong-timeout', 'close', 'reconnect']);
    await waitFor(c, 'open');
    await waitFor(c, 'open', { ms: 5000 });
    const names = log.map((e) => e[0]);
    assert.deepEqual(names, ['open', 'ping', 'pong-timeout', 'close', 'reconnect', 'open']);
    assert.equal(log[3][1].code, 4002);
    c.manualClose();
  });

  it('close-me 4011 closes without reconnecting', T, async () => {
    const c = await connected({ id: 'kicked' });
    const log = recorder(c, ['close', 'reconnect', 'error']);
    const closed = waitFor(c, 'close');
    assert.deepEqual(await c.emitWithPromise('close-me', { code: 4011, reason: 'auth failed' }), { success: true, data: { ok: true } });
    const ev = await closed;
    assert.equal(ev.code, 4011);
    assert.equal(ev.reason, 'auth failed');
    assert.deepEqual(log.map((e) => e[0]), ['close']);
    assert.equal(c.reconnecting(), false);
    assert.equal(c.readyState, 3);
  });

  it('close-me 4003 (slow consumer) reconnects and opens again', T, async () => {
    const c = await connected({ id: 'slow-one' });
    const log = recorder(c, ['close', 'reconnect', 'open']);
    const reopened = waitFor(c, 'open');
    await c.emitWithPromise('close-me', { code: 4003, reason: 'slow consumer' });
    await reopened;
    assert.deepEqual(log.map((e) => e[0]), ['close', 'reconnect', 'open']);
    assert.equal(log[0][1].code, 4003);
    assert.deepEqual(log[1][1], { repeat: 1, timeout: 200 });
    assert.equal((await c.emitWithPromise('whoami', {})).data.id, 'slow-one');
  });

  it('a pending ack fails with WS_CLOSED when the server closes the socket', T, async () => {
    const c = await connected({ id: 'dropper' }, { reconnectOnClose: false });
    // close-me acks first, then closes; a request sent right behind it never gets its ack.
    const closing = c.emitWithPromise('close-me', { code: 4010, reason: 'bye' });
    const orphan = c.emitWithPromise('echo', 'too late', { callbackTimeout: 10000 });
    assert.equal((await closing).success, true);
    const r = await orphan;
    if (r.success) return; // the server may legitimately ack before closing
    assert.equal(r.errorCode, 'WS_CLOSED');
  });

  it('a second login with the same id closes the first with 4012, which does not reconnect', T, async () => {
    const first = await connected({ id: 'dup-user', name: 'One' });
    const log = recorder(first, ['close', 'reconnect']);
    const kicked = waitFor(first, 'close');
    const second = await connected({ id: 'dup-user', name: 'Two' });
    assert.equal((await kicked).code, 4012);
    assert.deepEqual(log.map((e) => e[0]), ['close']);
    const r = await second.emitWithPromise('whoami', {});
    assert.deepEqual([r.data.id, r.data.name], ['dup-user', 'Two']);
  });

  it('token=deny is refused before the upgrade: error and the reconnect schedule, never open', T, async () => {
    const c = connect({ id: 'intruder', token: 'deny' }, { fastReconnectInterval: 100, fastReconnectThreshold: 2, repeatLimit: 4 });
    const log = recorder(c, ['open', 'error', 'reconnect', 'close', 'repeat-limit']);
    const limit = await waitFor(c, 'repeat-limit', { ms: 10000 });
    assert.equal(limit, 4);
    const names = log.map((e) => e[0]);
    assert.ok(!names.includes('open'), names.join());
    assert.deepEqual(names, ['error', 'reconnect', 'error', 'reconnect', 'error', 'reconnect', 'error', 'reconnect', 'error', 'repeat-limit']);
    assert.deepEqual(log.filter((e) => e[0] === 'reconnect').map((e) => e[1].repeat), [1, 2, 3, 4]);
    const delays = log.filter((e) => e[0] === 'reconnect').map((e) => e[1].timeout);
    assert.deepEqual(delays.slice(0, 2), [100, 100]);
    assert.ok(delays[2] >= 200 && delays[2] < 300 && delays[3] >= 400 && delays[3] < 500, String(delays));
  });
});

describe('server restart', () => {
  it('reconnects to a new server on the same port and opens again', { timeout: 40000 }, async () => {
    let srv = await startServer();
    const port = srv.port;
    const c = new WebSocketConnector({ url: srv.ws, customParams: { id: 'survivor', name: 'S' }, fastReconnectInterval: 200 });
    try {
      const log = recorder(c, ['open', 'close', 'error', 'reconnect']);
      await waitFor(c, 'open');
      assert.deepEqual((await c.emitWithPromise('join', { room: 'lobby' })).data.members, ['survivor']);
      const pending = c.emitWithPromise('echo', 'in flight?', { callbackTimeout: 10000 });

      const gone = waitFor(c, 'reconnect', { ms: 10000 });
      await srv.stop('SIGTERM');
      await gone;
      const ack = await pending;
      assert.ok(ack.success || ack.errorCode === 'WS_CLOSED', JSON.stringify(ack));
      const closeEv = log.find((e) => e[0] === 'close');
      if (closeEv) assert.ok([1001, 1006, 1012].includes(closeEv[1].code), `close code ${closeEv[1].code}`);

      // Let at least one attempt hit the closed port, then bring a new server up on the same port.
      await waitFor(c, 'reconnect', { ms: 10000 });
      const reopened = waitFor(c, 'open', { ms: 15000 });
      srv = await startServer({ port });
      await reopened;
      assert.equal(log.filter((e) => e[0] === 'open').length, 2);
      const who = await c.emitWithPromise('whoami', {});
      assert.deepEqual([who.data.id, who.data.name], ['survivor', 'S']);
      // Room state lived in the old process: the app joins again.
      assert.deepEqual((await c.emitWithPromise('join', { room: 'lobby' })).data.members, ['survivor']);
    } finally {
      c.manualClose();
      await srv.stop();
    }
  });
});
