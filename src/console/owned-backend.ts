/**
 * The console backend of an instance that shares its partition with others (issue 13, item 4):
 * it opens a machine's BMC console only while no other instance holds the machine, so two
 * instances never fight over a BMC's single SOL session (the backend opens SOL with take-over).
 * A machine another instance holds is served through `relay` when there is one (output and input
 * over NATS from the owner), else refused with BUSY naming the owner. While this instance does
 * not know who holds what (NATS lost), it opens nothing.
 *
 * `cut()` ends the BMC streams of machines this instance no longer may hold, and the relayed
 * ones whose owner changed; the hub's session then reconnects through `open` again, which opens
 * the BMC, relays from the new owner, or refuses.
 */
import type { Duplex } from 'node:stream';
import { BmcError } from '../errors.js';
import type { OpenBackend } from './types.js';

export type Holder =
  | { kind: 'self' }
  /** nobody holds it: this instance may open it */
  | { kind: 'free' }
  | { kind: 'other'; instance: string }
  /**
   * this instance cannot tell: its lease is not renewed, or (`lagging`) its view of the others is
   * behind (its watch stalled); a lagging view opens nothing new but ends no stream already open
   */
  | { kind: 'unknown'; lagging?: boolean };

export interface OwnedBackendOptions {
  open: OpenBackend;
  holder(machineId: string): Holder;
  /** the owner's console over the bus; without it a machine another instance holds is refused */
  relay?: (instance: string, machineId: string, options: { signal: AbortSignal }) => Promise<Duplex>;
}

export interface OwnedBackend {
  open: OpenBackend;
  /** ends the streams that lead to the wrong place now (see above); how many were ended */
  cut(): number;
}

export function ownedBackend(o: OwnedBackendOptions): OwnedBackend {
  /** every stream handed out, with whom it leads to: the BMC (undefined) or the owning instance */
  const streams = new Map<Duplex, { machineId: string; via: string | undefined }>();

  function track(machineId: string, stream: Duplex, via: string | undefined): Duplex {
    streams.set(stream, { machineId, via });
    stream.once('close', () => streams.delete(stream));
    return stream;
  }

  /** why a stream may not go on, or undefined when it may */
  function stale(via: string | undefined, h: Holder): string | undefined {
    if (h.kind === 'unknown' && h.lagging) return undefined;
    if (via === undefined) {
      if (h.kind === 'self' || h.kind === 'free') return undefined;
      return h.kind === 'other' ? `the console moved to metal-bmc instance ${h.instance}` : 'this metal-bmc instance lost its console lease';
    }
    if (h.kind === 'other' && h.instance === via) return undefined;
    return `metal-bmc instance ${via} no longer holds the console`;
  }

  return {
    async open(machineId, options) {
      const h = o.holder(machineId);
      switch (h.kind) {
        case 'self':
        case 'free':
          return track(machineId, await o.open(machineId, options), undefined);
        case 'other':
          if (o.relay) return track(machineId, await o.relay(h.instance, machineId, options), h.instance);
          throw new BmcError('BUSY', `the console of machine ${machineId} is held by metal-bmc instance ${h.instance}; open it there`);
        case 'unknown':
          throw new BmcError('BUSY', `metal-bmc cannot tell which instance holds the console of machine ${machineId} (its NATS lease is not renewed); try again later`);
      }
    },
    cut() {
      let n = 0;
      for (const [stream, { machineId, via }] of [...streams]) {
        const why = stale(via, o.holder(machineId));
        if (why === undefined) continue;
        streams.delete(stream);
        stream.destroy(new BmcError('CLOSED', why));
        n++;
      }
      return n;
    },
  };
}
