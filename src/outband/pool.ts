/**
 * Keeps connected BMCs for a while after use, so that a burst of commands for one machine does
 * not pay for a Redfish login and an RMCP+ handshake each time. An entry is handed to one user
 * at a time; `close()` on the handed-out object returns it to the pool, and an operation that
 * failed on the transport, or is still under way at the close (a command's deadline came first:
 * the session may be wedged), discards it instead. Idle entries close after `idleMs`; the pool holds
 * at most `max` of them (least recently used go first). BMCs have few session slots: keep
 * `idleMs` short.
 */
import { createHash } from 'node:crypto';
import { checkDuration } from '../deadline.js';
import { BmcError } from '../errors.js';
import type { Outband } from './types.js';

export interface OutbandPoolOptions {
  idleMs?: number;
  max?: number;
}

export interface PoolKey {
  host: string;
  port?: number;
  user?: string;
  password?: string;
}

export interface OutbandPool {
  acquire(key: PoolKey, open: () => Promise<Outband>): Promise<Outband>;
  /** idle entries right now */
  size(): number;
  close(): Promise<void>;
}

interface Entry {
  key: string;
  outband: Outband;
  timer: NodeJS.Timeout;
}

/** Errors after which a connection must not be reused. */
const BROKEN: ReadonlySet<string> = new Set(['TIMEOUT', 'CLOSED', 'PROTOCOL', 'AUTH_FAILED', 'DECODE', 'ABORTED']);

export function createOutbandPool(o: OutbandPoolOptions = {}): OutbandPool {
  const idleMs = checkDuration('createOutbandPool: idleMs', o.idleMs, 20_000, 3600_000);
  const max = o.max ?? 256;
  const idle = new Map<string, Entry>();
  let closed = false;

  const keyOf = (k: PoolKey) => createHash('sha256').update(`${k.host}\0${k.port ?? ''}\0${k.user ?? ''}\0${k.password ?? ''}`).digest('hex');

  function park(key: string, outband: Outband): void {
    if (closed || idle.has(key)) {
      void outband.close();
      return;
    }
    while (idle.size >= max) {
      const oldest = idle.values().next().value as Entry;
      evict(oldest);
    }
    const timer = setTimeout(() => evict(entry), idleMs);
    timer.unref();
    const entry: Entry = { key, outband, timer };
    idle.set(key, entry);
  }

  function evict(entry: Entry): void {
    if (idle.get(entry.key) !== entry) return;
    idle.delete(entry.key);
    clearTimeout(entry.timer);
    void entry.outband.close();
  }

  /**
   * Wraps every method so a transport failure marks the connection broken, and counts the calls
   * in flight: a caller whose own deadline ended closes the connection before the BMC call's
   * TIMEOUT or ABORTED arrives, and such a session is never parked for the next user.
   */
  function lend(key: string, outband: Outband): Outband {
    let broken = false;
    let returned = false;
    let calls = 0;
    const guard =
      <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
      async (...args: A): Promise<R> => {
        calls++;
        try {
          return await fn(...args);
        } catch (err) {
          if (!(err instanceof BmcError) || BROKEN.has(err.code)) broken = true;
          throw err;
        } finally {
          calls--;
        }
      };
    return {
      address: outband.address,
      vendor: outband.vendor,
      info: guard(outband.info.bind(outband)),
      powerOn: guard(outband.powerOn.bind(outband)),
      powerOff: guard(outband.powerOff.bind(outband)),
      powerReset: guard(outband.powerReset.bind(outband)),
      powerCycle: guard(outband.powerCycle.bind(outband)),
      bootFrom: guard(outband.bootFrom.bind(outband)),
      bootOverride: guard(outband.bootOverride.bind(outband)),
      identify: guard(outband.identify.bind(outband)),
      openConsole: guard(outband.openConsole.bind(outband)),
      updateFirmware: guard(outband.updateFirmware.bind(outband)),
      watchFirmware: guard(outband.watchFirmware.bind(outband)),
      async close() {
        if (returned) return;
        returned = true;
        if (broken || calls > 0) await outband.close();
        else park(key, outband);
      },
    };
  }

  return {
    async acquire(k, open) {
      if (closed) throw new BmcError('CLOSED', 'the BMC connection pool is closed');
      const key = keyOf(k);
      const entry = idle.get(key);
      if (entry) {
        idle.delete(key);
        clearTimeout(entry.timer);
        return lend(key, entry.outband);
      }
      return lend(key, await open());
    },
    size: () => idle.size,
    async close() {
      closed = true;
      const entries = [...idle.values()];
      idle.clear();
      for (const e of entries) clearTimeout(e.timer);
      await Promise.all(entries.map((e) => e.outband.close()));
    },
  };
}
