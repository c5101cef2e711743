/**
 * The console capture (METAL_BMC_CONSOLE_CAPTURE=all): holds the console of every machine it is
 * given through the hub, as a holder (hub.ts `hold`): viewers share the held session, take the
 * keyboard as before, and the session stays open without them and past the idle timeout. Output
 * goes to the machine's log (capture-store.ts). When the BMC is lost the hub reconnects; when
 * the hub gives up, or the console cannot be opened at all, the capture joins again with capped
 * exponential backoff. Every stretch without capture is a gap in the log: from the loss (or the
 * start) to the moment output can flow again.
 */
import { BmcError } from '../errors.js';
import type { Logger } from '../log.js';
import { isSafeMachineId } from './capture-files.js';
import { NO_CAPTURE_METRICS, type CaptureMetrics } from './capture-metrics.js';
import { openMachineLog, type MachineLog } from './capture-store.js';
import type { ConsoleHub } from './hub.js';
import type { ClientPort, ConsoleHandle } from './types.js';

export interface CaptureOptions {
  hub: ConsoleHub;
  dir: string;
  fileBytes: number;
  files: number;
  logger: Logger;
  metrics?: CaptureMetrics;
  /** joining again after the hub gave up or opening failed: first delay and cap, default 1 s and 60 s */
  retry?: { initialMs?: number; maxMs?: number };
  /**
   * consoles being opened at once, default 16: the others wait their turn. Opening one is a
   * facade connection (a Redfish login over TLS, vendor detection) and an RMCP+ handshake; a
   * thousand of them at once grow the heap and the allocator's arenas to a peak that the
   * process keeps long after (the console-idle benchmark's figures, README)
   */
  maxOpening?: number;
  /** per machine: bytes waiting for the disk before output is dropped, default 1 MiB */
  maxBufferBytes?: number;
  flushMs?: number;
  /** test hook for a slow disk (capture-store.ts) */
  beforeWrite?: () => Promise<void>;
}

export interface ConsoleCapture {
  /** the machines to capture from now on: new ones are joined, missing ones let go */
  setMachines(ids: Iterable<string>): void;
  /** machines whose console is held and connected */
  held(): number;
  machines(): string[];
  /** per machine held: connected (`held`) or in a gap (`gap`), for the daemon's status */
  states(): Map<string, 'held' | 'gap'>;
  diskBytes(): number;
  /** what was captured so far is on disk (tests) */
  flush(): Promise<void>;
  close(): Promise<void>;
}

interface Held {
  id: string;
  log: Promise<MachineLog | undefined>;
  handle: ConsoleHandle | undefined;
  open: boolean;
  everOpen: boolean;
  attempt: number;
  timer: NodeJS.Timeout | undefined;
  abort: AbortController | undefined;
  stopped: boolean;
}

const DEFAULT_MAX_OPENING = 16;

const IDENTITY = { subject: 'console-capture', remote: 'metal-bmc', transport: 'capture' } as const;

