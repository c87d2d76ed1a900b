// Exits 0 when every devDependency of package.json is installed at its pinned version,
// else prints what is missing and exits 2 (used by build.sh and scripts/setup-languages.sh).
import { readFileSync } from 'node:fs';

const here = new URL('.', import.meta.url);
const wanted = JSON.parse(readFileSync(new URL('package.json', here))).devDependencies;
const wrong = [];
for (const [name, version] of Object.entries(wanted)) {
  let have = 'none';
  try {
    have = JSON.parse(readFileSync(new URL(`node_modules/${name}/package.json`, here))).version;
  } catch {}
  if (have !== version) wrong.push(`${name} ${version} (found: ${have})`);
}
if (wrong.length) {
  console.error(`not installed in ${new URL('node_modules', here).pathname}: ${wrong.join(', ')}`);
  process.exit(2);
}
