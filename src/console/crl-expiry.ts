/**
 * When the console's CRL is out of date. Past a CRL's nextUpdate, node:tls (OpenSSL) refuses every
 * client certificate the CRL covers (CRL_HAS_EXPIRED: it fails closed, as nginx does with a stale
 * `ssl_crl`), and the refused handshake reads on this side only as a client that hung up. So the
 * console says it once, as an error, when the CRL in force expires (or is loaded expired), notes it
 * on every handshake refused meanwhile, and shows the nextUpdate as a metric to alert on before.
 * Connections opened before stay open: an expired CRL revokes nothing new.
 */
import { MAX_TIMER_MS } from '../deadline.js';
import type { Logger } from '../log.js';

export interface CrlExpiry {
  /** a CRL file was loaded (at start and at each reload) with this earliest nextUpdate (undefined: none named) */
  loaded(nextUpdate: Date | undefined): void;
  /** the nextUpdate in force */
  nextUpdate(): Date | undefined;
  stop(): void;
}

/** What a refused handshake's log line adds while the CRL in force is past its nextUpdate. */
export function crlExpiredNote(nextUpdate: Date | undefined, now = Date.now()): { crlExpiredAt: string } | undefined {
  return nextUpdate !== undefined && nextUpdate.getTime() <= now ? { crlExpiredAt: nextUpdate.toISOString() } : undefined;
}

export function watchCrlExpiry(o: { crlFile: string; logger: Logger; now?: () => number }): CrlExpiry {
  const now = o.now ?? Date.now;
  let current: Date | undefined;
  let timer: NodeJS.Timeout | undefined;
  const tell = (at: Date) =>
    o.logger.error(
      { crlFile: o.crlFile, crlExpiredAt: at.toISOString() },
      'console CRL expired (its nextUpdate passed): every new console connection whose certificate it covers is refused (OpenSSL: CRL has expired) until a newer CRL is put in its place; open connections stay',
    );
  const arm = (at: Date) => {
    const wait = at.getTime() - now();
    if (wait <= 0) return tell(at);
    timer = setTimeout(() => arm(at), Math.min(wait, MAX_TIMER_MS));
    timer.unref();
  };
  return {
    loaded(nextUpdate) {
      clearTimeout(timer);
      timer = undefined;
      current = nextUpdate;
      if (nextUpdate) arm(nextUpdate);
    },
    nextUpdate: () => current,
    stop: () => clearTimeout(timer),
  };
}
