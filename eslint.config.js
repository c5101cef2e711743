import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Layers (docs/architecture.md, "Layers"): what each directory of src/ may import besides itself
 * and the shared foundation (errors.ts, deadline.ts, log.ts, build-info.ts, heap-growth.ts, terminal-text.ts). Every other
 * directory of src/ and daemon.ts is refused, static and dynamic imports alike, so an upward
 * import fails `eslint` (test/unit/layers.test.ts shows it does).
 */
const SRC_DIRS = ['bus', 'cli', 'commands', 'config', 'console', 'ipmi', 'lab', 'leases', 'metalapi', 'net', 'ops', 'outband', 'parts', 'redfish', 'report', 'sim', 'status'];
const BOTTOM = ['config', 'ipmi', 'leases', 'metalapi', 'net', 'redfish'];
const MAY_IMPORT = {
  // the bottom: protocol stacks, lease parsers, metal-api, configuration and address helpers
  net: [],
  config: ['net'],
  leases: ['net'],
  ipmi: ['net'],
  redfish: ['net'],
  metalapi: ['net'],
  // the facade joins the protocols
  outband: BOTTOM,
  // the users of the facade know neither each other nor the wiring
  report: [...BOTTOM, 'outband'],
  commands: [...BOTTOM, 'outband'],
  console: [...BOTTOM, 'outband'],
  bus: [...BOTTOM],
  ops: [...BOTTOM],
  // the operator's view of every BMC: fed by report hooks, served behind the console's authentication
  status: [...BOTTOM, 'report', 'console'],
  // the simulator imitates BMCs: IPMI codecs (see below), lease files and addresses, nothing of the daemon
  sim: ['config', 'ipmi', 'leases', 'net'],
};
/** the wiring: daemon.ts starts leases, reporting and the operations listener; parts join the rest */
const DAEMON_MAY_IMPORT = [...BOTTOM, 'outband', 'report', 'ops', 'status'];
const PARTS_MAY_IMPORT = [...BOTTOM, 'outband', 'report', 'ops', 'commands', 'console', 'bus', 'status', 'daemon'];
/** the IPMI session engine; the pure codecs and the simulator never import it (commands.ts holds command codecs the simulator uses, and imports the session as a type only) */
const IPMI_ENGINE = ['session', 'exchange', 'transport', 'handshake', 'sol'];
const IPMI_CODECS = ['rmcp', 'lan', 'message', 'rakp', 'cipher', 'sol-packet', 'fru', 'guid'];
const SOCKET_MODULES = ['node:dgram', 'node:net', 'node:tls', 'node:http', 'node:https', 'undici'];

const alternatives = (names) => names.map((n) => n.replace(/[.-]/g, '\\$&')).join('|');

/**
 * One layer's rules: `refused` directories (and daemon.ts unless allowed) by relative path from
 * any depth below src/, plus `refusedSources` as exact module names or regular expressions.
 * `no-restricted-imports` sees import and export declarations; `no-restricted-syntax` adds
 * `import()` (the facade and the CLI load modules on demand).
 */
function layer(files, { refusedDirs = [], refuseDaemon = true, refusedPatterns = [], refusedPaths = [], why }) {
  const regexes = [];
  const targets = [...refusedDirs, ...(refuseDaemon ? ['daemon'] : [])];
  // `../outband/types.js` from any depth, and `../daemon.js`
  if (targets.length > 0) regexes.push(`^(\\.\\./)+(${alternatives(targets)})(/|\\.js$)`);
  regexes.push(...refusedPatterns);
  const sourceRegex = (r) => r.replace(/\//g, '\\u002F'); // esquery's regex literal cannot hold a slash
  return {
    files,
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: refusedPaths.map((name) => ({ name, message: why })),
          patterns: regexes.map((regex) => ({ regex, message: why })),
        },
      ],
      'no-restricted-syntax': [
        'error',
        ...regexes.map((r) => ({ selector: `ImportExpression[source.value=/${sourceRegex(r)}/]`, message: why })),
        ...refusedPaths.map((name) => ({ selector: `ImportExpression[source.value='${name}']`, message: why })),
      ],
    },
  };
}

const others = (dir, allowed) => SRC_DIRS.filter((d) => d !== dir && !allowed.includes(d));

const layerRules = [
  // the foundation imports no directory of src/
  layer(['src/errors.ts', 'src/deadline.ts', 'src/log.ts', 'src/build-info.ts', 'src/heap-growth.ts', 'src/worker-args.ts', 'src/worker-entry.ts'], {
    refusedPatterns: [`^\\./(${alternatives(SRC_DIRS)})/`, '^\\./daemon\\.js$'],
    why: 'errors, deadline, log, build-info, heap-growth, terminal-text and the worker entry are the foundation every layer imports; they import no layer (docs/architecture.md, "Layers")',
  }),
  ...Object.entries(MAY_IMPORT).map(([dir, allowed]) =>
    layer([`src/${dir}/**/*.ts`], {
      refusedDirs: others(dir, allowed),
      ...(dir === 'sim' ? { refusedPatterns: [`^(\\.\\./)+ipmi/(${alternatives(IPMI_ENGINE)})\\.js$`] } : {}),
      why: `src/${dir} may import only ${allowed.length > 0 ? allowed.map((d) => `src/${d}`).join(', ') : 'the foundation'} (docs/architecture.md, "Layers")`,
    }),
  ),
  // the IPMI codecs are pure functions over Buffer: no session engine, no sockets
  layer(
    IPMI_CODECS.map((f) => `src/ipmi/${f}.ts`),
    {
      refusedDirs: others('ipmi', MAY_IMPORT.ipmi),
      refusedPatterns: [`^\\./(${alternatives([...IPMI_ENGINE, 'commands'])})\\.js$`],
      refusedPaths: SOCKET_MODULES,
      why: 'an IPMI codec is a pure function over Buffer: it imports no session engine, no socket and no layer above (docs/architecture.md, "Layers")',
    },
  ),
  layer(['src/daemon.ts'], {
    refusedPatterns: [`^\\./(${alternatives(others('daemon', DAEMON_MAY_IMPORT))})/`],
    refuseDaemon: false,
    why: 'daemon.ts starts leases, reporting and the operations listener; commands, console and bus come in through src/parts (docs/architecture.md, "Layers")',
  }),
  layer(['src/parts/**/*.ts'], {
    refusedDirs: others('parts', PARTS_MAY_IMPORT),
    refuseDaemon: false,
    why: 'src/parts wires the daemon; the CLI, the lab and the simulator are above or beside it (docs/architecture.md, "Layers")',
  }),
];

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  ...layerRules,
);
