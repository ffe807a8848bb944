import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { FakeWebSocket, setup, teardown, makeClient, tick, flush } from '../helpers/unit.mjs';

async function openClient(options) {
  const c = await makeClient(options);
  FakeWebSocket.last.serverOpen();
  return [c, FakeWebSocket.last];
}

describe('emit (spec 3.3)', () => {
  beforeEach(setup);
  afterEach(teardown);

  it('sends {event, payload} without a callback, and {event, payload, callbackId} with one', async () => {
    const [c, sock] = await openClient();
    assert.equal(c.emit('say', { text: 'hi' }), true);
    c.emit('say', 'x', () => {});
    assert.deepEqual(sock.frames[0], { event: 'say', payload: { text: 'hi' } });
    assert.deepEqual(Object.keys(sock.frames[1]), ['event', 'payload', 'callbackId']);
    assert.match(sock.frames[1].callbackId, /^[0-9a-z]+-[0-9a-z]{0,4}-1$/);
    c.emit('say', 'y', () => {});
    assert.match(sock.frames[2].callbackId, /-2$/);
    c.manualClose();
  });

  it('delivers the ack as callback(null, payload), once', async () => {
    const [c, sock] = await openClient();
    const calls = [];
    c.emit('echo', { a: 1 }, (err, data) => calls.push([err, data]));
    const id = sock.frames[0].callbackId;
    sock.serverSend({ payload: { a: 1 }, callbackId: id });
    sock.serverSend({ payload: { a: 2 }, callbackId: id });
    assert.deepEqual(calls, [[null, { a: 1 }]]);
    tick(10000);
    assert.equal(calls.length, 1, 'no timeout after the ack');
    c.manualClose();
  });

  it('a frame with a truthy callbackId is an ack even with an event key; unknown ids are ignored', async () => {
    const [c, sock] = await openClient();
    const calls = [];
    const pushed = [];
    c.on('said', (p) => pushed.push(p));
    c.emit('echo', 1, (err, data) => calls.push([err, data]));
    sock.serverSend({ event: 'said', payload: 'nope', callbackId: 'unknown-id' });
    sock.serverSend({ event: 'said', payload: 7, callbackId: sock.frames[0].callbackId });
    assert.deepEqual(calls, [[null, 7]]);
    assert.deepEqual(pushed, []);
    c.manualClose();
  });

  it('an ack without payload gives data undefined', async () => {
    const [c, sock] = await openClient();
    const p = c.emitWithPromise('x', 1);
    sock.serverSend({ callbackId: sock.frames[0].callbackId });
    assert.deepEqual(await p, { success: true, data: undefined });
    c.manualClose();
  });

  it('not open: callback({error, errorCode: WS_NOT_OPEN}, null), nothing sent', async () => {
    const c = await makeClient();
    const calls = [];
    assert.equal(c.emit('say', 1, (err, data) => calls.push([err, data])), false);
    assert.equal(c.emit('say', 1), false);
    assert.deepEqual(calls, [[{ error: 'WebSocket is not open', errorCode: 'WS_NOT_OPEN' }, null]]);
    assert.deepEqual(FakeWebSocket.last.sent, []);
    c.manualClose();
  });

  it('times out after callbackTimeout with CALLBACK_TIMEOUT', async () => {
    const [c, sock] = await openClient();
    const calls = [];
    c.emit('slow', 1, (err, data) => calls.push([err, data]));
    tick(4999);
    assert.equal(calls.length, 0);
    tick(1);
    const id = sock.frames[0].callbackId;
    assert.deepEqual(calls, [[{ error: 'Is callback timeout: ' + id, errorCode: 'CALLBACK_TIMEOUT' }, null]]);
    sock.serverSend({ payload: 1, callbackId: id });
    assert.equal(calls.length, 1, 'a late ack is ignored');
    c.manualClose();
  });

  it('per-call callbackTimeout; 0 falls back to the option', async () => {
    const [c] = await openClient({ callbackTimeout: 300 });
    const calls = [];
    c.emit('a', 1, () => calls.push('a'), { callbackTimeout: 1000 });
    c.emit('b', 1, () => calls.push('b'), { callbackTimeout: 0 });
    tick(300);
    assert.deepEqual(calls, ['b']);
    tick(700);
    assert.deepEqual(calls, ['b', 'a']);
    c.manualClose();
  });

  it('throws TypeError for a bad event, null/undefined data or invalid timeouts', async () => {
    const [c] = await openClient();
    assert.throws(() => c.emit('', 1), TypeError);
    assert.throws(() => c.emit(5, 1), TypeError);
    assert.throws(() => c.emit('x', null), TypeError);
    assert.throws(() => c.emit('x', undefined), TypeError);
    assert.throws(() => c.emit('x', 1, () => {}, { callbackTimeout: 1.5 }), TypeError);
    assert.throws(() => c.emit('x', 1, () => {}, { pendingTimeout: -1 }), TypeError);
    c.manualClose();
  });

  it('onPending fires once after pendingTimeout, and not after an ack', async () => {
    const [c, sock] = await openClient();
    const log = [];
    c.emit('slow', 1, () => log.push('done'), { onPending: () => log.push('pending') });
    c.emit('fast', 1, () => log.push('fast-done'), { onPending: () => log.push('fast-pending') });
    sock.serverSend({ payload: 1, callbackId: sock.frames[1].callbackId });
    tick(99);
    assert.deepEqual(log, ['fast-done']);
    tick(1);
    assert.deepEqual(log, ['fast-done', 'pending']);
    tick(10000);
    assert.deepEqual(log, ['fast-done', 'pending', 'done']);
    c.manualClose();
  });

  it('onPending with a custom pendingTimeout; never when pendingTimeout >= callbackTimeout', async () => {
    const [c] = await openClient();
    const log = [];
    c.emit('a', 1, () => {}, { pendingTimeout: 400, onPending: () => log.push('a') });
    c.emit('b', 1, () => {}, { pendingTimeout: 1000, callbackTimeout: 1000, onPending: () => log.push('b') });
    const p = c.emitWithPromise('c', 1, { pendingTimeout: 50, onPending: () => log.push('c') });
    tick(49);
    assert.deepEqual(log, []);
    tick(1);
    assert.deepEqual(log, ['c']);
    tick(349);
    assert.deepEqual(log, ['c']);
    tick(1);
    assert.deepEqual(log, ['c', 'a']);
    tick(6000);
    assert.deepEqual(log, ['c', 'a']);
    assert.equal((await p).errorCode, 'CALLBACK_TIMEOUT');
    c.manualClose();
  });
});

