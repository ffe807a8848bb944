import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { FakeWebSocket, setup, teardown, makeClient, tick, record } from '../helpers/unit.mjs';

describe('application heartbeat (spec 2.5)', () => {
  beforeEach(setup);
  afterEach(teardown);

  it('pings pingInterval after open, measures latency on the reply and re-arms', async () => {
    const c = await makeClient();
    const sock = FakeWebSocket.last;
    sock.serverOpen();
    const log = record(c, ['ping', 'pong', 'pong-timeout']);
    tick(9999);
    assert.deepEqual(sock.sent, []);
    tick(1);
    assert.deepEqual(sock.sent, ['']);
    assert.deepEqual(log, [['ping', undefined]]);
    tick(37);
    sock.serverSendRaw('');
    assert.deepEqual(log[1], ['pong', 37]);
    assert.equal(c.latency, 37);
    tick(2000); // the pong timer was cleared
    assert.equal(log.length, 2);
    tick(8000);
    assert.deepEqual(sock.sent, ['', '']);
    c.manualClose();
  });

  it('no reply within pongTimeout: pong-timeout, close 4002, close event, reconnect', async () => {
    const c = await makeClient();
    const sock = FakeWebSocket.last;
    sock.serverOpen();
    const log = record(c);
    tick(10000);
    tick(1999);
    assert.deepEqual(sock.closeCalls, []);
    tick(1);
    assert.deepEqual(sock.closeCalls, [[4002, 'pong timeout']]);
    assert.deepEqual(log.map((e) => e[0]), ['ping', 'pong-timeout', 'close', 'reconnect']);
    assert.equal(log[2][1].code, 4002);
    assert.equal(log[2][1].reason, 'pong timeout');
    tick(3000);
    assert.equal(FakeWebSocket.instances.length, 2);
    c.manualClose();
  });

  it('uses a custom pingMsg both ways; ordinary frames do not count as a pong', async () => {
    const c = await makeClient({ pingMsg: 'hb', pingInterval: 1000, pongTimeout: 500 });
    const sock = FakeWebSocket.last;
    sock.serverOpen();
    const log = record(c, ['pong', 'pong-timeout']);
    tick(1000);
    assert.deepEqual(sock.sent, ['hb']);
    sock.serverSendRaw('');
    sock.serverSend({ event: 'x', payload: 1 });
    tick(500);
    assert.deepEqual(log.map((e) => e[0]), ['pong-timeout']);
    c.manualClose();
  });

  it('setPingInterval / getPingInterval', async () => {
    const c = await makeClient();
    const sock = FakeWebSocket.last;
    sock.serverOpen();
    assert.equal(c.getPingInterval(), 10000);
    assert.throws(() => c.setPingInterval(0), TypeError);
    assert.throws(() => c.setPingInterval('5'), TypeError);
    tick(4000);
    c.setPingInterval(3000); // not immediate: the armed timer keeps its 10 s
    tick(5999);
    assert.deepEqual(sock.sent, []);
    tick(1);
    assert.deepEqual(sock.sent, ['']);
    sock.serverSendRaw('');
    tick(3000);
    assert.deepEqual(sock.sent, ['', '']);
    sock.serverSendRaw('');
    tick(1000);
    c.setPingInterval(500, true); // immediate: re-armed now with 500
    assert.equal(c.getPingInterval(), 500);
    tick(500);
    assert.deepEqual(sock.sent, ['', '', '']);
    c.manualClose();
  });
});
