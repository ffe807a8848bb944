// A stand-in for a `websocket-cross-server-adapter` 1.0.7 node on the Redis bus, for wsfleet's
// interoperability tests. The original package is not on the npm registry, so this follows the
// written description of its bus code (research spec §5; "A:Lnn" cites the original source as the
// spec does). It has no WebSocket server: "sockets" are fake entries of a local registry, and
// sending a frame to one prints {"deliver": socketId, "frame": "<text>"} on stdout.
//
//   node node.mjs --redis 127.0.0.1:6379[,host:port...] --name orig1 [--json]
//
// Commands: one JSON object per stdin line; "id" (optional) is echoed in the answers.
//   {"cmd":"register","socketId":"o1"}                      setUserSocket (§4.4)
//   {"cmd":"join","ns":"game","roomId":"r1","socketId":"o1"} joinRoom (§6); answered once the
//        ws:<ns> SUBSCRIBE completed on every Redis node (the original does not wait: W4)
//   {"cmd":"broadcast","event":"e","payload":1}              broadcast (§6)
//   {"cmd":"toSocketId","socketId":"u1","event":"e","payload":1}
//   {"cmd":"toSocketIds","socketIds":["u1","u2"],"event":"e","payload":1}
//   {"cmd":"broadcastToRoom","ns":"game","roomId":"r1","event":"e","payload":1,"excludeSocketIds":[]}
//   {"cmd":"listen","event":"ask","reply":<value>}           onCrossServerEvent: prints
//        {"crossEvent": data} and replies with the fixed value
//   {"cmd":"emitCrossServer","event":"ask","payload":1,"options":{...}}  prints
//        {"id":…, "callback": result} for every call of the callback (§5.10)
// Every command is answered with {"id":…, "ok":true} (or {"id":…, "error":"…"}).
// Once all subscriptions are in place it prints {"ready": true}.

import Redis from 'ioredis';
import notepack from 'notepack.io';
import readline from 'node:readline';

const args = process.argv.slice(2);
const arg = (flag) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);
const serverName = arg('--name');
const redisConfig = (arg('--redis') || '').split(',').filter(Boolean).map((a) => {
  const [host, port] = a.split(':');
  return { host, port: Number(port) };
});
const enableRedisDataCompression = !args.includes('--json'); // §5.3: true = notepack
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

// §5.2 channel names with the default prefixes
const bridgePrefix = 'csbp:';
const wsPrefix = 'ws:';
const bridgeChannel = bridgePrefix + 'server_bridge';
const privateChannel = wsPrefix + 'private_socket';
const broadcastChannel = wsPrefix + 'broadcast';
const redisChannels = new Set([bridgeChannel, privateChannel, broadcastChannel]);

// §4.2 internal state
const socketMap = new Map(); // socketId -> fake socket
const rooms = new Map(); // ns -> Map<roomId, Set<socketId>>
const crossServerCallback = {};
const crossServerEventListeners = {};
const redisInstances = [];
let callbackCounter = 0;

const fakeSocket = (socketId) => ({ send: (frame) => out({ deliver: socketId, frame }) });

// §5.1 one publisher and one subscriber (publisher.duplicate()) per Redis node
function initRedisInstance(config) {
  const publisher = new Redis(config);
  const subscriber = publisher.duplicate();
  for (const conn of [publisher, subscriber]) {
    // §5.6 health from connection events
    conn.isHealthy = false;
    for (const ev of ['ready', 'connect']) conn.on(ev, () => { conn.isHealthy = true; });
    for (const ev of ['error', 'close', 'reconnecting']) conn.on(ev, () => { conn.isHealthy = false; });
  }
  if (enableRedisDataCompression) {
    subscriber.on('messageBuffer', (channel, buf) => {
      try { onRedisMessage(channel.toString(), notepack.decode(buf)); }
      catch (err) { out({ error: 'Decompression failed: ' + err.message }); } // W16
    });
  } else {
    subscriber.on('message', (channel, text) => {
      try { onRedisMessage(channel, JSON.parse(text)); }
      catch (err) { out({ error: 'Decompression failed: ' + err.message }); }
    });
  }
  const instance = { publisher, subscriber };
  redisInstances.push(instance);
  return Promise.all([...redisChannels].map((ch) => subscriber.subscribe(ch)));
}

// §5.8 manualSubscribe: on every subscriber; added to redisChannels in the async callback
function manualSubscribe(channel) {
  if (redisChannels.has(channel)) return Promise.resolve();
  return Promise.all(redisInstances.map((i) => i.subscriber.subscribe(channel)))
    .then(() => { redisChannels.add(channel); });
}

// §5.7 random strategy over healthy publishers; §5.11 publish without awaiting
function publishRedisMessage(channel, obj) {
  const healthy = redisInstances.filter((i) => i.publisher.isHealthy);
  if (healthy.length === 0) return false;
  const inst = healthy[Math.floor(Math.random() * healthy.length)];
  const body = enableRedisDataCompression ? notepack.encode(obj) : JSON.stringify(obj);
  inst.publisher.publish(channel, body);
  return true;
}

