// One benchmark node of the Node.js original (`websocket-cross-server-adapter`), run from its
// installed package, with the behaviour of bench/servers.py's wsfleet node, so that the same Go
// load generator drives both (python -m bench.original):
//
//   node bench/original_node.mjs --module DIR --port 0 [--name n1 --redis 127.0.0.1:6379]
//
// - a connection with ?id=<socket id> is registered under it (setUserSocket);
// - "echo" acks its payload; "trigger" {count, size} broadcasts `count` "tick" events
//   {ts: <realtime ns>, seq, pad} in one synchronous loop (the original's own pattern);
// - "dm" {to, ...}: toSocketId(to, "dm", payload) (S4);
// - the cross-server event "bench.rpc" answers with its message's payload, and "rpc"
//   {callers, duration, nodes, size} runs `callers` closed loops of
//   emitCrossServerWithPromise("bench.rpc", msg, {expectedResponses: nodes}) for `duration` s
//   after a 1 s warm-up, and acks with the figures bench/servers.py's "rpc" returns (S5).
//
// Prints "LISTENING <port> node" once it accepts connections; exits on SIGTERM/SIGINT.
// Nothing of the original is copied here: DIR is the installed package, loaded as it is.

import { createRequire } from 'node:module';
import path from 'node:path';

const args = process.argv.slice(2);
const arg = (flag, fallback) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : fallback);
const moduleDir = arg('--module');
const port = Number(arg('--port', '0'));
const name = arg('--name', `bench-${process.pid}`);
const redis = (arg('--redis', '') || '').split(',').filter(Boolean).map((a) => {
  const [host, p] = a.split(':');
  return { host, port: Number(p) };
});
if (!moduleDir) {
  process.stderr.write('usage: node original_node.mjs --module DIR [--port N] [--name N --redis H:P]\n');
  process.exit(2);
}

const require = createRequire(import.meta.url);
const { WebSocketCrossServerAdapter } = require(path.resolve(moduleDir));

const RPC_EVENT = 'bench.rpc';
const nowNs = () => Math.round((performance.timeOrigin + performance.now()) * 1e6);
const pct = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] / 1e6 : null);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const node = new WebSocketCrossServerAdapter({
  serverName: name,
  redisConfig: redis,
  wsOptions: { port, host: '127.0.0.1' },
});

node.onWebSocketEvent('connection', (socket, req) => {
  const { params } = node.parseWsRequestParams(req);
  if (!params.id) {
    socket.close(4011, 'no id');
    return;
  }
  socket.benchId = String(params.id);
  node.setUserSocket(socket.benchId, socket);
});

node.onWebSocketEvent('close', (socket) => {
  if (socket.benchId) node.removeUserSocket(socket.benchId);
});

node.onWebSocketEvent('echo', (socket, data, callback) => {
  if (callback) callback(data);
});

node.onWebSocketEvent('trigger', (socket, data, callback) => {
  const count = Math.max(1, Math.min(Number(data?.count ?? 200), 100000));
  const size = Math.max(1, Math.min(Number(data?.size ?? 100), 65536));
  const base = JSON.stringify({ event: 'tick', payload: { ts: nowNs(), seq: count - 1, pad: '' } });
  const pad = 'x'.repeat(Math.max(0, size - base.length));
  for (let seq = 0; seq < count; seq++) node.broadcast('tick', { ts: nowNs(), seq, pad });
  if (callback) callback({ sent: count });
});

node.onWebSocketEvent('dm', (socket, data) => {
  if (data && typeof data.to === 'string') node.toSocketId(data.to, 'dm', data);
});

node.onCrossServerEvent(RPC_EVENT, (data, callback) => {
  if (callback) callback(data?.payload ?? null);
});

node.onWebSocketEvent('rpc', async (socket, data, callback) => {
  const callers = Math.max(1, Math.min(Number(data?.callers ?? 32), 1024));
  const duration = Math.max(0.1, Math.min(Number(data?.duration ?? 10), 120));
  const nodes = Math.max(1, Number(data?.nodes ?? 3));
  const message = { pad: 'x'.repeat(Math.max(0, Number(data?.size ?? 100) - 40)) };
  const call = (timeout) => node.emitCrossServerWithPromise(RPC_EVENT, message, { expectedResponses: nodes, timeout });
  const answered = (res) => res.success && Object.keys(res.responses || {}).length >= nodes;
  const deadline = Date.now() + 20000;
  while (!answered(await call(2000))) { // until every node listens on Redis and answers
    if (Date.now() > deadline) {
      if (callback) callback({ error: `the ${nodes} nodes do not all answer` });
      return;
    }
    await sleep(100);
  }
  const start = performance.now() + 1000;
  const end = start + duration * 1000;
  const lat = [];
  let failures = 0;
  let short = 0;
  const caller = async () => {
    let t0;
    while ((t0 = performance.now()) < end) {
      const res = await call(5000);
      const t1 = performance.now();
      if (t0 < start || t1 > end) continue;
      if (!res.success) failures++;
      else if (Object.keys(res.responses).length < nodes) short++;
      else lat.push((t1 - t0) * 1e6);
    }
  };
  const loops = Array.from({ length: callers }, caller);
  await sleep(Math.max(0, start - performance.now()));
  const cpu0 = process.cpuUsage();
  await sleep(Math.max(0, end - performance.now()));
  const cpu = process.cpuUsage(cpu0);
  await Promise.all(loops);
  lat.sort((a, b) => a - b);
  if (callback) {
    callback({
      calls: lat.length,
      calls_per_s: lat.length / duration,
      p50_ms: pct(lat, 0.5),
      p99_ms: pct(lat, 0.99),
      max_ms: lat.length ? lat[lat.length - 1] / 1e6 : null,
      failures,
      short_answers: short,
      callers,
      duration_s: duration,
      nodes,
      caller_node_cpu_s: (cpu.user + cpu.system) / 1e6,
    });
  }
});

node.getWss().on('listening', () => {
  process.stdout.write(`LISTENING ${node.getWss().address().port} node\n`);
});

const stop = () => {
  node.getWss().close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
