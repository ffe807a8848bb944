import { describe, it, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { FakeWebSocket, setup, teardown, makeClient, tick, record } from '../helpers/unit.mjs';

async function closeWith(code, options) {
  const c = await makeClient(options);
  const before = FakeWebSocket.instances.length;
  FakeWebSocket.last.serverOpen();
  const log = record(c, ['close', 'reconnect']);
  FakeWebSocket.last.serverClose(code, 'r');
  tick(3000);
  const attempts = FakeWebSocket.instances.length - before;
  c.manualClose();
  return { log: log.map((e) => e[0]), attempts };
}

describe('close policy (reconnectOnClose)', () => {
  beforeEach(setup);
  afterEach(teardown);

  for (const code of [1000, 1001, 1006, 1011, 1012, 4002, 4003, 4004, 4005]) {
    it(`default: reconnects after close ${code}`, async () => {
      assert.deepEqual(await closeWith(code), { log: ['close', 'reconnect'], attempts: 1 });
    });
  }

  for (const code of [4001, 4010, 4011, 4012]) {
    it(`default: does not reconnect after close ${code}`, async () => {
      assert.deepEqual(await closeWith(code), { log: ['close'], attempts: 0 });
    });
  }

  it('false: never reconnects by itself (the original behaviour)', async () => {
    assert.deepEqual(await closeWith(1012, { reconnectOnClose: false }), { log: ['close'], attempts: 0 });
  });

  it('a function decides per code and gets the close event', async () => {
    const seen = [];
    const policy = (code, ev) => {
      seen.push([code, ev.reason]);
      return code === 4011;
    };
    assert.deepEqual(await closeWith(4011, { reconnectOnClose: policy }), { log: ['close', 'reconnect'], attempts: 1 });
    assert.deepEqual(await closeWith(1012, { reconnectOnClose: policy }), { log: ['close'], attempts: 0 });
    assert.deepEqual(seen, [[4011, 'r'], [1012, 'r']]);
  });

  it('a throwing policy function is logged and means no reconnect', async () => {
    const err = mock.method(console, 'error', () => {});
    const policy = () => {
      throw new Error('bad policy');
    };
    assert.deepEqual(await closeWith(1006, { reconnectOnClose: policy }), { log: ['close'], attempts: 0 });
    assert.equal(err.mock.callCount(), 1);
  });

  for (const reconnectOnClose of [true, false]) {
    it(`original app pattern (reconnect() in the close listener, reconnectOnClose ${reconnectOnClose}): exactly one attempt per close`, async () => {
      const c = await makeClient({ reconnectOnClose });
      const log = record(c, ['reconnect']);
      // The README's close listener, verbatim in spirit.
      c.on('close', (event) => {
        if ([4001, 4010, 4011, 4012].includes(event.code)) c.manualClose();
        else c.reconnect();
      });
      for (let round = 1; round <= 3; round++) {
        FakeWebSocket.last.serverOpen();
        const before = FakeWebSocket.instances.length;
        FakeWebSocket.last.serverClose(1012);
        assert.equal(log.length, round, 'one reconnect event per close');
        tick(3000);
        assert.equal(FakeWebSocket.instances.length, before + 1, 'one connection attempt per close');
        tick(200000);
        assert.equal(FakeWebSocket.instances.length, before + 1);
      }
      FakeWebSocket.last.serverOpen();
      FakeWebSocket.last.serverClose(4012);
      tick(200000);
      assert.equal(log.length, 3);
      assert.equal(FakeWebSocket.instances.length, 4);
    });
  }

  it('manualClose() in a close listener stops the automatic reconnect', async () => {
    const c = await makeClient();
    FakeWebSocket.last.serverOpen();
    c.on('close', () => c.manualClose());
    FakeWebSocket.last.serverClose(1012);
    tick(200000);
    assert.equal(FakeWebSocket.instances.length, 1);
  });
});