// §5.5 receive pipeline
function onRedisMessage(channel, message) {
  if (!channel || !message) return;
  if (message.senderServer === serverName || message.data?.senderServer === serverName) return;
  if (channel === bridgeChannel) return handleBridge(message);
  if (channel.startsWith(wsPrefix)) return handleWsRoute(channel, message);
  out({ custom: channel, message });
}

function handleBridge(message) {
  const data = message.data;
  if (typeof data !== 'object' || data === null) throw new Error('bridge data must be an object');
  if (data.isCallback) return handleCallback(data); // replies: matched by callbackId only (§5.4 b)
  const { targetServer } = data;
  if (!Array.isArray(targetServer)) return;
  if (targetServer.length && !targetServer.includes(serverName)) return;
  invokeCrossServerListeners(data.event, data, data.callbackId, data.senderServer);
}

function handleCallback(data) {
  if (!data.senderServer) throw new Error('reply without senderServer');
  const entry = crossServerCallback[data.callbackId];
  if (!entry) return;
  entry.expectedResponses--;
  entry.callbackFunction({ success: true, data, remainingResponses: entry.expectedResponses });
  if (entry.expectedResponses <= 0) {
    clearTimeout(entry.timeoutId);
    delete crossServerCallback[data.callbackId];
  }
}

function handleWsRoute(channel, message) {
  const { data } = message;
  if (typeof data !== 'string') throw new Error('WebSocket route data must be a string');
  const sendTo = (id) => { const s = socketMap.get(id); if (s) s.send(data); };
  if (channel === privateChannel) {
    if (message.socketIds) message.socketIds.filter((id) => typeof id === 'string').forEach(sendTo);
    else if (typeof message.socketId === 'string') sendTo(message.socketId);
  } else if (channel === broadcastChannel) {
    for (const s of socketMap.values()) s.send(data); // every OPEN client
  } else if (message.roomNamespace) {
    const exclude = message.excludeSocketIds || [];
    for (const id of getRoomSocketIds(message.roomNamespace, message.roomId)) {
      if (!exclude.includes(id)) sendTo(id);
    }
  }
}

function getRoomSocketIds(ns, roomId) {
  const nsRooms = rooms.get(ns);
  if (!nsRooms) return new Set();
  if (roomId) return new Set(nsRooms.get(roomId) || []);
  return new Set([...nsRooms.values()].flatMap((s) => [...s]));
}

// §5.10 listener call: fn(data, callback|null); each callback(x) sends one _Cs_Cb_ reply
function invokeCrossServerListeners(event, data, callbackId, senderServer) {
  for (const { fn } of crossServerEventListeners[event] || []) {
    const callback = callbackId
      ? (payload) => emitCrossServer('_Cs_Cb_', { targetServer: [senderServer], callbackId, isCallback: true, payload })
      : null; // no options argument: the reply goes out with targetServer [] (§5.4 b, W2)
    try { fn(data, callback); } catch (err) { out({ error: 'listener threw: ' + err.message }); }
  }
}

// §5.10 callback id: last 6 chars of serverName, Date.now() base36, 4 random base36, counter
function generateCallbackId() {
  const rand = Math.random().toString(36).slice(2, 6).padEnd(4, '0');
  return `${serverName.slice(-6)}-${Date.now().toString(36)}-${rand}-${(++callbackCounter).toString(36)}`;
}

// §5.10 emitCrossServer(event, message, callback?, options?)
function emitCrossServer(event, message, callback, options = {}) {
  if (typeof event !== 'string' || !event) throw new TypeError('event must be a non-empty string');
  if (message === null || message === undefined) throw new TypeError('message is required');
  let targets = options.targetServer ?? [];
  if (typeof targets === 'string' && targets) targets = [targets];
  if (!Array.isArray(targets)) targets = [];
  const timeout = Number.isInteger(options.timeout) && options.timeout > 0 ? options.timeout : 5000;
  let expectedResponses = targets.length === 0
    ? (Number.isInteger(options.expectedResponses) && options.expectedResponses > 0 ? options.expectedResponses : 1)
    : targets.length;
  // §5.4 key order: (a) event, senderServer, payload, targetServer, callbackId;
  // (b) the reply's own keys are spread in, and targetServer is then overwritten in place
  let data = { event, senderServer: serverName };
  if (event === '_Cs_Cb_') data = { ...data, ...message };
  else data.payload = message;
  data.targetServer = targets;
  if (typeof callback === 'function') {
    const callbackId = generateCallbackId();
    data.callbackId = callbackId;
    const timeoutId = setTimeout(() => {
      const entry = crossServerCallback[callbackId];
      delete crossServerCallback[callbackId];
      callback({ success: false, error: 'Cross-server callback timed out.', callbackId, unrespondedCount: entry.expectedResponses });
    }, timeout);
    crossServerCallback[callbackId] = { callbackFunction: callback, targetServers: targets, expectedResponses, timeoutId };
  }
  // local-first: listeners run synchronously before the publish, with the same object
  const isSendingToSelf = (targets.length === 0 && !options.exceptSelf) || targets.includes(serverName);
  if (isSendingToSelf) {
    if (data.isCallback) handleCallback(data);
    else invokeCrossServerListeners(event, data, data.callbackId, serverName);
  }
  if (!(isSendingToSelf && targets.length === 1)) publishRedisMessage(bridgeChannel, { data });
}

