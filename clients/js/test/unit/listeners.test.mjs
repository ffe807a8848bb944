import { describe, it, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { FakeWebSocket, setup, teardown, makeClient } from '../helpers/unit.mjs';

describe('listener management (spec 3.2)', () => {
  beforeEach(setup);
  afterEach(teardown);

  it('on / once / off(event) / off(event, fn) / off(event, tag)', async () => {
    const c = await makeClient();
    const sock = FakeWebSocket.last;
    sock.serverOpen();
    const got = [];
    const a = (p) => got.push(['a', p]);
    c.on('news', a);
    c.on('news', (p) => got.push(['b', p]), 'tagB');
    c.on('news', (p) => got.push(['c', p]), 7);
    c.once('news', (p) => got.push(['once', p]));
    sock.serverSend({ event: 'news', payload: 1 });
    assert.deepEqual(got, [['a', 1], ['b', 1], ['c', 1], ['once', 1]]);
    got.length = 0;
    sock.serverSend({ event: 'news', payload: 2 });
    assert.deepEqual(got, [['a', 2], ['b', 2], ['c', 2]]);
    got.length = 0;
    c.off('news', a);
    c.off('news', 'tagB');
    sock.serverSend({ event: 'news', payload: 3 });
    assert.deepEqual(got, [['c', 3]]);
    got.length = 0;
    c.off('news', 7);
    c.on('news', (p) => got.push(['d', p]));
    c.off('news');
    sock.serverSend({ event: 'news', payload: 4 });
    assert.deepEqual(got, []);
    c.manualClose();
  });

  it('off with tag removes system listeners too; chaining works', async () => {
    const c = await makeClient();
    const got = [];
    c.on('open', () => got.push(1), 'ui').on('open', () => got.push(2)).off('open', 'ui');
    FakeWebSocket.last.serverOpen();
    assert.deepEqual(got, [2]);
    c.manualClose();
  });

  it('throws TypeError on bad arguments', async () => {
    const c = await makeClient();
    assert.throws(() => c.on('', () => {}), TypeError);
    assert.throws(() => c.on('x', 'nope'), TypeError);
    assert.throws(() => c.once(null, () => {}), TypeError);
    assert.throws(() => c.on('x', () => {}, {}), TypeError);
    assert.throws(() => c.onServer('x'), TypeError);
    c.manualClose();
  });

  it('a throwing listener is logged and does not stop the others', async () => {
    const err = mock.method(console, 'error', () => {});
    const c = await makeClient();
    const got = [];
    c.on('open', () => {
      throw new Error('boom');
    });
    c.on('open', () => got.push('second'));
    FakeWebSocket.last.serverOpen();
    assert.deepEqual(got, ['second']);
    assert.equal(err.mock.callCount(), 1);
    c.manualClose();
  });

  it('a listener removed by an earlier listener is not called', async () => {
    const c = await makeClient();
    const got = [];
    const second = () => got.push('second');
    c.on('open', () => c.off('open', second));
    c.on('open', second);
    FakeWebSocket.last.serverOpen();
    assert.deepEqual(got, []);
    c.manualClose();
  });

  it('message gets every raw frame; binary, invalid JSON and non-string event names are ignored', async () => {
    const c = await makeClient();
    const sock = FakeWebSocket.last;
    sock.serverOpen();
    const raw = [];
    const pushed = [];
    c.on('message', (d) => raw.push(d));
    c.on('x', (p) => pushed.push(p));
    sock.serverSendRaw('not json');
    sock.serverSendRaw(new Uint8Array([123, 125]));
    sock.serverSendRaw('null');
    sock.serverSendRaw('{"event":123,"payload":1}');
    sock.serverSendRaw('{"event":"x","payload":{"ok":true}}');
    assert.equal(raw.length, 5);
    assert.deepEqual(pushed, [{ ok: true }]);
    c.manualClose();
  });
});
