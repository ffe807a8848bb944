// Builds dist/: ESM + CJS for bundlers and Node, an IIFE for <script> tags, and .d.ts types.
//   node scripts/build.mjs              full build
//   node scripts/build.mjs --if-stale   build only when an output is missing or older than src/
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const outputs = ['index.mjs', 'index.cjs', 'index.d.ts', 'wsfleet-client.js', 'wsfleet-client.min.js'].map((f) => join(dist, f));

if (process.argv.includes('--if-stale')) {
  const newestSource = Math.max(
    ...readdirSync(join(root, 'src')).map((f) => statSync(join(root, 'src', f)).mtimeMs),
    statSync(join(root, 'scripts', 'build.mjs')).mtimeMs,
  );
  if (outputs.every((f) => existsSync(f) && statSync(f).mtimeMs >= newestSource)) process.exit(0);
}

const t0 = Date.now();
rmSync(dist, { recursive: true, force: true });
const banner = `/*! ${pkg.name} v${pkg.version} | MIT */`;
const common = { bundle: true, logLevel: 'warning', banner: { js: banner }, legalComments: 'none' };

await Promise.all([
  build({
    ...common,
    entryPoints: [join(root, 'src/index.ts')],
    outfile: join(dist, 'index.mjs'),
    format: 'esm',
    platform: 'neutral',
    target: 'es2020',
    define: { __BROWSER__: 'false' },
  }),
  build({
    ...common,
    entryPoints: [join(root, 'src/index.ts')],
    outfile: join(dist, 'index.cjs'),
    format: 'cjs',
    platform: 'node',
    target: 'node18',
    define: { __BROWSER__: 'false' },
  }),
  build({
    ...common,
    entryPoints: [join(root, 'src/browser.ts')],
    outfile: join(dist, 'wsfleet-client.js'),
    format: 'iife',
    platform: 'browser',
    target: 'es2018',
    define: { __BROWSER__: 'true' },
  }),
  build({
    ...common,
    entryPoints: [join(root, 'src/browser.ts')],
    outfile: join(dist, 'wsfleet-client.min.js'),
    format: 'iife',
    platform: 'browser',
    target: 'es2018',
    minify: true,
    define: { __BROWSER__: 'true' },
  }),
]);

const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')], {
  stdio: 'inherit',
});
if (tsc.status !== 0) {
  console.error('build: tsc failed');
  process.exit(1);
}
console.log(`build: dist/ written in ${Date.now() - t0} ms`);
