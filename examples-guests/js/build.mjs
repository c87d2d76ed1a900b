// Builds the JavaScript example handlers into components with componentize-js
// (through its API, not the jco CLI):
//   examples-guests/target/lang/js-gain.wasm
//   examples-guests/target/lang/js-brightness.wasm
//   examples-guests/target/lang/js-parrot.wasm
// An example whose module exports `turns` (`export const turns = exportTurns(…)`) is
// built against the `turn-taking-component` world, the others against
// `handler-component`.
// Usage: node build.mjs [example…]   (default: every example)
import { componentize, version } from '@bytecodealliance/componentize-js';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..', '..');
const out = join(root, 'examples-guests', 'target', 'lang');
const examples = process.argv.length > 2 ? process.argv.slice(2) : ['gain', 'brightness', 'parrot'];

// componentize-js lets the module loader see only the current directory tree, so the
// examples' `../wasmrtc-handler.js` import resolves only when run from here.
process.chdir(here);
await mkdir(out, { recursive: true });
for (const ex of examples) {
  const sourcePath = join(here, ex, `${ex}.js`);
  const source = await readFile(sourcePath, 'utf8');
  const worldName = /^export\s+const\s+turns\s*=/m.test(source)
    ? 'turn-taking-component'
    : 'handler-component';
  const { component } = await componentize({
    sourcePath,
    witPath: join(root, 'wit'),
    worldName,
    // The host links WASI 0.2 without wasi:http; keep console (stderr), random, clocks.
    disableFeatures: ['http', 'fetch-event'],
  });
  const file = join(out, `js-${ex}.wasm`);
  await writeFile(`${file}.tmp`, component);
  await rename(`${file}.tmp`, file);
  console.log(`built ${file} (${worldName}, ${component.length} bytes, componentize-js ${version})`);
}
