// A real redis-server and `wsfleet serve --recovery` nodes (tests/fixtures/recovery_app.py) for
// the recovery tests of the client, in Node.js and in Chromium.
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
export let redisExe;
try {
  redisExe = execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim();
} catch {
  redisExe = '';
}

function freePort() {
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

export async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'wsf-redis-'));
  const child = spawn(redisExe, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const exited = new Promise((r) => child.once('exit', r));
  // ready when it accepts a connection
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((r) => {
      const c = createServer().listen(port, '127.0.0.1');
      c.once('listening', () => c.close(() => r(false)));
      c.once('error', () => r(true));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { port, async stop() { child.kill('SIGKILL'); await exited; } };
}

export const node = (redisPort, name) =>
  startServer({
    cwd: repo,
    env: { PYTHONPATH: repo },
    args: ['--redis', `127.0.0.1:${redisPort}`, '--server-name', name, '--recovery', 'true',
      '--app', 'tests.fixtures.recovery_app:setup', '--drain-timeout', '1'],
  });

export const until = async (pred, ms = 15000) => {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

