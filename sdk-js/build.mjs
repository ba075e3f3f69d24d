#!/usr/bin/env node
// Build a plugin component with componentize-js (the pinned version):
//
//   node build.mjs app.js --world router -o router.wasm
//
// The app imports the SDK as `edgeward-sdk`; the build stages the app's
// directory and the SDK side by side (componentize-js resolves only relative
// imports inside one directory), puts the SDK's host shim first, and disables
// every WASI feature the gateway does not grant, `fetch-event` included:
// with it on, the component exports `wasi:http/incoming-handler` and is not a
// `router`/`filter`/`scaler` any more. ~12 MB, built in ~10 s.
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const COMPONENTIZE_JS = '0.23.0';
export const WORLDS = ['router', 'filter', 'scaler'];
/** Everything the gateway does not grant; `fetch-event` is the pitfall. */
export const DISABLED = ['stdio', 'random', 'clocks', 'http', 'fetch-event'];

const sdk = dirname(fileURLToPath(import.meta.url));

function findComponentizeJs() {
  const dirs = [
    process.env.EDGEWARD_JS_TOOLS,
    ...(process.env.NODE_PATH ?? '').split(delimiter),
    join(sdk, 'node_modules'),
    join(process.cwd(), 'node_modules'),
  ].filter(Boolean);
  for (const d of dirs) {
    const pkg = join(d, '@bytecodealliance', 'componentize-js', 'package.json');
    if (existsSync(pkg)) return { pkg, version: JSON.parse(readFileSync(pkg, 'utf8')).version };
  }
  throw new Error(
    `componentize-js not found: \`npm ci\` in ${sdk} (pins @bytecodealliance/componentize-js@${COMPONENTIZE_JS}), ` +
      'or point EDGEWARD_JS_TOOLS at a node_modules holding it',
  );
}

// `from 'edgeward-sdk'` / `'edgeward-sdk/x'` → the staged copy, relative to the file.
function rewrite(source, file, stage) {
  const to = relative(dirname(file), join(stage, '_edgeward_sdk')).replaceAll('\\', '/') || '.';
  const base = to.startsWith('.') ? to : `./${to}`;
  return source.replace(/(from\s*|import\s*\(\s*|import\s+)(['"])edgeward-sdk(\/[\w.-]+)?\2/g, (_, kw, q, sub) => {
    const target = sub ? `${sub.slice(1).replace(/\.js$/, '')}.js` : 'index.js';
    return `${kw}${q}${base}/${target}${q}`;
  });
}

async function stageDir(from, to, stage) {
  await mkdir(to, { recursive: true });
  for (const e of await readdir(from, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name.startsWith('.') || e.name.endsWith('.wasm')) continue;
    const src = join(from, e.name);
    const dst = join(to, e.name);
    if (e.isDirectory()) await stageDir(src, dst, stage);
    else if (/\.(m?js)$/.test(e.name)) await writeFile(dst, rewrite(await readFile(src, 'utf8'), dst, stage));
  }
}

export async function build(app, world, out) {
  if (!WORLDS.includes(world)) throw new Error(`unknown world \`${world}\`: one of ${WORLDS.join(', ')}`);
  const { pkg, version } = findComponentizeJs();
  if (version !== COMPONENTIZE_JS) {
    console.error(`warning: componentize-js ${version}; this SDK is tested with ${COMPONENTIZE_JS}`);
  }
  const { componentize } = await import(pathToFileURL(join(dirname(pkg), 'src', 'componentize.js')).href);
  const stage = await mkdtemp(join(tmpdir(), 'edgeward-js-'));
  try {
    await cp(join(sdk, 'src'), join(stage, '_edgeward_sdk'), { recursive: true });
    await stageDir(dirname(resolve(app)), join(stage, 'app'), stage);
    const entry = join(stage, 'entry.js');
    const main = `./app/${basename(app)}`;
    await writeFile(entry, `import './_edgeward_sdk/wasm.js';\nexport * from '${main}';\n`);
    const { component } = await componentize({
      sourcePath: entry,
      witPath: join(sdk, 'wit'),
      worldName: world,
      disableFeatures: DISABLED,
    });
    await writeFile(out, component);
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
  return resolve(out);
}

async function main(argv) {
  let app;
  let world = 'router';
  let out;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--world' || a === '-w') world = argv[++i];
    else if (a === '--out' || a === '-o') out = argv[++i];
    else if (a === '--help' || a === '-h') {
      console.log('usage: node build.mjs APP.js [--world router|filter|scaler] [-o OUT.wasm]');
      return 0;
    } else app = a;
  }
  if (!app) {
    console.error('usage: node build.mjs APP.js [--world router|filter|scaler] [-o OUT.wasm]');
    return 2;
  }
  out ??= app.replace(/\.m?js$/, '') + '.wasm';
  console.log(`built ${await build(app, world, out)}`);
  return 0;
}

// Run as a script, also through a `node_modules/edgeward-sdk` link (node
// resolves the link for import.meta.url but not for argv[1]).
if (process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      console.error(`build failed: ${e && e.message ? e.message : e}`);
      process.exit(1);
    },
  );
}
