// Connection state recovery of the client (dist/index.mjs) against two real `wsfleet serve`
// processes with --recovery on a real redis-server: the client's node is drained (SIGTERM), the
// client reconnects to the other node and gets every room and direct message exactly once, in order.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/server.mjs';
import { redisExe, startRedis, node, until } from '../helpers/recovery.mjs';

const { WebSocketConnector } = await import(new URL('../../dist/index.mjs', import.meta.url).href);

const T = { timeout: 60000 };
let redisServer;

describe('recovery', { skip: !redisExe && 'redis-server is not installed' }, () => {
  const nodes = [];
  const clients = [];
  before(async () => {
    redisServer = await startRedis();
  });
  after(async () => {
    for (const c of clients) c.manualClose();
    for (const n of nodes) await n.stop('SIGKILL');
    if (redisServer) await redisServer.stop();
  });

  it('a drained client reconnects to another node and misses nothing', T, async () => {
    const a = await node(redisServer.port, 'js-a');
    const b = await node(redisServer.port, 'js-b');
    nodes.push(a, b);
    const client = new WebSocketConnector({ url: a.ws, customParams: { id: 'js1' }, recover: true, fastReconnectInterval: 100 });
    clients.push(client);
    const room = [];
    const direct = [];
    const recoveries = [];
    client.on('tick', (p) => room.push(p.n));
    client.on('dm', (p) => direct.push(p.n));
    client.on('recovery', (info) => recoveries.push(info));
    await waitFor(client, 'open');
    await until(() => client.recovery.session !== null);

    const driver = new WebSocketConnector({ url: b.ws, customParams: { id: 'driver' } });
    clients.push(driver);
    await waitFor(driver, 'open');
    let sent = 0;
    let stop = false;
    const pump = (async () => {
      while (!stop) {
        await driver.emitWithPromise('pub', { n: sent, to: 'js1' });
        sent += 1;
      }
    })();
    await until(() => room.length > 20 && direct.length > 20);
    client.options.url = b.ws; // the balancer's job: new connections go to a ready node
    await a.stop('SIGTERM');
    await until(() => recoveries.length === 1);
    assert.equal(recoveries[0].recovered, true, JSON.stringify(recoveries[0]));
    const count = room.length;
    await until(() => room.length > count + 20);
    stop = true;
    await pump;
    await until(() => room.length >= sent && direct.length >= sent);
    assert.deepEqual(room, [...Array(sent).keys()]);
    assert.deepEqual(direct, [...Array(sent).keys()]);
  });
});
