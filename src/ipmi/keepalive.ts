/**
 * Keepalive of an idle session: after `intervalMs` without traffic it sends one request (`ping`);
 * a ping that times out means the BMC dropped the session (`onDead`), any other outcome
 * schedules the next check. Traffic (`touch`) pushes the next ping back.
 */
import { BmcError } from '../errors.js';

export interface KeepaliveOptions {
  /** idle time before a ping; 0 disables the keepalive */
  intervalMs: number;
  /** false once the session is no longer established: the keepalive stops */
  active: () => boolean;
  ping: () => Promise<unknown>;
  onDead: (reason: string) => void;
  /** shortest wait between checks (default 250 ms) */
  minWaitMs?: number;
  now?: () => number;
}

export interface Keepalive {
  /** traffic seen or sent now */
  touch(): void;
  start(): void;
  stop(): void;
}

export function createKeepalive(o: KeepaliveOptions): Keepalive {
  const now = o.now ?? Date.now;
  const minWait = o.minWaitMs ?? 250;
  let lastActivity = now();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  function schedule(): void {
    if (o.intervalMs <= 0 || stopped) return;
    timer = setTimeout(fire, Math.max(minWait, o.intervalMs - (now() - lastActivity)));
    timer.unref();
  }

  function fire(): void {
    if (stopped || !o.active()) return;
    if (now() - lastActivity < o.intervalMs) return schedule();
    o.ping().then(
      () => schedule(),
      (err: unknown) => {
        // A BMC that no longer answers has dropped the session (or died): end it, so its users
        // (a SOL console nobody types into) learn it now rather than at their next write.
        if (err instanceof BmcError && err.code === 'TIMEOUT' && o.active() && !stopped) o.onDead('the BMC stopped answering (keepalive timed out)');
        else schedule();
      },
    );
  }

  return {
    touch() {
      lastActivity = now();
    },
    start() {
      stopped = false;
      schedule();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
