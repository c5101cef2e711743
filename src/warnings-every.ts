/**
 * When to say a recurring warning again: once per key and `everyMs`, remembering at most `max`
 * keys (the one told longest ago forgotten first). A fleet of BMCs, or a burst of commands with
 * NATS away, says each thing once in a while instead of once per BMC or command.
 */
import { performance } from 'node:perf_hooks';

export function warningsEvery(everyMs: number, max = 4096, now: () => number = () => performance.now()): { due(key: string): boolean } {
  const told = new Map<string, number>();
  return {
    due(key) {
      const at = now();
      const last = told.get(key);
      if (last !== undefined && at - last < everyMs) return false;
      told.delete(key);
      told.set(key, at);
      if (told.size > max) told.delete(told.keys().next().value!);
      return true;
    },
  };
}
