// Builds the console into OUTDIR (argument; deploy/setup.sh passes
// $build/console): src/main.js and src/style.css bundled and minified by
// esbuild into assets/ under content-hashed names (served as immutable),
// and index.html pointing at them. Never writes into the source tree.
import * as esbuild from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';

const out = process.argv[2];
if (!out) {
  console.error('usage: node build.mjs OUTDIR');
  process.exit(2);
}
const dir = resolve(out);
const src = new URL('./src/', import.meta.url).pathname;
rmSync(join(dir, 'assets'), { recursive: true, force: true });
mkdirSync(join(dir, 'assets'), { recursive: true });
const result = await esbuild.build({
  entryPoints: [join(src, 'main.js'), join(src, 'style.css')],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020'],
  outdir: join(dir, 'assets'),
  entryNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'linked',
  logLevel: 'warning',
});
const names = Object.keys(result.metafile.outputs).map((p) => basename(p));
const js = names.find((n) => /^main-.*\.js$/.test(n));
const css = names.find((n) => /^style-.*\.css$/.test(n));
const html = readFileSync(join(src, 'index.html'), 'utf8')
  .replace('%MAIN_JS%', `/assets/${js}`)
  .replace('%STYLE_CSS%', `/assets/${css}`);
writeFileSync(join(dir, 'index.html'), html);
console.log(`console built into ${dir}: ${names.join(' ')}`);
