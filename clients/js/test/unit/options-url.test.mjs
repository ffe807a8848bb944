import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { lib, FakeWebSocket, setup, teardown, makeClient, tick, flush } from '../helpers/unit.mjs';

const { WebSocketConnector, WsfleetClient, buildUrl, DEFAULT_OPTIONS } = lib;

describe('options', () => {
  beforeEach(setup);
  afterEach(teardown);

  it('has the defaults of the original client (spec 3.1)', async () => {
    const c = await makeClient();
    const o = c.options;
    assert.equal(o.url, 'ws://test.local/ws');
    assert.equal(o.pingInterval, 10000);
    assert.equal(o.pongTimeout, 2000);
    assert.equal(o.fastReconnectThreshold, 3);
    assert.equal(o.fastReconnectInterval, 3000);
    assert.equal(o.reconnectMaxInterval, 120000);
    assert.equal(o.pingMsg, '');
    assert.equal(o.callbackTimeout, 5000);
    assert.equal(o.repeatLimit, null);
    assert.equal(o.pendingTimeout, 100);
    assert.deepEqual(o.customParams, {});
    assert.equal(o.reconnectOnClose, true);
    assert.equal(DEFAULT_OPTIONS.pingInterval, 10000);
    c.manualClose();
  });

  it('an option given as undefined keeps its default', async () => {
    const c = await makeClient({ pingInterval: undefined, callbackTimeout: undefined });
    assert.equal(c.options.pingInterval, 10000);
    assert.equal(c.options.callbackTimeout, 5000);
    c.manualClose();
  });

  it('requires a url', () => {
    assert.throws(() => new WebSocketConnector({}), TypeError);
    assert.throws(() => new WebSocketConnector({ url: '' }), TypeError);
  });

  it('WsfleetClient is the same class', () => {
    assert.equal(WsfleetClient, WebSocketConnector);
    assert.equal(lib.default, WebSocketConnector);
  });

  it('connects right after the constructor, so listeners added synchronously see open', async () => {
    const c = new WebSocketConnector({ url: 'ws://test.local/ws', WebSocket: FakeWebSocket });
    let opened = 0;
    c.on('open', () => opened++);
    await flush();
    assert.equal(FakeWebSocket.instances.length, 1);
    FakeWebSocket.last.serverOpen();
    assert.equal(opened, 1);
    assert.equal(c.readyState, 1);
    c.manualClose();
    assert.equal(c.readyState, 3);
  });
});

describe('URL parameter injection (spec 2.6)', () => {
  beforeEach(setup);
  afterEach(teardown);

  it('reproduces the observed example exactly', () => {
    assert.equal(
      buildUrl('ws://h/chat?x=1', { id: 'u1', token: 'a b&c=d', n: 5, arr: [1, 2], nul: null }),
      'ws://h/chat?x=1&id=u1&token=a+b%26c%3Dd&n=5&arr=1%2C2&nul=null',
    );
  });

  it('uses ? when the URL has no query, & when it has one', () => {
    assert.equal(buildUrl('ws://h/ws', { id: 'u1', name: 'Sam' }), 'ws://h/ws?id=u1&name=Sam');
    assert.equal(buildUrl('ws://h/ws?', { id: 'u1' }), 'ws://h/ws?&id=u1');
  });

  it('applies String() to every value (undefined becomes "undefined", objects "[object Object]")', () => {
    assert.equal(buildUrl('ws://h/', { u: undefined, t: true, o: {} }), 'ws://h/?u=undefined&t=true&o=%5Bobject+Object%5D');
  });

  it('ignores arrays, non-objects and empty objects', () => {
    assert.equal(buildUrl('ws://h/', ['a']), 'ws://h/');
    assert.equal(buildUrl('ws://h/', 'id=1'), 'ws://h/');
    assert.equal(buildUrl('ws://h/', null), 'ws://h/');
    assert.equal(buildUrl('ws://h/', {}), 'ws://h/');
  });

  it('keeps a #fragment at the end', () => {
    assert.equal(buildUrl('ws://h/ws#top', { a: 1 }), 'ws://h/ws?a=1#top');
  });

  it('rebuilds the URL from the original url on every reconnect (nothing accumulates)', async () => {
    const c = await makeClient({ customParams: { id: 'u1', name: 'Sam' } });
    assert.equal(FakeWebSocket.last.url, 'ws://test.local/ws?id=u1&name=Sam');
    FakeWebSocket.last.serverOpen();
    c.options.customParams.token = 't2'; // e.g. a refreshed token
    FakeWebSocket.last.serverClose(1012, 'restart');
    tick(3000);
    assert.equal(FakeWebSocket.instances.length, 2);
    assert.equal(FakeWebSocket.last.url, 'ws://test.local/ws?id=u1&name=Sam&token=t2');
    c.manualClose();
  });
});