export function createConsoleCapture(o: CaptureOptions): ConsoleCapture {
  const log = o.logger.child({ module: 'console-capture' });
  const metrics = o.metrics ?? NO_CAPTURE_METRICS;
  const initialMs = o.retry?.initialMs ?? 1000;
  const maxMs = o.retry?.maxMs ?? 60_000;
  const maxOpening = o.maxOpening ?? DEFAULT_MAX_OPENING;
  if (!Number.isInteger(maxOpening) || maxOpening < 1) throw new BmcError('INVALID_ARGUMENT', `createConsoleCapture: option maxOpening must be an integer >= 1, got ${String(maxOpening)}`);
  const held = new Map<string, Held>();
  /** machines waiting for a turn to open (first come, first served) and how many are opening */
  const waiting: Held[] = [];
  let opening = 0;
  const refused = new Set<string>();
  const logs = new Map<string, MachineLog>();
  let closed = false;

  function gapStart(h: Held, reason: string): void {
    h.open = false;
    void h.log.then((l) => l?.gapStart(reason));
  }

  function gapEnd(h: Held): void {
    if (h.open) return;
    h.open = true;
    if (h.everOpen) metrics.reconnect();
    h.everOpen = true;
    h.attempt = 0;
    void h.log.then((l) => {
      const seconds = l?.gapEnd() ?? 0;
      if (seconds > 0) metrics.gapSeconds(seconds);
    });
  }

  function portFor(h: Held, machineLog: MachineLog): ClientPort {
    return {
      identity: IDENTITY,
      send(data) {
        machineLog.append(data);
        metrics.captured(data.length);
        return true;
      },
      notify(notice) {
        if (notice.type !== 'status') return;
        if (notice.state === 'open') gapEnd(h);
        else gapStart(h, notice.message ?? `BMC console ${notice.state}`);
      },
      end(reason) {
        h.handle = undefined;
        gapStart(h, reason.message);
        if (!h.stopped) retry(h);
      },
    };
  }

  function retry(h: Held): void {
    if (h.stopped || h.timer) return;
    const delay = Math.min(maxMs, initialMs * 2 ** h.attempt);
    h.attempt = Math.min(h.attempt + 1, 30);
    h.timer = setTimeout(() => {
      h.timer = undefined;
      queue(h);
    }, delay);
    h.timer.unref();
  }

  /** joins when a turn is free, else when one is given back (at most `maxOpening` at once) */
  function queue(h: Held): void {
    if (h.stopped) return;
    if (opening >= maxOpening) {
      waiting.push(h);
      return;
    }
    opening++;
    void join(h).finally(() => {
      opening--;
      for (let next = waiting.shift(); next; next = waiting.shift()) {
        if (next.stopped) continue;
        queue(next);
        break;
      }
    });
  }

  async function join(h: Held): Promise<void> {
    const machineLog = await h.log;
    if (!machineLog || h.stopped) return;
    h.abort = new AbortController();
    try {
      const handle = await o.hub.join(h.id, portFor(h, machineLog), { hold: true, signal: h.abort.signal });
      if (h.stopped) {
        handle.leave();
        return;
      }
      h.handle = handle;
    } catch (err) {
      // a hub that is shutting down takes nobody any more: nothing to retry
      if (h.stopped || o.hub.closed) return;
      const message = err instanceof Error ? err.message : String(err);
      gapStart(h, `console could not be opened: ${message}`);
      if (h.attempt === 0) log.warn({ machineId: h.id, err }, 'console capture could not open the console; retrying with backoff');
      retry(h);
    } finally {
      h.abort = undefined;
    }
  }

  function start(id: string): void {
    const h: Held = { id, log: Promise.resolve(undefined), handle: undefined, open: false, everOpen: false, attempt: 0, timer: undefined, abort: undefined, stopped: false };
    h.log = openMachineLog({
      dir: o.dir,
      machineId: id,
      fileBytes: o.fileBytes,
      files: o.files,
      logger: o.logger,
      ...(o.maxBufferBytes === undefined ? {} : { maxBufferBytes: o.maxBufferBytes }),
      ...(o.flushMs === undefined ? {} : { flushMs: o.flushMs }),
      ...(o.beforeWrite ? { beforeWrite: o.beforeWrite } : {}),
      onDropped: (n) => metrics.dropped(n),
    }).then(
      (l) => {
        logs.set(id, l);
        l.gapStart('capture starting');
        return l;
      },
      (err: unknown) => {
        log.error({ machineId: id, err }, 'console capture log cannot be opened; this machine is not captured');
        return undefined;
      },
    );
    held.set(id, h);
    queue(h);
  }

  async function stop(h: Held, reason: string): Promise<void> {
    h.stopped = true;
    held.delete(h.id);
    if (h.timer) clearTimeout(h.timer);
    h.abort?.abort(new BmcError('CLOSED', reason));
    const handle = h.handle;
    h.handle = undefined;
    handle?.leave();
    const l = await h.log;
    if (!l) return;
    l.gapStart(reason);
    await l.close();
    if (logs.get(h.id) === l) logs.delete(h.id);
  }

  return {
    setMachines(ids) {
      if (closed) return;
      const wanted = new Set<string>();
      for (const id of ids) {
        if (!isSafeMachineId(id)) {
          if (!refused.has(id) && refused.size < 10_000) {
            refused.add(id);
            metrics.refusedId();
            log.warn({ machineId: id.slice(0, 140) }, 'machine id cannot name a console log folder; its console is not captured');
          }
          continue;
        }
        wanted.add(id);
        if (!held.has(id)) start(id);
      }
      for (const h of [...held.values()]) if (!wanted.has(h.id)) void stop(h, 'machine no longer reported');
    },
    held: () => [...held.values()].filter((h) => h.open).length,
    machines: () => [...held.keys()],
    states: () => new Map([...held.values()].map((h) => [h.id, h.open ? 'held' : 'gap'] as const)),
    diskBytes: () => [...logs.values()].reduce((n, l) => n + l.diskBytes, 0),
    async flush() {
      await Promise.all([...logs.values()].map((l) => l.flush()));
    },
    async close() {
      closed = true;
      await Promise.all([...held.values()].map((h) => stop(h, 'metal-bmc stopped capturing')));
    },
  };
}
