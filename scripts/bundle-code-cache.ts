/**
 * The bundle's V8 code cache for its hot chunks (see scripts/bundle.ts): the code a one-shot `bmc`
 * command runs is compiled from a string through `vm.Script`, with the bytecode a previous run of
 * the same build left behind as `cachedData`. V8 then neither parses nor compiles the functions
 * that run had compiled (the top level of every chunk and every function it called, lazily
 * compiled ones included: the cache is made at exit). Node 22's `module.enableCompileCache()`
 * cannot do this for the bundle: it covers modules loaded after the call, and the bundle is one
 * module, compiled before any of its code runs.
 *
 * Where: `$XDG_CACHE_HOME/metal-bmc` when XDG_CACHE_HOME is an absolute path, else
 * `$TMPDIR/metal-bmc-<uid>` (os.tmpdir()'s rule, without loading node:os). The folder must be
 * ours and closed to others (mode 0700, no symlink): bytecode from a cache is run as it is, so a
 * folder someone else can write to is not used. One file per build (a hash of the hot code: V8
 * itself only checks the source's length), Node version, architecture and kind of run (the
 * command and, for `bmc`, its subcommand: `bmc info` compiles other functions than `bmc command`),
 * written at exit after a successful run when there was none or V8 rejected it (another V8, other
 * flags), through a temporary file and a rename. Any failure to read or write only costs the
 * cache: the command never fails for it. NODE_DISABLE_COMPILE_CACHE (Node's own switch, any value)
 * turns it off.
 *
 * The runtime below is plain JavaScript inserted into the bundle; it uses `builtin` (Node's
 * modules by name) and `bundleFile` from the loader.
 */

/** Commands and `bmc` subcommands that get a cache file of their own; anything else shares "other". */
const KINDS = {
  commands: ['serve', 'bmc', 'sim', 'lab', 'status', 'console'],
  bmc: ['info', 'command', 'console', 'firmware', 'trust'],
};

/** Larger files are not read (the hot chunks' cache is ~0.2 MB). */
export const CODE_CACHE_MAX_BYTES = 16 * 1024 * 1024;

/** Defines `compileHot(source, id)`: the hot chunks' object, compiled with the code cache when one can be used. */
export const CODE_CACHE_RUNTIME = `const CACHE_KINDS = ${JSON.stringify(KINDS)};
function codeCacheKind(argv) {
  const [command, sub] = argv;
  if (!CACHE_KINDS.commands.includes(command)) return 'other';
  const words = [command];
  if (command === 'bmc') words.push(CACHE_KINDS.bmc.includes(sub) ? sub : 'other');
  if (argv.includes('--help') || argv.includes('-h')) words.push('help');
  return words.join('-');
}
function codeCacheDir(env) {
  if (env.NODE_DISABLE_COMPILE_CACHE) return undefined;
  if (typeof process.getuid !== 'function') return undefined;
  const xdg = env.XDG_CACHE_HOME;
  if (xdg && xdg.startsWith('/')) return xdg.replace(/\\/+$/, '') + '/metal-bmc';
  const tmp = (env.TMPDIR || env.TMP || env.TEMP || '/tmp').replace(/\\/+$/, '') || '/';
  return tmp + '/metal-bmc-' + process.getuid();
}
/** The folder, created if missing; undefined unless it is a directory of ours that nobody else may write to. */
function ownCacheDir(fs, dir) {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = fs.lstatSync(dir);
    if (!st.isDirectory() || st.uid !== process.getuid() || (st.mode & 0o077) !== 0) return undefined;
    return dir;
  } catch {
    return undefined;
  }
}
function compileHot(source, id) {
  const vm = builtin('node:vm');
  const options = { filename: bundleFile + '/hot.js' };
  const base = codeCacheDir(process.env);
  const fs = base === undefined ? undefined : builtin('node:fs');
  const dir = base === undefined ? undefined : ownCacheDir(fs, base);
  const file = dir === undefined ? undefined : dir + '/' + id + '-' + process.version + '-' + process.arch + '-' + codeCacheKind(process.argv.slice(2)) + '.v8';
  let cached;
  if (file !== undefined) {
    try {
      if (fs.statSync(file).size <= ${CODE_CACHE_MAX_BYTES}) cached = fs.readFileSync(file);
    } catch {
      cached = undefined;
    }
  }
  const script = new vm.Script(source, cached ? { ...options, cachedData: cached } : options);
  if (file !== undefined && (!cached || script.cachedDataRejected)) {
    process.once('exit', (code) => {
      if (code !== 0) return;
      const tmp = file + '.' + process.pid + '.tmp';
      try {
        fs.writeFileSync(tmp, script.createCachedData(), { mode: 0o600 });
        fs.renameSync(tmp, file);
      } catch {
        try { fs.unlinkSync(tmp); } catch {}
      }
    });
  }
  return script.runInThisContext();
}
`;
