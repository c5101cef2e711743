/**
 * What the console capture benchmarks (console-capture.ts, console-idle.ts) share: a simulated
 * fleet in its own process whose machines are picked by power state (a storm is printed only by
 * running machines; about a quarter of a simulated fleet is off), and the capture with its hub in
 * this process, holding the machines' consoles over IPMI SOL (cipher suite 17) and writing them
 * to a scratch folder.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConsoleCapture, type ConsoleCapture } from '../src/console/capture.js';
import { NO_CAPTURE_METRICS } from '../src/console/capture-metrics.js';
import { createConsoleHub, type ConsoleHub } from '../src/console/hub.js';
import type { OpenBackend } from '../src/console/types.js';
import type { SolTarget } from '../src/console/worker-protocol.js';
import { createLogger, type Logger } from '../src/log.js';
import { ipmiOutband } from '../src/outband/ipmi.js';
import { sleep } from './console-terminal.js';
import { startFleetProcess, type FleetOptions, type FleetProcess } from './fleet-process.js';

export const MiB = 1 << 20;

export interface SimMachineInfo {
  index: number;
  power: string;
}

/** A fleet with at least `running` machines powered on (and `extra` more of any power state). */
export async function startRunningFleet(running: number, extra: number, options: Omit<FleetOptions, 'count'>): Promise<{ fleet: FleetProcess; running: number[]; others: number[] }> {
  // a quarter of the simulated machines is off (src/sim/machine.ts); a margin for the draw
  const count = Math.ceil(running / 0.7) + extra + 8;
  const fleet = await startFleetProcess({ ...options, count });
  const machines = (await fleet.control('GET', '/machines')) as SimMachineInfo[];
  const on = machines.filter((m) => m.power === 'on').map((m) => m.index);
  if (on.length < running) {
    await fleet.stop();
    throw new Error(`the simulated fleet of ${count} has ${on.length} running machines, ${running} needed`);
  }
  const picked = on.slice(0, running);
  const others = machines.map((m) => m.index).filter((i) => !picked.includes(i)).slice(0, extra);
  return { fleet, running: picked, others };
}

/** the capture's machine id of simulator machine `index` (the simulator's storm lines say `m<index>`) */
export const machineId = (index: number): string => `m${index}`;

/** where machine `m<index>`'s console is: IPMI SOL with cipher suite 17 (for a console worker pool) */
export function simSolTarget(fleet: FleetProcess, id: string): SolTarget {
  const address = fleet.addresses[Number(id.slice(1))];
  if (!address) throw new Error(`no simulated machine ${id}`);
  return { host: address, port: fleet.ipmiPort, user: fleet.user, password: fleet.password, cipherSuite: 17, timeoutMs: 30_000 };
}

/** opens machine `m<index>`'s console over IPMI SOL with cipher suite 17 in this thread, as the daemon's backend does with METAL_BMC_CONSOLE_WORKERS=0 */
export function simConsoleBackend(fleet: FleetProcess): OpenBackend {
  return async (id, { signal }) => {
    const t = simSolTarget(fleet, id);
    const outband = ipmiOutband({ host: t.host, port: t.port, user: t.user, password: t.password, cipherSuite: 17 });
    try {
      return await outband.openConsole({ takeOver: true, signal });
    } finally {
      await outband.close();
    }
  };
}

export interface CaptureRig {
  hub: ConsoleHub;
  capture: ConsoleCapture;
  dir: string;
  logger: Logger;
  /** bytes the capture received so far */
  captured(): number;
  close(): Promise<void>;
}

export function startCaptureRig(openBackend: OpenBackend, maxSessions: number): CaptureRig {
  const dir = mkdtempSync(join(tmpdir(), 'bench-capture-'));
  const logger = createLogger({ level: 'warn' }, process.stderr);
  const hub = createConsoleHub({ logger, maxSessions: maxSessions + 10, openBackend });
  let captured = 0;
  const capture = createConsoleCapture({ hub, dir, fileBytes: 64 * MiB, files: 2, logger, metrics: { ...NO_CAPTURE_METRICS, captured: (b) => (captured += b) } });
  return {
    hub,
    capture,
    dir,
    logger,
    captured: () => captured,
    async close() {
      await capture.close();
      await hub.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` every 200 ms until it holds; throws naming `what` past `deadline` (ms since the epoch). */
export async function until(bench: string, check: () => boolean | Promise<boolean>, what: string, deadline: number, progress?: () => string): Promise<void> {
  if (process.env.BENCH_DEBUG) process.stderr.write(`${bench}: waiting for ${what}\n`);
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${bench}: timed out waiting for ${what}${progress ? ` (${progress()})` : ''}`);
    await sleep(200);
  }
}

/** Resolves once `count()` has not changed for `quietMs` (output sent at activation is through). */
export async function quiet(bench: string, count: () => number, quietMs: number, deadline: number): Promise<void> {
  let last = count();
  let since = Date.now();
  await until(
    bench,
    () => {
      const now = count();
      if (now !== last) {
        last = now;
        since = Date.now();
      }
      return Date.now() - since >= quietMs;
    },
    `no console output for ${quietMs} ms`,
    deadline,
  );
}
