// A real redis-server on a free loopback port, for the browser tests of a two-node fleet.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const REDIS = process.env.REDIS_SERVER || '/usr/bin/redis-server';

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** Start redis-server and resolve once it accepts connections; `stop()` kills exactly it. */
export async function startRedis() {
  if (!existsSync(REDIS)) throw new Error(`redis-server is missing at ${REDIS}: install it (apt-get install redis-server) or set REDIS_SERVER.`);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'wsfleet-js-redis-'));
  const child = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((res) => child.once('exit', res));
  await new Promise((res, rej) => {
    let out = '';
    const timer = setTimeout(() => rej(new Error(`redis-server did not start: ${out}`)), 10000);
    child.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      if (/Ready to accept connections/.test(out)) {
        clearTimeout(timer);
        res();
      }
    });
    child.once('exit', (code) => rej(new Error(`redis-server exited (${code}): ${out}`)));
  });
  return {
    address: `127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The internal port a `wsfleet serve` started by helpers/server.mjs printed. */
export function internalUrl(node) {
  const m = /internal port on (http:\/\/127\.0\.0\.1:\d+)/.exec(node.output().stdout);
  if (!m) throw new Error('this node printed no internal port');
  return m[1];
}
