/**
 * Builds `dist/metal-bmc.mjs`: the whole CLI (serve, bmc, sim, lab) and its npm dependencies in
 * one ES module that needs Node and nothing beside it. The files the sources read at run time
 * (metal-api's swagger, the DMTF Redfish mockup, xterm.js, the version) are inlined by replacing
 * the four modules that read them with generated ones. Native optional dependencies of ssh2
 * (cpu-features, its sshcrypto binding) and of ws (bufferutil, utf-8-validate) stay external:
 * their packages load them inside try/catch and fall back to JavaScript.
 *
 * Start-up (issue 12 item 6): Node reads, decodes and V8 scans the whole file before it runs, and
 * every ES `import` of one of Node's modules is evaluated at start. So esbuild splits the code
 * into chunks at each dynamic `import()` (one per command, per backend); each chunk becomes a
 * CommonJS-style function, so its `import`s of Node's modules run only when the chunk does. The
 * chunks a one-shot `bmc` command over IPMI needs (HOT_ENTRIES and what they import statically,
 * ~80 KB) are code in the file, compiled through a V8 code cache that the previous run of the
 * same build left behind (scripts/bundle-code-cache.ts); every other chunk, the npm dependencies'
 * sources and the inlined files are one brotli-compressed string, decompressed and compiled when
 * first needed (serve, sim, lab, Redfish, the SSH console).
 *
 *   tsx scripts/bundle.ts [OUTFILE]     (npm run build runs it after tsc)
 */
import { build, transformSync, type Metafile, type Plugin } from 'esbuild';
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { createHash } from 'node:crypto';
import { brotliCompressSync, constants as zlibConstants } from 'node:zlib';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gitCommit } from '../src/build-info.js';
import { CODE_CACHE_RUNTIME } from './bundle-code-cache.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export const DEFAULT_OUTFILE = join(ROOT, 'dist', 'metal-bmc.mjs');

/** The swagger definitions the metal-api stand-in compiles (src/metalapi/standin.ts); the bundle keeps these and what they reference. */
const STANDIN_DEFINITIONS = ['v1.MachineIpmiReports'];

/** Packages required inside try/catch with a JavaScript fallback: left out, loaded if installed next to the bundle. */
const OPTIONAL_NATIVE = ['cpu-features', 'bufferutil', 'utf-8-validate', '*.node'];

const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

/** A comment esbuild keeps (moved to the end of the bundle) carrying a notice the licence of inlined material asks for. */
function legalComment(text: string): string {
  return `/*!\n${text.replaceAll('*/', '* /')}\n*/\n`;
}

function swaggerModule(store: LazyStore): string {
  const swagger = JSON.parse(read('src/metalapi/metal-api.swagger.json')) as { swagger: string; info: unknown; definitions: Record<string, unknown> };
  const keep = new Set<string>();
  const visit = (name: string) => {
    if (keep.has(name)) return;
    if (!(name in swagger.definitions)) throw new Error(`bundle: swagger has no definition ${name}`);
    keep.add(name);
    for (const [, ref] of JSON.stringify(swagger.definitions[name]).matchAll(/"\$ref":"#\/definitions\/([^"]+)"/g)) visit(ref!);
  };
  STANDIN_DEFINITIONS.forEach(visit);
  const doc = { swagger: swagger.swagger, info: swagger.info, definitions: Object.fromEntries([...keep].sort().map((k) => [k, swagger.definitions[k]])) };
  return `${legalComment(`metal-api swagger definitions (${[...keep].join(', ')}) from metal-stack/metal-api spec/metal-api.json, used as\nthe interface description the metal-api stand-in validates against; see src/metalapi/SWAGGER.md.`)}
import { lazyText } from '${LAZY_MODULE}';
const TEXT = ${JSON.stringify(store.add('asset:swagger', JSON.stringify(doc)))};
let doc;
export function defaultSwaggerPath() {
  throw new Error('metal-api swagger: the bundle holds the stand-in\\'s definitions, not the file; pass a path or a document');
}
export function defaultSwagger() {
  return (doc ??= JSON.parse(lazyText(TEXT)));
}
`;
}

