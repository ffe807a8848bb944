import { describe, it, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { lib, FakeWebSocket, setup, teardown, makeClient, tick, record } from '../helpers/unit.mjs';

const { computeReconnectDelay, DEFAULT_OPTIONS } = lib;

/** Fail every connection attempt and collect the `reconnect` events until n attempts were scheduled. */
function failAttempts(client, n) {
  const delays = [];
  client.on('reconnect', ({ repeat, timeout }) => delays.push([repeat, timeout]));
  for (let i = 0; i < n; i++) {
    const sock = FakeWebSocket.last;
    sock.serverFail();
    const { timeout } = { timeout: delays[delays.length - 1][1] };
    tick(timeout - 1);
    assert.equal(FakeWebSocket.last, sock, `attempt ${i + 1} must not start before its delay`);
    tick(1);
    assert.notEqual(FakeWebSocket.last, sock, `attempt ${i + 1} must start after exactly ${timeout} ms`);
  }
  return delays;
}

describe('reconnect schedule (spec 3.5)', () => {
  beforeEach(setup);
  afterEach(teardown);

  it('matches the delay table with the defaults, random() = 0 (lower bounds)', () => {
    const table = [3000, 3000, 3000, 6000, 12000, 24000, 48000, 96000, 120000, 120000];
    assert.deepEqual(table.map((_, i) => computeReconnectDelay(i + 1, DEFAULT_OPTIONS, () => 0)), table);
  });

  it('matches the delay table with the defaults, random() -> 1 (upper bounds)', () => {
    const table = [3000, 3000, 3000, 8999, 14999, 26999, 50999, 98999, 120000, 120000];
    const r = () => 0.9999999;
    assert.deepEqual(table.map((_, i) => computeReconnectDelay(i + 1, DEFAULT_OPTIONS, r)), table);
  });

  it('the client follows the table, using Math.random for the jitter', async () => {
    mock.method(Math, 'random', () => 0.5);
    const c = await makeClient();
    const delays = failAttempts(c, 10);
    assert.deepEqual(
      delays,
      [[1, 3000], [2, 3000], [3, 3000], [4, 7500], [5, 13500], [6, 25500], [7, 49500], [8, 97500], [9, 120000], [10, 120000]],
    );
    c.manualClose();
  });

  it('reproduces the observed run: interval 100, threshold 2, max 1000, limit 6', async () => {
    mock.method(Math, 'random', () => 0.5);
    const c = await makeClient({ fastReconnectInterval: 100, fastReconnectThreshold: 2, reconnectMaxInterval: 1000, repeatLimit: 6 });
    const limits = [];
    c.on('repeat-limit', (n) => limits.push(n));
    const delays = failAttempts(c, 6);
    assert.deepEqual(delays.map((d) => d[1]), [100, 100, 250, 450, 850, 1000]);
    FakeWebSocket.last.serverFail();
    assert.deepEqual(limits, [6]);
    const count = FakeWebSocket.instances.length;
    tick(1_000_000);
    assert.equal(FakeWebSocket.instances.length, count, 'no attempt after repeat-limit');
    c.manualClose();
  });

  it('resets the attempt counter on open; reconnecting() reports attempts in progress', async () => {
    const c = await makeClient();
    const log = record(c, ['reconnect']);
    assert.equal(c.reconnecting(), false);
    FakeWebSocket.last.serverFail();
    assert.equal(c.reconnecting(), true);
    tick(3000);
    FakeWebSocket.last.serverFail();
    tick(3000);
    FakeWebSocket.last.serverOpen();
    assert.equal(c.repeat, 0);
    assert.equal(c.reconnecting(), false);
    FakeWebSocket.last.serverClose(1006);
    assert.deepEqual(log.map((e) => e[1].repeat), [1, 2, 1]);
    c.manualClose();
  });

  it('an error drops the socket: error event, reconnect event, no close event', async () => {
    const c = await makeClient();
    const log = record(c);
    FakeWebSocket.last.serverFail();
    assert.deepEqual(log.map((e) => e[0]), ['error', 'reconnect']);
    assert.equal(c.ws, null);
    c.manualClose();
  });

  it('reconnect() on an open socket closes it with 4001 and schedules attempt 1', async () => {
    const c = await makeClient();
    const sock = FakeWebSocket.last;
    sock.serverOpen();
    const log = record(c);
    c.reconnect();
    assert.deepEqual(sock.closeCalls, [[4001, 'client manual close']]);
    assert.deepEqual(log, [['reconnect', { repeat: 1, timeout: 3000 }]]);
    tick(3000);
    assert.equal(FakeWebSocket.instances.length, 2);
    c.manualClose();
  });

  it('repeatLimit 0 never reconnects and emits repeat-limit with the limit', async () => {
    const c = await makeClient({ repeatLimit: 0 });
    const log = record(c);
    FakeWebSocket.last.serverFail();
    assert.deepEqual(log.map((e) => e[0]), ['error', 'repeat-limit']);
    assert.equal(log[1][1], 0);
    tick(1_000_000);
    assert.equal(FakeWebSocket.instances.length, 1);
  });

  it('manualClose stops a scheduled attempt and closes with 4001 without a close event', async () => {
    const c = await makeClient();
    const sock = FakeWebSocket.last;
    sock.serverOpen();
    const log = record(c);
    c.manualClose();
    assert.deepEqual(sock.closeCalls, [[4001, 'client manual close']]);
    assert.deepEqual(log, []);
    c.reconnect();
    tick(1_000_000);
    assert.equal(FakeWebSocket.instances.length, 1);
    assert.deepEqual(log, []);
  });
});
