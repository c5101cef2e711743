/**
 * Where the newest N bytes of a capture begin (capture-newest.ts), against a naive reference that
 * reads the whole range and takes its last N bytes: a cursor started there gets a tail of the
 * range that covers at least its newest N bytes (or all of a shorter one), at most a record more,
 * from the start of an index line, and `leftOutBytes` is exactly what it did not get.
 */
import fc from 'fast-check';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { segmentName } from '../../src/console/capture-files.js';
import { cutOf, newestStart } from '../../src/console/capture-newest.js';
import { readHistory, type HistoryEvent } from '../../src/console/capture-read.js';
import { openMachineLog } from '../../src/console/capture-store.js';
import { captureLog } from '../helpers/log.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'capture-newest-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const { logger } = captureLog();
const T0 = 1_700_000_000_000;

type Op = { kind: 'data'; bytes: number } | { kind: 'flush' } | { kind: 'gap' };
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 400 }).map((bytes) => ({ kind: 'data' as const, bytes })) },
  { weight: 3, arbitrary: fc.constant({ kind: 'flush' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'gap' as const }) },
);

/** A machine's capture written by the store from `ops`, a second apart, each data op's bytes distinct from its neighbours'. */
async function capture(machineId: string, ops: Op[], fileBytes: number, files: number): Promise<void> {
  let clock = T0;
  const log = await openMachineLog({ dir, machineId, fileBytes, files, logger, now: () => clock });
  for (const [i, o] of ops.entries()) {
    clock += 1000;
    if (o.kind === 'data') log.append(Buffer.alloc(o.bytes, 97 + (i % 26)));
    else if (o.kind === 'flush') await log.flush();
    else {
      log.gapStart('BMC connection lost');
      clock += 500;
      log.gapEnd();
    }
  }
  await log.close();
}

const dataOf = (events: HistoryEvent[]) => Buffer.concat(events.flatMap((e) => (e.kind === 'data' ? [e.data] : [])));

let machines = 0;

describe('cutOf', () => {
  it('finds the segment and offset where the newest bytes begin (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 100 }), { maxLength: 8 }), fc.integer({ min: 1, max: 900 }), (sizes, newest) => {
        const total = sizes.reduce((a, b) => a + b, 0);
        const cut = cutOf(sizes, newest);
        if (total < newest) {
          expect(cut).toBeUndefined();
          return;
        }
        const before = sizes.slice(0, cut!.index).reduce((a, b) => a + b, 0);
        expect(before + cut!.offset).toBe(total - newest);
        expect(cut!.offset).toBeLessThan(sizes[cut!.index]!);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('newestStart', () => {
  it('starts a cursor at an index line from which it gets the newest N bytes of the range and says what it left out (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(op, { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 64, max: 1024 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 5000 }),
        fc.option(fc.integer({ min: 0, max: 45 }), { nil: undefined }),
        async (ops, fileBytes, files, newest, sinceStep) => {
          const machineId = `m${++machines}`;
          await capture(machineId, ops, fileBytes, files);
          const sinceMs = sinceStep === undefined ? undefined : T0 + sinceStep * 1000;
          const range = sinceMs === undefined ? {} : { sinceMs };
          // the reference: everything in the range, its last N bytes
          const all = dataOf(await readHistory(dir, machineId, range));
          const start = await newestStart(dir, machineId, newest, sinceMs);
          const got = dataOf(await readHistory(dir, machineId, { ...range, ...(start.from ? { from: start.from } : {}) }));
          expect(got.length).toBeGreaterThanOrEqual(Math.min(newest, all.length));
          expect(got.equals(all.subarray(all.length - got.length))).toBe(true);
          // about N: the record that holds the cut comes whole, and no record is longer than a segment
          expect(got.length).toBeLessThan(newest + fileBytes);
          expect(start.leftOutBytes).toBe(all.length - got.length);
          if (start.from) {
            const idx = readFileSync(join(dir, machineId, segmentName(start.from.seq, 'idx')));
            expect(start.from.idxPos === 0 || idx[start.from.idxPos - 1] === 10).toBe(true);
          }
        },
      ),
      { numRuns: 150 },
    );
  }, 60_000);
});