describe('emitWithPromise result shapes (spec 3.3)', () => {
  beforeEach(setup);
  afterEach(teardown);

  it('success', async () => {
    const [c, sock] = await openClient();
    const p = c.emitWithPromise('echo', { hello: 'world' });
    sock.serverSend({ payload: { hello: 'world' }, callbackId: sock.frames[0].callbackId });
    assert.deepEqual(await p, { success: true, data: { hello: 'world' } });
    c.manualClose();
  });

  it('no event / null data / not open', async () => {
    const c = await makeClient();
    assert.deepEqual(await c.emitWithPromise('', 1), { success: false, error: 'No event provided in emitWithPromise' });
    assert.deepEqual(await c.emitWithPromise('x', null), { success: false, error: 'Data cannot be null or undefined' });
    assert.deepEqual(await c.emitWithPromise('x', 1), { success: false, error: 'WebSocket is not open', errorCode: 'WS_NOT_OPEN' });
    c.manualClose();
  });

  it('timeout', async () => {
    const [c, sock] = await openClient();
    const p = c.emitWithPromise('slow', 1, { callbackTimeout: 200 });
    tick(200);
    const id = sock.frames[0].callbackId;
    assert.deepEqual(await p, { success: false, error: 'Is promise callback timeout: ' + id, errorCode: 'CALLBACK_TIMEOUT' });
    c.manualClose();
  });

  it('W17: invalid timeouts resolve with INVALID_ARGUMENT instead of rejecting', async () => {
    const [c, sock] = await openClient();
    const r = await c.emitWithPromise('x', 1, { callbackTimeout: 2.5 });
    assert.equal(r.success, false);
    assert.equal(r.errorCode, 'INVALID_ARGUMENT');
    assert.match(r.error, /callbackTimeout/);
    assert.deepEqual(sock.sent, []);
    await flush();
    c.manualClose();
  });
});
