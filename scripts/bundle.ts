/**
 * Builds `dist/metal-bmc.mjs`: the whole CLI (serve, bmc, sim, lab) and its npm dependencies in
 * one ES module that needs Node and nothing beside it. The files the sources read at run time
 * (metal-api's swagger, the DMTF Redfish mockup, xterm.js, the version) are inlined by replacing
 * the four modules that read them with generated ones. Native optional dependencies of ssh2
 * (cpu-features, its sshcrypto binding) and of ws (bufferutil, utf-8-validate) stay external:
 * their packages load them inside try/catch and fall back to JavaScript.
 *
 *   tsx scripts/bundle.ts [OUTFILE]     (npm run build runs it after tsc)
 */
import { build, transformSync, type BuildOptions, type Plugin } from 'esbuild';
import { chmodSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { brotliCompressSync, constants as zlibConstants } from 'node:zlib';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gitCommit } from '../src/build-info.js';

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
 * Start-up: V8 must pre-parse every function of a script before running it, about 1 MB of
 * minified code costing as much as Node's own start. One-shot commands (`bmc command` over IPMI)
 * use none of the npm dependencies, so these are not bundled as code: every CommonJS file from
 * node_modules becomes a stub that compiles its source (`new Function`, as Node's own CommonJS
 * loader wraps a file) the first time it is required; the sources and the inlined files live
 * together in one brotli-compressed blob, decompressed on first use. Only metal-bmc's own modules
 * are parsed at start.
 */
const LAZY_MODULE = 'metal-bmc:lazy';

class LazyStore {
  readonly entries = new Map<string, string>();
  /** set for the pass that writes the bundle; the first pass only collects (no compression) */
  final = false;
  add(id: string, text: string): string {
    this.entries.set(id, text);
    return id;
  }
  module(): string {
    const json = this.final ? JSON.stringify(Object.fromEntries(this.entries)) : '{}';
    const blob = brotliCompressSync(Buffer.from(json), { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: this.final ? 11 : 1, [zlibConstants.BROTLI_PARAM_LGWIN]: 24 } });
    return `import { brotliDecompressSync } from 'node:zlib';
import { createRequire } from 'node:module';
const BLOB = ${JSON.stringify(blob.toString('base64'))};
let table;
const nodeRequire = createRequire(import.meta.url);
export function lazyText(id) {
  table ??= JSON.parse(brotliDecompressSync(Buffer.from(BLOB, 'base64')).toString('utf8'));
  const text = table[id];
  if (text === undefined) throw new Error('metal-bmc bundle: no lazy entry ' + id);
  return text;
}
export function lazyModule(id, module, exports, deps) {
  const require = (spec) => (Object.hasOwn(deps, spec) ? deps[spec]() : nodeRequire(spec));
  require.resolve = nodeRequire.resolve;
  require.cache = nodeRequire.cache;
  const body = new Function('exports', 'require', 'module', '__filename', '__dirname', lazyText(id) + '\\n//# sourceURL=metal-bmc.mjs/' + id);
  body.call(exports, exports, require, module, id, id.replace(/\\/[^/]*$/, ''));
}
`;
  }
}

/** Every CommonJS file of node_modules becomes a stub that compiles it on first require (see LazyStore). */
function lazyDependencies(store: LazyStore): Plugin {
  return {
    name: 'metal-bmc-lazy-dependencies',
    setup(b) {
      b.onResolve({ filter: /^metal-bmc:lazy$/ }, () => ({ path: LAZY_MODULE, namespace: 'metal-bmc-lazy' }));
      b.onLoad({ filter: /.*/, namespace: 'metal-bmc-lazy' }, () => ({ contents: store.module(), loader: 'js', resolveDir: ROOT }));
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

export async function bundle(outfile = DEFAULT_OUTFILE): Promise<{ outfile: string; bytes: number }> {
  // Pass 1 collects the lazy sources and inlined files; pass 2 writes the bundle with all of them in the blob.
  const store = new LazyStore();
  const options = (write: boolean): BuildOptions => ({
    absWorkingDir: ROOT,
    entryPoints: ['src/cli/main.ts'],
    outfile,
    write,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    minify: true,
    external: OPTIONAL_NATIVE,
    // CommonJS dependencies call require() for Node's modules and their optional natives.
    banner: { js: "import { createRequire as __metalBmcRequire } from 'node:module';\nconst require = __metalBmcRequire(import.meta.url);" },
    plugins: [inlineRuntimeFiles(store), lazyDependencies(store)],
    logLevel: 'warning',
    metafile: true,
  });
  await build(options(false));
  const size = store.entries.size;
  store.final = true;
  const result = await build(options(true));
  if (store.entries.size !== size) throw new Error('bundle: the second pass found sources the first did not');
  const missing = Object.keys(INLINED).filter((path) => !(path in (result.metafile?.inputs ?? {})));
  if (missing.length > 0) throw new Error(`bundle: expected to inline ${missing.join(', ')}, but the bundle does not contain them`);
  chmodSync(outfile, 0o755);
  return { outfile, bytes: statSync(outfile).size };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { outfile, bytes } = await bundle(process.argv[2] ? resolve(process.argv[2]) : DEFAULT_OUTFILE);
  process.stdout.write(`bundle: ${relative(process.cwd(), outfile)} (${(bytes / 1024).toFixed(0)} KiB)\n`);
}