// §6 distribution features (the local part sends to fake sockets)
const frameOf = (event, payload) => JSON.stringify({ event, payload }); // §2.4

function broadcast(event, payload) {
  const frame = frameOf(event, payload);
  for (const s of socketMap.values()) s.send(frame);
  publishRedisMessage(broadcastChannel, { data: frame, senderServer: serverName }); // (e)
}

function toSocketId(socketId, event, payload) {
  const frame = frameOf(event, payload);
  const local = socketMap.get(socketId);
  if (local) return local.send(frame);
  publishRedisMessage(privateChannel, { data: frame, socketId, senderServer: serverName }); // (c)
}

function toSocketIds(socketIds, event, payload) {
  const frame = frameOf(event, payload);
  const rest = [];
  for (const id of socketIds.filter((i) => typeof i === 'string')) {
    if (socketMap.has(id)) socketMap.get(id).send(frame);
    else rest.push(id);
  }
  if (rest.length) publishRedisMessage(privateChannel, { data: frame, socketIds: rest, senderServer: serverName }); // (d)
}

function broadcastToRoom(ns, roomId, event, payload, { excludeSocketIds = [] } = {}) {
  const frame = frameOf(event, payload);
  for (const id of rooms.get(ns)?.get(roomId) || []) {
    if (!excludeSocketIds.includes(id) && socketMap.has(id)) socketMap.get(id).send(frame);
  }
  const channel = ns.startsWith(wsPrefix) ? ns : wsPrefix + ns;
  publishRedisMessage(channel, { // (f)
    data: frame, roomNamespace: ns, roomId, senderServer: serverName, excludeSocketIds,
  });
}

function joinRoom(ns, roomId, socketId) {
  if (!rooms.has(ns)) rooms.set(ns, new Map());
  if (!rooms.get(ns).has(roomId)) rooms.get(ns).set(roomId, new Set());
  rooms.get(ns).get(roomId).add(socketId);
  return manualSubscribe(ns.startsWith(wsPrefix) ? ns : wsPrefix + ns);
}

// -- stdin driver ---------------------------------------------------------------------------

async function run(c) {
  switch (c.cmd) {
    case 'register': socketMap.set(c.socketId, fakeSocket(c.socketId)); break;
    case 'join': await joinRoom(c.ns, c.roomId, c.socketId); break;
    case 'broadcast': broadcast(c.event, c.payload); break;
    case 'toSocketId': toSocketId(c.socketId, c.event, c.payload); break;
    case 'toSocketIds': toSocketIds(c.socketIds, c.event, c.payload); break;
    case 'broadcastToRoom':
      broadcastToRoom(c.ns, c.roomId, c.event, c.payload, { excludeSocketIds: c.excludeSocketIds || [] });
      break;
    case 'listen':
      (crossServerEventListeners[c.event] ||= []).push({
        fn: (data, callback) => { out({ crossEvent: data }); if (callback) callback(c.reply); },
        once: false,
      });
      break;
    case 'emitCrossServer':
      emitCrossServer(c.event, c.payload, (result) => out({ id: c.id, callback: result }), c.options || {});
      break;
    default: throw new Error(`unknown command ${c.cmd}`);
  }
}

const input = readline.createInterface({ input: process.stdin });
input.on('line', async (line) => {
  if (!line.trim()) return;
  let c = {};
  try {
    c = JSON.parse(line);
    await run(c);
    out({ id: c.id, ok: true });
  } catch (err) {
    out({ id: c.id, error: String(err?.message ?? err) });
  }
});
input.on('close', () => {
  for (const { publisher, subscriber } of redisInstances) { publisher.disconnect(); subscriber.disconnect(); }
  process.exit(0);
});

if (!serverName || redisConfig.length === 0) {
  out({ error: 'usage: node node.mjs --redis HOST:PORT[,HOST:PORT] --name NAME [--json]' });
  process.exit(2);
}
await Promise.all(redisConfig.map(initRedisInstance));
await Promise.all(redisInstances.map((i) => (i.publisher.status === 'ready' ? null : new Promise((r) => i.publisher.once('ready', r)))));
out({ ready: true, name: serverName, serialization: enableRedisDataCompression ? 'msgpack' : 'json' });
