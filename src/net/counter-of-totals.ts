/**
 * A Prometheus counter fed from running totals that something else keeps (a worker pool's stats),
 * read at each scrape: it grows by what is new since the last one, per label value. A total that
 * starts again lower (a worker slot's thread started again keeps its slot's totals, but a caller
 * may not) adds nothing until it passes what was seen.
 */
import { Counter, type Registry } from 'prom-client';

export function counterOfTotals<T>(registry: Registry, o: { name: string; help: string; label: string; rows: () => readonly T[]; labelOf: (row: T) => string; value: (row: T) => number }): void {
  const seen = new Map<string, number>();
  new Counter({
    name: o.name,
    help: o.help,
    labelNames: [o.label],
    registers: [registry],
    collect() {
      for (const row of o.rows()) {
        const label = o.labelOf(row);
        const now = o.value(row);
        const delta = now - (seen.get(label) ?? 0);
        if (delta > 0) this.inc({ [o.label]: label }, delta);
        seen.set(label, Math.max(now, seen.get(label) ?? 0));
      }
    },
  });
}
