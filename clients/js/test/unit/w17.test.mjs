// One named test per client bug of the original (spec section 7, W17) that this client fixes.
import { describe, it, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { FakeWebSocket, setup, teardown, makeClient, tick, record, flush, lib } from '../helpers/unit.mjs';

describe('W17 fixes', () => {
  beforeEach(setup);
  afterEach(teardown);

  it('W17: pending acks fail at once with WS_CLOSED when the connection closes', async () => {
    const c = await makeClient();
    const sock = FakeWebSocket.last;
    sock.serverOpen();
    const calls = [];
    c.emit('slow', 1, (err, data) => calls.push([err, data]));
    const p = c.emitWithPromise('slow', 2);
    const [id1, id2] = sock.frames.map((f) => f.callbackId);
    sock.serverClose(1012, 'server restart');
    assert.deepEqual(calls, [[{ error: 'WebSocket closed before the ack arrived: ' + id1, errorCode: 'WS_CLOSED' }, null]]);
    assert.deepEqual(await p, { success: false, error: 'WebSocket closed before the ack arrived: ' + id2, errorCode: 'WS_CLOSED' });
    tick(10000);
    assert.equal(calls.length, 1, 'no CALLBACK_TIMEOUT afterwards');
    c.manualClose();
  });

  it('W17: pending acks also fail at once on error, reconnect() and manualClose()', async () => {
    const c = await makeClient();
    const codes = [];
    const cb = (err) => codes.push(err && err.errorCode);
    FakeWebSocket.last.serverOpen();
    c.emit('a', 1, cb);
    FakeWebSocket.last.serverFail();
    tick(3000);
    FakeWebSocket.last.serverOpen();
    c.emit('b', 1, cb);
    c.reconnect();
    tick(3000);
    FakeWebSocket.last.serverOpen();
    c.emit('c', 1, cb);
    c.manualClose();
    assert.deepEqual(codes, ['WS_CLOSED', 'WS_CLOSED', 'WS_CLOSED']);
  });

  it('W17: heartbeat timers are cleared on close (no ping or pong-timeout after it)', async () => {
    const c = await makeClient({ reconnectOnClose: false });
    const sock = FakeWebSocket.last;
    sock.serverOpen();
    const log = record(c, ['ping', 'pong-timeout']);
    tick(10000); // ping sent, pong timer armed
    assert.deepEqual(log.map((e) => e[0]), ['ping']);
    sock.serverClose(1006);
    tick(60000);
    assert.deepEqual(log.map((e) => e[0]), ['ping']);
  });

  it('W17: reconnect() during a scheduled reconnect is honoured: rescheduled now, one attempt', async () => {
    mock.method(Math, 'random', () => 0);
    const c = await makeClient();
    const log = record(c, ['reconnect']);
    // Reach attempt 6 (a 24 s backoff wait).
    for (let i = 0; i < 6; i++) {
      FakeWebSocket.last.serverFail();
      if (i < 5) tick(log[log.length - 1][1].timeout);
    }
    assert.deepEqual(log[log.length - 1][1], { repeat: 6, timeout: 24000 });
    const count = FakeWebSocket.instances.length;
    tick(10000);
    c.reconnect(); // replaces the scheduled attempt 6, does not add an attempt 7
    assert.deepEqual(log[log.length - 1][1], { repeat: 6, timeout: 24000 });
    tick(23999);
    assert.equal(FakeWebSocket.instances.length, count, 'the old timer was cancelled');
    c.reconnect(true); // restart the schedule: attempt 1, fast interval
    assert.deepEqual(log[log.length - 1][1], { repeat: 1, timeout: 3000 });
    tick(3000);
    assert.equal(FakeWebSocket.instances.length, count + 1, 'exactly one new attempt');
    tick(200000);
    assert.equal(FakeWebSocket.instances.length, count + 1);
    c.manualClose();
  });

  it('W17: a URL error emits error and keeps the reconnect schedule', async () => {
    FakeWebSocket.rejectUrl = (url) => url.includes('bad');
    const c = new lib.WebSocketConnector({ url: 'ws://bad host/', WebSocket: FakeWebSocket });
    const log = record(c, ['error', 'reconnect', 'open']);
    await flush();
    assert.deepEqual(log.map((e) => e[0]), ['error', 'reconnect']);
    assert.ok(log[0][1] instanceof SyntaxError);
    tick(3000);
    tick(3000);
    assert.deepEqual(log.map((e) => e[0]), ['error', 'reconnect', 'error', 'reconnect', 'error', 'reconnect']);
    assert.deepEqual(log.filter((e) => e[0] === 'reconnect').map((e) => e[1].repeat), [1, 2, 3]);
    FakeWebSocket.rejectUrl = null; // e.g. the app fixed c.options.url
    tick(3000);
    FakeWebSocket.last.serverOpen();
    assert.equal(log[log.length - 1][0], 'open');
    c.manualClose();
  });

  it('W17: a server-pushed event named like a system event does not fire the system listeners', async () => {
    const c = await makeClient();
    const sock = FakeWebSocket.last;
    const system = record(c);
    const server = [];
    for (const name of lib.SYSTEM_EVENTS) c.onServer(name, (p) => server.push([name, p]));
    sock.serverOpen();
    system.length = 0;
    for (const name of lib.SYSTEM_EVENTS) sock.serverSend({ event: name, payload: { from: 'server' } });
    assert.deepEqual(
      system.filter((e) => e[0] !== 'message'),
      [],
      'only the raw message event fires for the client',
    );
    assert.deepEqual(server, lib.SYSTEM_EVENTS.map((name) => [name, { from: 'server' }]));
    c.offServer('pong');
    sock.serverSend({ event: 'pong', payload: 1 });
    assert.equal(server.length, lib.SYSTEM_EVENTS.length);
    c.manualClose();
  });

  it('W17: manualClose() can be undone with connect()', async () => {
    const c = await makeClient();
    FakeWebSocket.last.serverOpen();
    c.manualClose();
    tick(100000);
    assert.equal(FakeWebSocket.instances.length, 1);
    const log = record(c, ['open']);
    c.connect();
    assert.equal(FakeWebSocket.instances.length, 2);
    FakeWebSocket.last.serverOpen();
    assert.equal(log.length, 1);
    c.connect(); // already connected: no-op
    assert.equal(FakeWebSocket.instances.length, 2);
    c.manualClose();
  });
});
