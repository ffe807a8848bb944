// The shipped files: size budget of the <script> build, its globals, ESM/CJS exports, types.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { createRequire } from 'node:module';
import vm from 'node:vm';

const dist = (f) => new URL('../../dist/' + f, import.meta.url);
const BUDGET = 5 * 1024;

describe('bundles', () => {
  it(`browser build is at most ${BUDGET} bytes minified+gzipped`, (t) => {
    const code = readFileSync(dist('wsfleet-client.min.js'));
    const gz = gzipSync(code, { level: 9 }).length;
    t.diagnostic(`wsfleet-client.min.js: ${code.length} bytes, ${gz} bytes gzipped (budget ${BUDGET})`);
    assert.ok(gz <= BUDGET, `gzipped size ${gz} exceeds ${BUDGET}`);
  });

  it('the <script> build defines the globals WebSocketConnector and WsfleetClient, without ws fallback code', () => {
    const code = readFileSync(dist('wsfleet-client.min.js'), 'utf8');
    assert.ok(!code.includes('import('), 'no dynamic import in the browser build');
    const sandbox = { URLSearchParams, console, setTimeout, clearTimeout, Promise };
    sandbox.globalThis = sandbox;
    vm.createContext(sandbox);
    vm.runInContext(code, sandbox);
    assert.equal(typeof sandbox.WebSocketConnector, 'function');
    assert.equal(sandbox.WsfleetClient, sandbox.WebSocketConnector);
  });

  it('ESM and CommonJS entry points export the class and the alias', async () => {
    const esm = await import(dist('index.mjs').href);
    assert.equal(esm.WsfleetClient, esm.WebSocketConnector);
    const cjs = createRequire(import.meta.url)(dist('index.cjs').pathname);
    assert.equal(typeof cjs.WebSocketConnector, 'function');
    assert.equal(cjs.WsfleetClient, cjs.WebSocketConnector);
  });

  it('ships type declarations', () => {
    assert.ok(existsSync(dist('index.d.ts')));
    const types = readFileSync(dist('connector.d.ts'), 'utf8');
    for (const name of ['class WebSocketConnector', 'emitWithPromise', 'onServer', 'reconnectOnClose', 'WsfleetClient']) {
      assert.ok(types.includes(name), `d.ts mentions ${name}`);
    }
  });
});