function mockupModule(store: LazyStore): string {
  const base = join(ROOT, 'src', 'sim', 'mockup', 'public-rackmount1');
  const files: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name === 'index.json') files[relative(base, dir).split(sep).join('/')] = JSON.stringify(JSON.parse(readFileSync(path, 'utf8')));
    }
  };
  walk(base);
  return `${legalComment(`DMTF Redfish mockup public-rackmount1 (src/sim/mockup/):\n${read('src/sim/mockup/LICENSE-DMTF.md')}`)}
import { lazyText } from '${LAZY_MODULE}';
let files;
export function readMockupFile(path) {
  const FILES = (files ??= JSON.parse(lazyText(${JSON.stringify(store.add('asset:mockup', JSON.stringify(files)))})));
  if (!Object.hasOwn(FILES, path)) throw new Error(\`Redfish mockup: the bundle has no \${path}/index.json\`);
  return FILES[path];
}
`;
}

function xtermModule(store: LazyStore): string {
  const root = join(ROOT, 'node_modules', '@xterm', 'xterm');
  const text = (path: string) => readFileSync(join(root, path), 'utf8');
  return `${legalComment(`@xterm/xterm ${(JSON.parse(text('package.json')) as { version: string }).version}, served by the console page:\n${text('LICENSE')}`)}
import { lazyText } from '${LAZY_MODULE}';
export function xtermAssets() {
  return { js: Buffer.from(lazyText(${JSON.stringify(store.add('asset:xterm.js', text('lib/xterm.js')))})), css: Buffer.from(lazyText(${JSON.stringify(store.add('asset:xterm.css', text('css/xterm.css')))})) };
}
`;
}

function buildInfoModule(): string {
  const version = (JSON.parse(read('package.json')) as { version: string }).version;
  const commit = gitCommit(ROOT);
  return `export function buildInfo() {
  return { version: ${JSON.stringify(version)}, commit: ${JSON.stringify(commit)} };
}
export function gitCommit() {
  return ${JSON.stringify(commit)};
}
`;
}

/**
 * Text kept out of the code V8 parses at start (see the layout in `assemble`): the sources of the
 * npm dependencies' CommonJS files and the inlined files. Modules reach it through the virtual
 * module `metal-bmc:lazy`, which asks the bundle's runtime (`__metalBmc`, see RUNTIME).
 */
const LAZY_MODULE = 'metal-bmc:lazy';

class LazyStore {
  readonly entries = new Map<string, string>();
  add(id: string, text: string): string {
    this.entries.set(id, text);
    return id;
  }
}

/**
 * Every CommonJS file from node_modules becomes a stub that compiles its source (`new Function`,
 * the wrapper Node's CommonJS loader uses) the first time it is required; the source lives in the
 * compressed store, so a command that never requires the package never parses it.
 */
const LAZY_SOURCE = `export const lazyText = (id) => __metalBmc.text(id);
export function lazyModule(id, module, exports, deps) {
  const nodeRequire = __metalBmc.nodeRequire;
  const require = (spec) => (Object.hasOwn(deps, spec) ? deps[spec]() : nodeRequire(spec));
  require.resolve = nodeRequire.resolve;
  require.cache = nodeRequire.cache;
  const body = new Function('exports', 'require', 'module', '__filename', '__dirname', lazyText(id) + '\\n//# sourceURL=metal-bmc.mjs/' + id);
  body.call(exports, exports, require, module, id, id.replace(/\\/[^/]*$/, ''));
}
`;

