/**
 * How the daemon's worker threads start: each runs the process's own entry, src/cli/main (or the
 * bundle itself), with a first argument that says which worker it is, so a one-shot command never
 * loads node:worker_threads and the bundle needs no second file. In the single-file bundle every
 * module's import.meta.url is the bundle itself (scripts/bundle.ts), so a worker started from the
 * bundle runs the bundle's code; from the TypeScript sources it runs through tsx's API.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import { WORKER_ARGS, type WorkerKind } from './worker-args.js';

/** The script a worker runs: src/cli/main from the sources, or the bundle. */
export function workerEntry(): URL {
  const here = new URL(import.meta.url);
  const ext = here.pathname.endsWith('.ts') ? '.ts' : '.js';
  return here.pathname.endsWith(`/worker-entry${ext}`) ? new URL(`./cli/main${ext}`, here) : here;
}

/** Starts a worker of `kind` on `entry`: the module itself, or through tsx when it is TypeScript. */
export function spawnWorker(kind: WorkerKind, entry: URL, options: { workerData: unknown; resourceLimits?: ResourceLimits }): Worker {
  const argv = [WORKER_ARGS[kind]];
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, { ...options, argv });
  // the ES module build of tsx's API, beside the CommonJS one `require` finds
  const tsx = pathToFileURL(createRequire(entry).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(code, { ...options, eval: true, argv });
}

/**
 * Ends a worker without meeting Node's abort on a datagram that arrives while a thread with open
 * UDP sockets terminates (console/worker-thread.ts says more): `shutdown` is sent and the worker
 * has `deadlineMs` to say it is done (`isDone`) or exit; one that is late is told to `die` (it
 * closes its sockets, then exits) and has 2 s more; only a worker whose sockets are closed is
 * terminated.
 */
type StopMessages = { shutdown: unknown; die: unknown; isDone: (message: unknown) => boolean; deadlineMs: number };

/** Stops every worker of a pool as `stopWorker` does, all at once. */
export async function stopWorkers(workers: readonly Worker[], o: StopMessages): Promise<void> {
  await Promise.all(workers.map((w) => stopWorker(w, o)));
}

async function stopWorker(worker: Worker, o: StopMessages): Promise<void> {
  const exited = new Promise<'exited'>((resolve) => worker.once('exit', () => resolve('exited')));
  const done = new Promise<'done'>((resolve) => worker.on('message', (m: unknown) => o.isDone(m) && resolve('done')));
  const late = (ms: number) => {
    let timer: NodeJS.Timeout | undefined;
    const p = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)));
    return { p, cancel: () => clearTimeout(timer) };
  };
  worker.postMessage(o.shutdown);
  const graceful = late(o.deadlineMs);
  const how = await Promise.race([done, exited, graceful.p]);
  graceful.cancel();
  if (how === 'exited') return;
  if (how === 'late') {
    worker.postMessage(o.die);
    const dying = late(2000);
    const end = await Promise.race([exited, dying.p]);
    dying.cancel();
    if (end === 'exited') return;
  }
  // its sockets are closed: ending the thread now cannot meet a datagram
  await worker.terminate();
}

/** a worker that ran this long is fine again: its next restart is immediate */
const STABLE_MS = 30_000;
const RESTART_MAX_MS = 10_000;

/**
 * Starts a dead worker's slot again: at once after a worker that ran for a while, after a
 * backoff doubling from 100 ms up to 10 s after quick deaths in a row. `start` runs only if
 * `wanted()` still says so then (the pool is not closing, the slot not replaced). Returns the delay.
 */
export function restartLater(dead: { startedAt: number; quickDeaths: number; restarts: number }, wanted: () => boolean, start: (restarts: number, quickDeaths: number) => void): number {
  const quickDeaths = Date.now() - dead.startedAt < STABLE_MS ? dead.quickDeaths + 1 : 0;
  const delayMs = quickDeaths === 0 ? 0 : Math.min(RESTART_MAX_MS, 100 * 2 ** (quickDeaths - 1));
  const timer = setTimeout(() => {
    if (wanted()) start(dead.restarts + 1, quickDeaths);
  }, delayMs);
  timer.unref();
  return delayMs;
}

/** Ends a worker as a crash would, for tests and diagnostics: `die` (it closes its sockets, then exits), never terminate(). */
export async function killWorker(worker: Worker, die: unknown): Promise<void> {
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.postMessage(die);
  await exited;
}
