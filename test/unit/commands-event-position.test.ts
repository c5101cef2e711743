/**
 * The position reached in the machine-event stream: where a durable consumer created again starts
 * (`consumerStartFor`, pure), and the state file that keeps the position across restarts.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { consumerStartFor } from '../../src/bus/jetstream.js';
import { openEventPositionStore } from '../../src/commands/event-position.js';
import { captureLog } from '../helpers/log.js';
import { waitFor } from '../helpers/wait.js';

const info = (o: { name?: string; created?: string; lastSeq?: number } = {}) =>
  ({ config: { name: o.name ?? 'METAL_BMC_P-MACHINE' }, created: o.created ?? '2026-01-01T00:00:00.000000001Z', state: { last_seq: o.lastSeq ?? 100, messages: 50 } }) as Parameters<typeof consumerStartFor>[0];
const saved = { stream: 'METAL_BMC_P-MACHINE', created: '2026-01-01T00:00:00.000000001Z', seq: 90 };

describe('where a durable consumer created now starts', () => {
  it('after the last event settled here, when the position is for this very stream', () => {
    expect(consumerStartFor(info(), saved)).toEqual({ policy: { deliver_policy: 'by_start_sequence', opt_start_seq: 91 }, start: 'sequence 91, after the last event settled here' });
    // everything settled: the next event the stream stores
    expect(consumerStartFor(info({ lastSeq: 90 }), saved).policy).toEqual({ deliver_policy: 'by_start_sequence', opt_start_seq: 91 });
  });

  it('at the first event the stream holds without a position of this stream, and says why', () => {
    const all = { deliver_policy: 'all' };
    expect(consumerStartFor(info(), undefined)).toEqual({ policy: all, start: 'the first event the stream holds (no position saved here)' });
    expect(consumerStartFor(info({ name: 'OPS' }), saved)).toEqual({ policy: all, start: 'the first event the stream holds (the position saved here is in stream METAL_BMC_P-MACHINE)' });
    expect(consumerStartFor(info({ created: '2026-02-01T00:00:00Z' }), saved)).toEqual({ policy: all, start: 'the first event the stream holds (the stream was created again after the position saved here, sequence 90)' });
    expect(consumerStartFor(info({ lastSeq: 12 }), saved)).toEqual({ policy: all, start: 'the first event the stream holds (the position saved here, sequence 90, is beyond the stream\'s last, 12)' });
  });
});

describe('the position file', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const fileIn = () => {
    const dir = mkdtempSync(join(tmpdir(), 'metal-bmc-position-'));
    dirs.push(dir);
    return join(dir, 'state', 'machine-event-position.json');
  };

  it('starts without a position when there is no file, keeps each save in memory at once, and writes a burst of them once', async () => {
    const file = fileIn();
    const store = openEventPositionStore({ file, logger: captureLog().logger, writeDelayMs: 20 });
    expect(store.load()).toBeUndefined();
    for (let seq = 1; seq <= 100; seq++) store.save({ ...saved, seq });
    expect(store.load()).toEqual({ ...saved, seq: 100 });
    await waitFor(() => {
      try {
        return (JSON.parse(readFileSync(file, 'utf8')) as { seq: number }).seq === 100;
      } catch {
        return false;
      }
    }, 5000, 'the file written', 10);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ version: 1, ...saved, seq: 100 });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    await store.close();
  });

  it('close() writes what is pending; the next process reads it back', async () => {
    const file = fileIn();
    const store = openEventPositionStore({ file, logger: captureLog().logger, writeDelayMs: 60_000 });
    store.save(saved);
    await store.close();
    expect(openEventPositionStore({ file, logger: captureLog().logger }).load()).toEqual(saved);
  });

  it('an unreadable file is logged and ignored (the consumer then starts at the stream\'s first event), and rewritten by the next save', async () => {
    const file = fileIn();
    const first = openEventPositionStore({ file, logger: captureLog().logger, writeDelayMs: 0 });
    first.save(saved);
    await first.close();
    for (const text of ['{"stream": "S", "created": ', JSON.stringify({ stream: 'S', created: 'c', seq: -1 })]) {
      writeFileSync(file, text);
      const log = captureLog();
      const store = openEventPositionStore({ file, logger: log.logger, writeDelayMs: 0 });
      expect(store.load()).toBeUndefined();
      expect(log.find('machine event position file is not readable; starting without it (it is rewritten as events settle)')).toHaveLength(1);
      store.save(saved);
      await store.close();
      expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject(saved);
    }
  });
});
