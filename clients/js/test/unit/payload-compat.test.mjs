// Issue 13 on the client side: a missing payload stays `undefined` (distinct from `null`), and
// lone surrogates round-trip as JSON.stringify/JSON.parse write and read them.
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { FakeWebSocket, setup, teardown, makeClient } from '../helpers/unit.mjs';

async function openClient(options) {
  const c = await makeClient(options);
  FakeWebSocket.last.serverOpen();
  return [c, FakeWebSocket.last];
}

describe('payload compatibility (issue 13)', () => {
  beforeEach(setup);
  afterEach(teardown);

  it('a pushed event without payload gives the listener undefined, "payload": null gives null', async () => {
    const [c, sock] = await openClient();
    const got = [];
    c.on('e', (...args) => got.push(args));
    sock.serverSendRaw('{"event":"e"}');
    sock.serverSendRaw('{"event":"e","payload":null}');
    assert.equal(got.length, 2);
    assert.equal(got[0][0], undefined);
    assert.equal(got[1][0], null);
    c.manualClose();
  });

  it('an ack with "payload": null gives data null (without payload: undefined, see emit tests)', async () => {
    const [c, sock] = await openClient();
    const p = c.emitWithPromise('x', 1);
    sock.serverSendRaw(`{"payload":null,"callbackId":"${sock.frames[0].callbackId}"}`);
    assert.deepEqual(await p, { success: true, data: null });
    c.manualClose();
  });

  it('lone surrogates go out as \\ud800 escapes and come back as the same string', async () => {
    const [c, sock] = await openClient();
    const got = [];
    c.on('e', (p) => got.push(p));
    c.emit('echo', { s: '\ud800x' });
    assert.equal(sock.sent[0], '{"event":"echo","payload":{"s":"\\ud800x"}}');
    sock.serverSendRaw('{"event":"e","payload":{"s":"\\ud800x"}}');
    assert.deepEqual(got, [{ s: '\ud800x' }]);
    c.manualClose();
  });
});
