/**
 * Held consoles on worker threads (src/console/worker-pool.ts) with the simulated fleet's IPMI
 * SOL: the sessions really run in worker threads (their thread ids, their byte counts), a boot
 * storm captured through them is identical to the in-thread path's (every numbered line, in
 * order, for both), a worker that dies is started again while its consoles rejoin with a
 * gap recorded in the log, and a console whose SOL another client took over does not take it back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { BmcError } from '../../src/errors.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConsoleCapture, type ConsoleCapture } from '../../src/console/capture.js';
import { readHistory, tailBytes } from '../../src/console/capture-read.js';
import { createConsoleHub, type ConsoleHub } from '../../src/console/hub.js';
import type { OpenBackend } from '../../src/console/types.js';
import { createConsoleWorkerPool, type ConsoleWorkerPool } from '../../src/console/worker-pool.js';
import { openSession } from '../../src/ipmi/session.js';
import { openSol } from '../../src/ipmi/sol.js';
import { ipmiOutband } from '../../src/outband/ipmi.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { parseStormLine } from '../../src/sim/serial.js';
import { startTestFleet } from '../helpers/fleet.js';
import { captureLog } from '../helpers/log.js';
import { waitFor } from '../helpers/wait.js';

const LINES = 400;
let fleet: Fleet;
let pool: ConsoleWorkerPool;
const { logger } = captureLog('warn');
const rigs: Array<{ hub: ConsoleHub; capture: ConsoleCapture; dir: string }> = [];

const target = (id: string) => {
  const m = fleet.machines[Number(id.slice(1))]!;
  return { host: m.state.address, port: fleet.ipmiPort, user: fleet.user, password: fleet.password, cipherSuite: 17, timeoutMs: 10_000 };
};
const inThread: OpenBackend = async (id, { signal }) => {
  const t = target(id);
  const outband = ipmiOutband({ ...t, retry: { deadlineMs: 5000 } });
  try {
    return await outband.openConsole({ takeOver: true, signal });
  } finally {
    await outband.close();
  }
};
const inWorker: OpenBackend = (id, { signal, takeOver = true }) => pool.open(target(id), signal, takeOver);

function rig(openBackend: OpenBackend, ids: string[]): { hub: ConsoleHub; capture: ConsoleCapture; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'capture-workers-'));
  const hub = createConsoleHub({ logger, openBackend, reconnect: { initialMs: 100, maxMs: 500, maxAttempts: 20 } });
  const capture = createConsoleCapture({ hub, dir, fileBytes: 1 << 20, files: 2, logger, flushMs: 20, retry: { initialMs: 100, maxMs: 500 } });
  capture.setMachines(ids);
  const r = { hub, capture, dir };
  rigs.push(r);
  return r;
}

/** the numbers of the storm lines of machine `id` in its log, in order; a damaged line is -1 */
/** the line numbers of `id`'s storms of `lines` lines in its log, in order (a line that fails its checksum: -1) */
async function stormNumbers(dir: string, id: string, lines = LINES): Promise<number[]> {
  return (await tailBytes(dir, id, 1 << 20))
    .toString('latin1')
    .split('\r\n')
    .filter((l) => l.startsWith(`storm ${id} `))
    .map((l) => parseStormLine(l))
    .filter((p) => p === undefined || p.of === lines)
    .map((p) => p?.n ?? -1);
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

beforeAll(async () => {
  fleet = await startTestFleet({ count: 5, redfish: false });
  for (const m of fleet.machines) if (m.state.power !== 'on') m.setPower('on', 'power on');
  pool = createConsoleWorkerPool({ workers: 2, logger });
}, 60_000);

afterAll(async () => {
  for (const r of rigs) {
    await r.capture.close();
    await r.hub.close();
    rmSync(r.dir, { recursive: true, force: true });
  }
  await pool?.close();
  await fleet?.close();
});

describe('held consoles on worker threads', () => {
  it('runs the SOL sessions in worker threads and captures a storm exactly as the in-thread path does', async () => {
    const workerIds = ['m0', 'm1'];
    const threadIds = ['m2', 'm3'];
    const w = rig(inWorker, workerIds);
    const t = rig(inThread, threadIds);
    await waitFor(() => w.capture.held() === 2 && t.capture.held() === 2, 30_000, 'four held consoles');
    const stats = pool.stats();
    expect(stats.map((s) => s.sessions)).toEqual([1, 1]); // spread over both workers
    for (const s of stats) expect(s.threadId).not.toBe(threadId);
    expect(new Set(stats.map((s) => s.threadId)).size).toBe(2);
    fleet.serialStorm([0, 1, 2, 3], LINES);
    for (const [dir, ids] of [[w.dir, workerIds], [t.dir, threadIds]] as const) {
      for (const id of ids) await waitFor(async () => (await stormNumbers(dir, id)).length >= LINES, 60_000, `the storm of ${id}`);
    }
    for (const id of workerIds) expect(await stormNumbers(w.dir, id)).toEqual(range(LINES));
    for (const id of threadIds) expect(await stormNumbers(t.dir, id)).toEqual(range(LINES));
    // the bytes went through the workers
    expect(pool.stats().reduce((n, s) => n + s.bytes, 0)).toBeGreaterThan(LINES * 60 * 2);
  }, 120_000);

  it("passes a worker's failed open on with its code, and without the password", async () => {
    const err = await pool.open({ ...target('m3'), password: 'not-the-password' }, AbortSignal.timeout(15_000), true).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BmcError);
    expect((err as BmcError).code).toBe('AUTH_FAILED');
    expect((err as BmcError).message).not.toContain('not-the-password');
  }, 30_000);

  it('starts a dead worker again; its consoles rejoin with a gap recorded', async () => {
    const r = rigs[0]!;
    const before = pool.stats();
    const victim = before.find((s) => s.sessions > 0)!;
    const gapsOf = async (id: string) => (await readHistory(r.dir, id)).filter((e) => e.kind === 'gap');
    const idsOnVictim = ['m0', 'm1'];
    const startsBefore = await Promise.all(idsOnVictim.map(async (id) => (await gapsOf(id)).filter((e) => e.what === 'start').length));
    await pool.kill(victim.worker);
    await waitFor(() => pool.stats()[victim.worker]!.restarts === victim.restarts + 1, 10_000, 'the worker started again');
    expect(pool.stats()[victim.worker]!.threadId).not.toBe(victim.threadId);
    // one of the two machines lost its console: a gap starts and ends, then output flows again
    await waitFor(
      async () => (await Promise.all(idsOnVictim.map(async (id, i) => (await gapsOf(id)).filter((e) => e.what === 'start').length > startsBefore[i]!))).some(Boolean),
      10_000,
      'a gap recorded',
    );
    await waitFor(() => r.capture.held() === 2, 30_000, 'both consoles held again');
    const lost = (await Promise.all(idsOnVictim.map(async (id, i) => ((await gapsOf(id)).filter((e) => e.what === 'start').length > startsBefore[i]! ? id : undefined)))).find(Boolean)!;
    expect((await gapsOf(lost)).at(-1)).toMatchObject({ kind: 'gap', what: 'end' });
    // a storm of another length than the first, told apart by its lines' count: the simulator, as
    // BMCs do, sends its recent output again when a console activates, the first storm's end included
    fleet.serialStorm([Number(lost.slice(1))], 50);
    await waitFor(async () => (await stormNumbers(r.dir, lost, 50)).length >= 50, 30_000, 'a storm after the restart');
    expect(await stormNumbers(r.dir, lost, 50)).toEqual(range(50));
    expect(pool.stats().reduce((k, s) => k + s.sessions, 0)).toBe(2);
  }, 90_000);

  it("yields SOL to another client that took it over (the simulator's deactivating status crosses the worker's port): reconnects without takeover fail BUSY until it lets go", async () => {
    const events: string[] = [];
    const asked: boolean[] = [];
    const hub = createConsoleHub({
      logger,
      openBackend: (id, { signal, takeOver = true }) => {
        asked.push(takeOver);
        return pool.open(target(id), signal, takeOver);
      },
      reconnect: { initialMs: 100, maxMs: 200, maxAttempts: 100 },
      onEvent: (e) => events.push(e),
    });
    try {
      const notices: string[] = [];
      await hub.join('m4', { identity: { subject: 'CN=v', remote: '127.0.0.1:1', transport: 'ws' }, send: () => true, notify: (n) => void (n.type === 'status' && notices.push(n.message ?? '')), end: () => undefined });
      expect(asked).toEqual([true]);
      const t = target('m4');
      const theirs = await openSol(await openSession({ host: t.host, port: t.port, user: t.user, password: t.password, cipherSuite: 17, retry: { deadlineMs: 5000 } }), { takeOver: true, closeSession: true });
      theirs.resume();
      const count = (e: string) => events.filter((x) => x === e).length;
      await waitFor(() => count('reconnect-failed') >= 2 || count('reconnect') > 0, 15_000, 'two reconnect attempts');
      expect(count('reconnect')).toBe(0);
      expect(asked.slice(1).every((x) => !x)).toBe(true);
      expect(theirs.destroyed).toBe(false);
      expect(notices.some((m) => /another session took the serial console/.test(m))).toBe(true);
      await new Promise<void>((resolve) => theirs.end(resolve));
      await waitFor(() => count('reconnect') === 1, 15_000, 'reconnected once the other client let go');
      expect(asked.at(-1)).toBe(false);
    } finally {
      await hub.close();
    }
  }, 60_000);
});
