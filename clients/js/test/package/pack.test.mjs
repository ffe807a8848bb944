// The package as a user gets it: `npm pack` the client, install the tarball into a clean project
// (nothing else from this checkout), and use it against a real `wsfleet serve` from Node (ESM and
// CommonJS) and from headless Chromium (the `wsfleet-client/browser` bundle).
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../helpers/server.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const pkgDir = fileURLToPath(new URL('../../', import.meta.url));
const T = { timeout: 120000 };

let server;
let project;

before(async () => {
  server = await startServer();
  project = mkdtempSync(join(tmpdir(), 'wsfleet-client-pack-'));
  const packed = JSON.parse(
    execFileSync('npm', ['pack', '--json', '--pack-destination', project], { cwd: pkgDir, encoding: 'utf8' }),
  );
  const tarball = join(project, packed[0].filename);
  const files = packed[0].files.map((f) => f.path);
  assert.ok(files.includes('dist/index.mjs') && files.includes('dist/wsfleet-client.min.js'), files.join(' '));
  assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('test/')), files.join(' '));
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'clean-app', version: '1.0.0', private: true }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', tarball], {
    cwd: project,
    encoding: 'utf8',
  });
});

after(async () => {
  if (server) await server.stop();
  if (project) rmSync(project, { recursive: true, force: true });
});

function runNode(file, source) {
  writeFileSync(join(project, file), source);
  const child = spawn(process.execPath, [file, server.ws], { cwd: project, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  return new Promise((res) => child.once('exit', (code) => res({ code, out, err })));
}

const body = `
const c = new WebSocketConnector({ url: process.argv[2], customParams: { id: 'packed' } });
const timer = setTimeout(() => { console.log('timeout'); process.exit(2); }, 10000);
c.on('open', async () => {
  const echo = await c.emitWithPromise('echo', { from: 'the packed client' });
  console.log(JSON.stringify(echo));
  clearTimeout(timer);
  c.manualClose();
});
`;

it('Node imports the installed package (ESM) and talks to the server', T, async () => {
  const r = await runNode('esm.mjs', `import { WebSocketConnector } from 'wsfleet-client';\n${body}`);
  assert.equal(r.code, 0, r.out + r.err);
  assert.deepEqual(JSON.parse(r.out.trim()), { success: true, data: { from: 'the packed client' } });
});

it('Node requires the installed package (CommonJS) and talks to the server', T, async () => {
  const r = await runNode('cjs.cjs', `const { WebSocketConnector } = require('wsfleet-client');\n${body}`);
  assert.equal(r.code, 0, r.out + r.err);
  assert.deepEqual(JSON.parse(r.out.trim()), { success: true, data: { from: 'the packed client' } });
});

it('Chromium loads the installed browser bundle and talks to the server', T, async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium is missing at ${CHROMIUM}: install it with "apt-get install chromium" (or set CHROMIUM_PATH).`);
  }
  const bundle = readFileSync(join(project, 'node_modules/wsfleet-client/dist/wsfleet-client.min.js'), 'utf8');
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(server.http + '/'); // any page of the server's origin
    await page.addScriptTag({ content: bundle });
    const echo = await page.evaluate(
      (url) =>
        new Promise((resolve, reject) => {
          const c = new WsfleetClient({ url, customParams: { id: 'packed-browser' } });
          setTimeout(() => reject(new Error('no echo within 10 s')), 10000);
          c.on('open', async () => {
            resolve(await c.emitWithPromise('echo', { from: 'chromium' }));
            c.manualClose();
          });
        }),
      server.ws,
    );
    assert.deepEqual(echo, { success: true, data: { from: 'chromium' } });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
