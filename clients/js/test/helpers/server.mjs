// Starts and stops a real `wsfleet serve` process for the integration and browser tests.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const WSFLEET_BIN = resolve(pkgDir, process.env.WSFLEET_BIN || '../../.venv/bin/wsfleet');
const LISTENING = /listening on http:\/\/127\.0\.0\.1:(\d+)/;

/**
 * Run `$WSFLEET_BIN serve --host 127.0.0.1 --port <port>` and resolve once it prints
 * "listening on http://127.0.0.1:<port>" on stdout.
 */
export function startServer({ port = 0, timeoutMs = 20000, env = {}, args = [], cwd } = {}) {
  if (!existsSync(WSFLEET_BIN)) {
    return Promise.reject(new Error(`wsfleet server not found at ${WSFLEET_BIN}: install it (make) or set WSFLEET_BIN`));
  }
  const child = spawn(WSFLEET_BIN, ['serve', '--host', '127.0.0.1', '--port', String(port), '--internal-port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd,
    env: { ...process.env, ...env },
  });
  let out = '';
  let err = '';
  const exited = new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })));
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`wsfleet serve printed no "listening on" line within ${timeoutMs} ms\nstdout: ${out}\nstderr: ${err}`));
    }, timeoutMs);
    child.stderr.setEncoding('utf8').on('data', (d) => {
      err += d;
    });
    child.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      const m = LISTENING.exec(out);
      if (m && timer) {
        clearTimeout(timer);
        const p = Number(m[1]);
        resolvePromise({
          pid: child.pid,
          port: p,
          http: `http://127.0.0.1:${p}`,
          ws: `ws://127.0.0.1:${p}/ws`,
          output: () => ({ stdout: out, stderr: err }),
          exited,
          /** Stop the process we started (by pid) and wait until it has exited. */
          async stop(signal = 'SIGTERM', graceMs = 5000) {
            if (child.exitCode !== null || child.signalCode !== null) return exited;
            process.kill(child.pid, signal);
            const t = setTimeout(() => child.exitCode === null && child.signalCode === null && process.kill(child.pid, 'SIGKILL'), graceMs);
            const r = await exited;
            clearTimeout(t);
            return r;
          },
        });
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`wsfleet serve exited (code ${code}, signal ${signal}) before listening\nstdout: ${out}\nstderr: ${err}`));
    });
  });
}

/** Resolve with the argument of the next `event` on `client` (matching `filter`), or reject after `ms`. */
export function waitFor(client, event, { ms = 5000, filter = () => true, server = false } = {}) {
  return new Promise((res, rej) => {
    const tag = `waitFor:${event}:${Math.random()}`;
    const t = setTimeout(() => {
      off();
      rej(new Error(`timed out after ${ms} ms waiting for "${event}"`));
    }, ms);
    const off = () => (server ? client.offServer(event, tag) : client.off(event, tag));
    const fn = (arg) => {
      if (!filter(arg)) return;
      clearTimeout(t);
      off();
      res(arg);
    };
    if (server) client.onServer(event, fn, tag);
    else client.on(event, fn, tag);
  });
}

/** Collect every event of the given names, in order, as [name, arg]. */
export function recorder(client, names) {
  const log = [];
  for (const n of names) client.on(n, (a) => log.push([n, a]));
  return log;
}