/** Every CommonJS file of node_modules becomes a stub that compiles it on first require (see LazyStore). */
function lazyDependencies(store: LazyStore): Plugin {
  return {
    name: 'metal-bmc-lazy-dependencies',
    setup(b) {
      b.onResolve({ filter: /^metal-bmc:lazy$/ }, () => ({ path: LAZY_MODULE, namespace: 'metal-bmc-lazy' }));
      b.onLoad({ filter: /.*/, namespace: 'metal-bmc-lazy' }, () => ({ contents: LAZY_SOURCE, loader: 'js', resolveDir: ROOT }));
      b.onLoad({ filter: /[\\/]node_modules[\\/].*\.c?js$/ }, async (args) => {
        const source = readFileSync(args.path, 'utf8').replace(/^#!.*/, '');
        if (args.path.endsWith('.js') && (packageType(args.path) === 'module' || /^\s*(import|export)\b[\s{*]/m.test(source))) return undefined;
        const resolveDir = dirname(args.path);
        const deps: string[] = [];
        for (const spec of new Set([...source.matchAll(/\brequire\s*\(\s*(['"])([^'"\n]+)\1\s*\)/g)].map((m) => m[2]!))) {
          const r = await b.resolve(spec, { kind: 'require-call', resolveDir });
          if (r.errors.length === 0) deps.push(`${JSON.stringify(spec)}: () => require(${JSON.stringify(spec)})`);
        }
        const id = store.add(relative(ROOT, args.path).split(sep).join('/').replace(/^(\.\.\/)+(main\/)?/, ''), minified(args.path, source));
        return {
          contents: `const { lazyModule } = require(${JSON.stringify(LAZY_MODULE)});\nlazyModule(${JSON.stringify(id)}, module, exports, {${deps.join(', ')}});\n`,
          loader: 'js',
          resolveDir,
        };
      });
    },
  };
}

const minifiedSources = new Map<string, string>();
/** The dependency's source minified (names kept: some packages read constructor names), once per build. */
function minified(path: string, source: string): string {
  let text = minifiedSources.get(path);
  if (text === undefined) {
    text = transformSync(source, { loader: 'js', minify: true, keepNames: true, target: 'node20', sourcefile: path }).code;
    minifiedSources.set(path, text);
  }
  return text;
}

const packageTypes = new Map<string, string | undefined>();
/** The "type" of the package.json nearest to `file` ("module" makes .js files ES modules). */
function packageType(file: string): string | undefined {
  const dir = dirname(file);
  if (packageTypes.has(dir)) return packageTypes.get(dir);
  let type: string | undefined;
  try {
    type = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { type?: string }).type ?? 'commonjs';
  } catch {
    type = dirname(dir) === dir ? undefined : packageType(dir);
  }
  packageTypes.set(dir, type);
  return type;
}

/** Source module (relative to the repository) → the generated module that replaces it in the bundle. */
const INLINED: Record<string, (store: LazyStore) => string> = {
  'src/metalapi/swagger-file.ts': swaggerModule,
  'src/sim/redfish/mockup-files.ts': mockupModule,
  'src/console/xterm-assets.ts': xtermModule,
  'src/build-info.ts': buildInfoModule,
};

function inlineRuntimeFiles(store: LazyStore): Plugin {
  return {
    name: 'metal-bmc-inline-runtime-files',
    setup(b) {
      b.onLoad({ filter: /\.ts$/ }, (args) => {
        const generate = INLINED[relative(ROOT, args.path).split(sep).join('/')];
        return generate ? { contents: generate(store), loader: 'js', resolveDir: dirname(args.path) } : undefined;
      });
    },
  };
}

/**
 * The code a one-shot `bmc` command over IPMI runs: these entry modules and every chunk they import
 * statically are plain code in the bundle; all other chunks (serve, sim, lab, Redfish, the SSH
 * console, `--version`) sit in the compressed store and are compiled when first imported.
 */
const HOT_ENTRIES = ['src/cli/main.ts', 'src/cli/bmc.ts', 'src/ipmi/session.ts'];

/** Parameters of every chunk's function: CommonJS's three and the bundle's runtime. */
const CHUNK_PARAMETERS = ['exports', 'require', 'module', '__metalBmc'];

/** Opens the comment at the end of the bundle that holds the store (base64 has no "*"). */
const STORE_MARK = '/*metal-bmc-store:';

/**
 * The bundle's loader: a chunk is a CommonJS-style function that `require`s the chunks it imports
 * ("./chunk-X.js") and Node's modules (taken with process.getBuiltinModule; node:module only for
 * a file, e.g. an optional native package). Hot chunks are the functions of `HOT`, compiled from
 * `HOT_SOURCE` with the code cache; a cold one is compiled from the store, which the loader reads from the comment at
 * the end of its own file and decompresses the first time anything in it is needed (for every
 * command but a one-shot `bmc` over IPMI, at its start), then keeps. `STORE_LENGTH` tells a store
 * of this build from one of a bundle replaced on disk since.
 */
const RUNTIME = `const builtin = (id) => process.getBuiltinModule(id);
const bundleFile = builtin('node:url').fileURLToPath(import.meta.url);
let realRequire;
/** Node's require for this file, for what is not one of Node's modules (optional native packages); node:module is loaded only then. */
const nodeRequire = () => (realRequire ??= builtin('node:module').createRequire(import.meta.url));
const modules = new Map();
let store;
function readStore() {
  const file = bundleFile;
  const text = builtin('node:fs').readFileSync(file, 'latin1');
  const start = text.lastIndexOf(${JSON.stringify(`
${STORE_MARK}`)}) + ${STORE_MARK.length + 1};
  const end = text.indexOf('*/', start);
  if (start <= ${STORE_MARK.length} || end - start !== STORE_LENGTH) throw new Error('metal-bmc bundle: ' + file + ' is not the file this process started from (replaced on disk?); restart it');
  return Buffer.from(text.slice(start, end), 'base64');
}
function openStore() {
  return (store ??= JSON.parse(builtin('node:zlib').brotliDecompressSync(readStore()).toString('utf8')));
}
const runtime = {
  url: import.meta.url,
  get nodeRequire() {
    return nodeRequire();
  },
  text(id) {
    const text = openStore().texts[id];
    if (text === undefined) throw new Error('metal-bmc bundle: no stored text ' + id);
    return text;
  },
};
function requireChunk(spec) {
  return spec.startsWith('./') ? load(spec.slice(2)) : (builtin(spec) ?? nodeRequire()(spec));
}
Object.defineProperties(requireChunk, {
  resolve: { get: () => nodeRequire().resolve },
  cache: { get: () => nodeRequire().cache },
});
function compile(name) {
  const source = openStore().chunks[name];
  if (source === undefined) throw new Error('metal-bmc bundle: no chunk ' + name);
  return builtin('node:vm').compileFunction(source, ${JSON.stringify(CHUNK_PARAMETERS)}, { filename: bundleFile + '/' + name });
}
function load(name) {
  let module = modules.get(name);
  if (module) return module.exports;
  module = { exports: {} };
  modules.set(name, module);
  (HOT[name] ?? compile(name))(module.exports, requireChunk, module, runtime);
  return module.exports;
}
`;

interface Chunk {
  name: string;
  /** the chunk as a CommonJS module body */
  code: string;
  hot: boolean;
}

/** esbuild's ES module chunk → the body of a CommonJS-style function (imports become require, import() a promised require). */
function chunkBody(name: string, esm: string): string {
  const out = transformSync(esm.replace(/^#!.*/, ''), {
    loader: 'js',
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    minify: true,
    supported: { 'dynamic-import': false },
    define: { 'import.meta.url': '__metalBmc.url' },
    sourcefile: name,
  });
  const problems = out.warnings.map((w) => w.text);
  if (problems.length > 0) throw new Error(`bundle: chunk ${name}: ${problems.join('; ')}`);
  return out.code;
}

/** Names of the chunks `entries` need before they run: the chunks that hold them and what those import statically. */
function hotChunks(outputs: Metafile['outputs'], entries: string[]): Set<string> {
  const byPath = new Map(Object.entries(outputs));
  const hot = new Set<string>();
  const visit = (path: string) => {
    if (hot.has(path)) return;
    hot.add(path);
    for (const i of byPath.get(path)?.imports ?? []) if (!i.external && i.kind === 'import-statement') visit(i.path);
  };
  for (const [path, output] of byPath) if (output.entryPoint && entries.includes(output.entryPoint)) visit(path);
  const missing = entries.filter((e) => ![...byPath.values()].some((o) => o.entryPoint === e));
  if (missing.length > 0) throw new Error(`bundle: no chunk starts at ${missing.join(', ')} (no longer imported dynamically?)`);
  for (const path of hot) {
    const npm = Object.keys(byPath.get(path)!.inputs).filter((i) => /(^|[\\/])node_modules[\\/]|^metal-bmc-lazy:/.test(i));
    if (npm.length > 0) throw new Error(`bundle: the IPMI one-shot path (${path}) would load npm code: ${npm.slice(0, 5).join(', ')}`);
  }
  return new Set([...hot].map((p) => basename(p)));
}

/**
 * The bundle file: the hot chunks as one string literal (`HOT_SOURCE`, an object of functions that
 * `compileHot` compiles with the code cache, named by a hash of that source), the loader, the
 * licence notices of everything inlined, and last the store:
 * brotli-compressed, base64, in a comment. Node still reads and decodes it with the rest of the
 * file, but V8 skips a comment faster than it scans a string literal, and keeps no copy of it.
 */
function assemble(chunks: Chunk[], store: LazyStore, legal: string): string {
  const hot = chunks.filter((c) => c.hot);
  const cold = Object.fromEntries(chunks.filter((c) => !c.hot).map((c) => [c.name, c.code]));
  const json = JSON.stringify({ chunks: cold, texts: Object.fromEntries(store.entries) });
  const blob = brotliCompressSync(Buffer.from(json), { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 11, [zlibConstants.BROTLI_PARAM_LGWIN]: 24, [zlibConstants.BROTLI_PARAM_SIZE_HINT]: json.length } });
  const base64 = blob.toString('base64');
  const hotSource = `({\n${hot.map((c) => `${JSON.stringify(c.name)}: function (${CHUNK_PARAMETERS.join(', ')}) {\n${c.code}},\n`).join('')}})`;
  return [
    '#!/usr/bin/env node',
    '// metal-bmc, built by scripts/bundle.ts: the IPMI one-shot path as code, everything else compressed in the comment at the end.',
    `const HOT_SOURCE = ${JSON.stringify(hotSource)};`,
    `const STORE_LENGTH = ${base64.length};`,
    RUNTIME,
    CODE_CACHE_RUNTIME,
    `const HOT = compileHot(HOT_SOURCE, ${JSON.stringify(createHash('sha256').update(hotSource).digest('hex').slice(0, 24))});`,
    "load('main.js');",
    legal,
    `${STORE_MARK}${base64}*/`,
    '',
  ].join('\n');
}

export async function bundle(outfile = DEFAULT_OUTFILE): Promise<{ outfile: string; bytes: number; hotBytes: number }> {
  const store = new LazyStore();
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: { main: 'src/cli/main.ts' },
    outdir: join(dirname(outfile), 'chunks'),
    write: false,
    bundle: true,
    splitting: true,
    chunkNames: 'chunk-[hash]',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    minify: true,
    legalComments: 'external',
    external: OPTIONAL_NATIVE,
    plugins: [inlineRuntimeFiles(store), lazyDependencies(store)],
    logLevel: 'warning',
    metafile: true,
  });
  const missing = Object.keys(INLINED).filter((path) => !(path in result.metafile.inputs));
  if (missing.length > 0) throw new Error(`bundle: expected to inline ${missing.join(', ')}, but the bundle does not contain them`);
  const hot = hotChunks(result.metafile.outputs, HOT_ENTRIES);
  const chunks: Chunk[] = [];
  const legal = new Set<string>();
  for (const file of result.outputFiles) {
    const name = basename(file.path);
    if (name.endsWith('.LEGAL.txt')) legal.add(file.text.trim());
    else chunks.push({ name, code: chunkBody(name, file.text), hot: hot.has(name) });
  }
  if (!chunks.some((c) => c.name === 'main.js' && c.hot)) throw new Error('bundle: no main.js chunk');
  const text = assemble(chunks, store, [...legal].filter(Boolean).join('\n'));
  mkdirSync(dirname(outfile), { recursive: true });
  writeFileSync(outfile, text);
  chmodSync(outfile, 0o755);
  const hotBytes = chunks.filter((c) => c.hot).reduce((n, c) => n + c.code.length, 0);
  return { outfile, bytes: statSync(outfile).size, hotBytes };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { outfile, bytes, hotBytes } = await bundle(process.argv[2] ? resolve(process.argv[2]) : DEFAULT_OUTFILE);
  process.stdout.write(`bundle: ${relative(process.cwd(), outfile)} (${(bytes / 1024).toFixed(0)} KiB, of which ${(hotBytes / 1024).toFixed(0)} KiB code parsed at start)\n`);
}
