/**
 * The console backend of an instance that shares its partition with others (issue 13, item 4):
 * it opens a machine's BMC console only while no other instance holds the machine, so two
 * instances never fight over a BMC's single SOL session (the backend opens SOL with take-over).
 * A machine another instance holds is served through `relay` when there is one (output and input
 * over NATS from the owner), else refused with BUSY naming the owner. While this instance does
 * not know who holds what (NATS lost), it opens nothing.
 *
 * `cut()` ends the BMC streams of machines this instance no longer may hold; the hub's session
 * then reconnects through `open` again, which relays or refuses.
 */
import type { Duplex } from 'node:stream';
import { BmcError } from '../errors.js';
import type { OpenBackend } from './types.js';

export type Holder =
  | { kind: 'self' }
  /** nobody holds it: this instance may open it */
  | { kind: 'free' }
  | { kind: 'other'; instance: string }
  /** this instance cannot tell (its lease is not renewed) */
  | { kind: 'unknown' };

export interface OwnedBackendOptions {
  open: OpenBackend;
  holder(machineId: string): Holder;
  /** the owner's console over the bus; without it a machine another instance holds is refused */
  relay?: (instance: string, machineId: string, options: { signal: AbortSignal }) => Promise<Duplex>;
}

export interface OwnedBackend {
  open: OpenBackend;
  /** ends this instance's BMC streams of machines it may no longer hold; how many were ended */
  cut(): number;
}

export function ownedBackend(o: OwnedBackendOptions): OwnedBackend {
  const direct = new Map<string, Set<Duplex>>();

  function track(machineId: string, stream: Duplex): Duplex {
    let set = direct.get(machineId);
    if (!set) direct.set(machineId, (set = new Set()));
    set.add(stream);
    stream.once('close', () => {
      set.delete(stream);
      if (set.size === 0 && direct.get(machineId) === set) direct.delete(machineId);
    });
    return stream;
  }

  const mayOpen = (h: Holder) => h.kind === 'self' || h.kind === 'free';

  return {
    async open(machineId, options) {
      const h = o.holder(machineId);
      switch (h.kind) {
        case 'self':
        case 'free':
          return track(machineId, await o.open(machineId, options));
        case 'other':
          if (o.relay) return await o.relay(h.instance, machineId, options);
          throw new BmcError('BUSY', `the console of machine ${machineId} is held by metal-bmc instance ${h.instance}; open it there`);
        case 'unknown':
          throw new BmcError('BUSY', `metal-bmc cannot tell which instance holds the console of machine ${machineId} (its NATS lease is not renewed); try again later`);
      }
    },
    cut() {
      let n = 0;
      for (const [machineId, streams] of [...direct]) {
        const h = o.holder(machineId);
        if (mayOpen(h)) continue;
        const why = h.kind === 'other' ? `the console moved to metal-bmc instance ${h.instance}` : 'this metal-bmc instance lost its console lease';
        for (const s of streams) {
          s.destroy(new BmcError('CLOSED', why));
          n++;
        }
      }
      return n;
    },
  };
}
