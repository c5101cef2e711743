/**
 * The console worker's side of the port (src/console/worker-thread.ts) with an in-memory port and
 * a PassThrough for the BMC console: output of one turn, of every console, goes out as one message, output beyond
 * the bytes in flight is dropped and reported instead of queued, acknowledgements make room,
 * input reaches the console, a failed open says why, and shutdown closes every console. While
 * output streams, it leaves at most once per OUTPUT_COALESCE_MS; the first after a quiet spell at once.
 */
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { OUTPUT_COALESCE_MS, serveConsoles, type PortLike } from '../../src/console/worker-thread.js';
import type { FromWorker, SolTarget, ToWorker } from '../../src/console/worker-protocol.js';
import { waitFor } from '../helpers/wait.js';

const TARGET: SolTarget = { host: '127.0.0.1', port: 623, user: 'ADMIN', password: 'secret', timeoutMs: 1000 };

function harness(maxInFlightBytes: number, open: (t: SolTarget, s: AbortSignal, takeOver: boolean) => Promise<PassThrough>) {
  const sent: FromWorker[] = [];
  let listener: ((m: ToWorker) => void) | undefined;
  const port: PortLike = { postMessage: (m) => sent.push(m), on: (_e, l) => (listener = l) };
  serveConsoles(port, { metalBmc: 'console-worker', maxInFlightBytes }, open);
  return { sent, tell: (m: ToWorker) => listener!(m) };
}

const text = (m: FromWorker) => (m.type === 'data' ? Buffer.from(m.data).toString('latin1') : '');
/** each console's part of a data message, by id */
function parts(m: FromWorker): Record<number, string> {
  if (m.type !== 'data') return {};
  const out: Record<number, string> = {};
  let at = 0;
  m.ids.forEach((id, i) => {
    out[id] = Buffer.from(m.data, at, m.lengths[i]).toString('latin1');
    at += m.lengths[i]!;
  });
  return out;
}

describe('console worker thread', () => {
  it('sends one turn of output as one message, drops what exceeds the bytes in flight, and takes acks', async () => {
    const bmc = new PassThrough();
    const h = harness(10, async () => bmc);
    h.tell({ type: 'open', id: 7, target: TARGET, takeOver: true });
    await waitFor(() => h.sent.some((m) => m.type === 'opened' && m.id === 7));
    bmc.write('abc');
    bmc.write('def');
    await waitFor(() => h.sent.some((m) => m.type === 'data'));
    expect(h.sent.filter((m) => m.type === 'data').map(text)).toEqual(['abcdef']);
    bmc.write('ghijk'); // 6 in flight + 5 > 10: dropped, not queued
    await waitFor(() => h.sent.some((m) => m.type === 'dropped'));
    expect(h.sent.find((m) => m.type === 'dropped')).toEqual({ type: 'dropped', id: 7, bytes: 5 });
    h.tell({ type: 'ack', ids: [7], bytes: [6] });
    bmc.write('lmnop');
    await waitFor(() => h.sent.filter((m) => m.type === 'data').length === 2);
    expect(text(h.sent.filter((m) => m.type === 'data')[1]!)).toBe('lmnop');
  });

  it('tells the bytes dropped in one message per flush, not one per datagram (a flood)', async () => {
    const bmc = new PassThrough();
    const h = harness(10, async () => bmc);
    h.tell({ type: 'open', id: 3, target: TARGET, takeOver: true });
    await waitFor(() => h.sent.some((m) => m.type === 'opened' && m.id === 3));
    bmc.write('0123456789'); // the bound, in flight until acknowledged
    await waitFor(() => h.sent.some((m) => m.type === 'data'));
    // one turn of 200 small datagrams, all beyond the bound
    for (let i = 0; i < 200; i++) bmc.write('x');
    await waitFor(() => h.sent.some((m) => m.type === 'dropped'));
    expect(h.sent.filter((m) => m.type === 'dropped')).toEqual([{ type: 'dropped', id: 3, bytes: 200 }]);
  });

  describe('while output streams', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('sends at most one message per coalescing interval, and the first output after a quiet spell at the end of its turn', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate', 'performance', 'Date'] });
      const bmc = new PassThrough();
      const h = harness(1 << 20, async () => bmc);
      h.tell({ type: 'open', id: 3, target: TARGET, takeOver: true });
      await vi.waitFor(() => expect(h.sent.some((m) => m.type === 'opened')).toBe(true));
      const data = () => h.sent.filter((m) => m.type === 'data').map(text);
      bmc.write('a');
      await vi.advanceTimersByTimeAsync(0);
      expect(data()).toEqual(['a']); // quiet before: at the end of the turn, no waiting
      bmc.write('b');
      await vi.advanceTimersByTimeAsync(OUTPUT_COALESCE_MS / 4);
      bmc.write('c');
      await vi.advanceTimersByTimeAsync(OUTPUT_COALESCE_MS / 4);
      expect(data()).toEqual(['a']); // turns later, still within the interval: held
      await vi.advanceTimersByTimeAsync(OUTPUT_COALESCE_MS / 2);
      expect(data()).toEqual(['a', 'bc']); // one message for the interval's output
      await vi.advanceTimersByTimeAsync(10 * OUTPUT_COALESCE_MS);
      bmc.write('d');
      await vi.advanceTimersByTimeAsync(0);
      expect(data()).toEqual(['a', 'bc', 'd']); // quiet again: at once
    });

    it("keeps the interval after a console's end sent the output early", async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate', 'performance', 'Date'] });
      const bmcs = [new PassThrough(), new PassThrough()];
      const h = harness(1 << 20, async () => bmcs.shift()!);
      const [one, two] = bmcs as [PassThrough, PassThrough];
      h.tell({ type: 'open', id: 1, target: TARGET, takeOver: true });
      h.tell({ type: 'open', id: 2, target: TARGET, takeOver: true });
      await vi.waitFor(() => expect(h.sent.filter((m) => m.type === 'opened')).toHaveLength(2));
      const data = () => h.sent.filter((m) => m.type === 'data').map(text);
      one.write('a');
      await vi.advanceTimersByTimeAsync(0);
      one.write('b'); // waits for the interval
      await vi.advanceTimersByTimeAsync(OUTPUT_COALESCE_MS / 4);
      two.end(); // a console's end sends what is pending at once
      await vi.advanceTimersByTimeAsync(0);
      expect(h.sent.some((m) => m.type === 'end')).toBe(true);
      expect(data()).toEqual(['a', 'b']);
      one.write('c');
      await vi.advanceTimersByTimeAsync(OUTPUT_COALESCE_MS - 1);
      expect(data()).toEqual(['a', 'b']); // the wait for 'b' no longer stands: 'c' waits a whole interval from the end's send
      await vi.advanceTimersByTimeAsync(1);
      expect(data()).toEqual(['a', 'b', 'c']);
    });
  });

  it('sends the output of every console of one turn in one message, and an ack of several consoles makes room for each', async () => {
    const consoles = new Map<number, PassThrough>();
    const h = harness(8, async () => {
      const c = new PassThrough();
      consoles.set(consoles.size + 1, c);
      return c;
    });
    h.tell({ type: 'open', id: 1, target: TARGET, takeOver: true });
    await waitFor(() => h.sent.some((m) => m.type === 'opened' && m.id === 1));
    h.tell({ type: 'open', id: 2, target: TARGET, takeOver: true });
    await waitFor(() => h.sent.some((m) => m.type === 'opened' && m.id === 2));
    consoles.get(1)!.write('one-');
    consoles.get(2)!.write('two-');
    consoles.get(1)!.write('1');
    await waitFor(() => h.sent.some((m) => m.type === 'data'));
    const data = h.sent.filter((m) => m.type === 'data');
    expect(data).toHaveLength(1);
    expect(parts(data[0]!)).toEqual({ 1: 'one-1', 2: 'two-' });
    consoles.get(1)!.write('xxxx'); // 5 + 4 > 8 in flight for console 1
    consoles.get(2)!.write('yyyy'); // 4 + 4 = 8: still fits for console 2
    await waitFor(() => h.sent.some((m) => m.type === 'dropped') && h.sent.filter((m) => m.type === 'data').length === 2);
    expect(h.sent.find((m) => m.type === 'dropped')).toEqual({ type: 'dropped', id: 1, bytes: 4 });
    expect(parts(h.sent.filter((m) => m.type === 'data')[1]!)).toEqual({ 2: 'yyyy' });
    h.tell({ type: 'ack', ids: [1, 2], bytes: [5, 8] });
    consoles.get(1)!.write('12345678');
    consoles.get(2)!.write('abcdefgh');
    await waitFor(() => h.sent.filter((m) => m.type === 'data').length === 3);
    expect(parts(h.sent.filter((m) => m.type === 'data')[2]!)).toEqual({ 1: '12345678', 2: 'abcdefgh' });
  });

  it('a break message reaches the console after the input sent before it (a console without breaks ignores it)', async () => {
    const consoles: Array<PassThrough & { sendBreak(): boolean }> = [];
    const h = harness(1 << 20, async () => {
      const c = new PassThrough() as PassThrough & { sendBreak(): boolean };
      c.sendBreak = () => (c.write('<BREAK>'), true);
      consoles.push(c);
      return c;
    });
    h.tell({ type: 'open', id: 1, target: TARGET, takeOver: true });
    await waitFor(() => h.sent.some((m) => m.type === 'opened'));
    let typed = '';
    consoles[0]!.on('data', (d: Buffer) => (typed += d.toString()));
    h.tell({ type: 'input', id: 1, data: new TextEncoder().encode('a').buffer });
    h.tell({ type: 'break', id: 1 });
    h.tell({ type: 'input', id: 1, data: new TextEncoder().encode('b').buffer });
    await waitFor(() => typed === 'a<BREAK>b');
    h.tell({ type: 'break', id: 9 }); // no such console: nothing happens
  });

  it('writes input to the console, ends it on close, and reports the end of a console the BMC closed', async () => {
    const consoles: PassThrough[] = [];
    const h = harness(1 << 20, async () => {
      const c = new PassThrough();
      consoles.push(c);
      return c;
    });
    h.tell({ type: 'open', id: 1, target: TARGET, takeOver: true });
    h.tell({ type: 'open', id: 2, target: TARGET, takeOver: true });
    await waitFor(() => h.sent.filter((m) => m.type === 'opened').length === 2);
    let typed = '';
    consoles[0]!.on('data', (d: Buffer) => (typed += d.toString()));
    h.tell({ type: 'input', id: 1, data: new TextEncoder().encode('root\r').buffer });
    await waitFor(() => typed === 'root\r');
    consoles[1]!.destroy();
    await waitFor(() => h.sent.some((m) => m.type === 'end' && m.id === 2));
    h.tell({ type: 'shutdown' });
    await waitFor(() => h.sent.some((m) => m.type === 'closed'));
    expect(consoles[0]!.writableEnded).toBe(true);
  });

  it("opens with the takeover asked for, and says when another client took the console (the stream's takenOver)", async () => {
    const asked: boolean[] = [];
    const consoles: Array<PassThrough & { takenOver: boolean }> = [];
    const h = harness(1 << 20, async (_t, _s, takeOver) => {
      asked.push(takeOver);
      const c = Object.assign(new PassThrough(), { takenOver: false });
      consoles.push(c);
      return c;
    });
    h.tell({ type: 'open', id: 1, target: TARGET, takeOver: false });
    h.tell({ type: 'open', id: 2, target: TARGET, takeOver: true });
    await waitFor(() => h.sent.filter((m) => m.type === 'opened').length === 2);
    expect(asked).toEqual([false, true]);
    consoles[0]!.takenOver = true;
    consoles[0]!.destroy(new BmcError('CLOSED', 'SOL taken over by another session'));
    consoles[1]!.destroy(new BmcError('TIMEOUT', 'no acknowledgement'));
    await waitFor(() => h.sent.filter((m) => m.type === 'end').length === 2);
    expect(h.sent.filter((m) => m.type === 'end')).toEqual([
      { type: 'end', id: 1, message: 'SOL taken over by another session', takenOver: true },
      { type: 'end', id: 2, message: 'no acknowledgement' },
    ]);
  });

  it('says why an open failed, with the error code and without the password', async () => {
    const h = harness(1 << 20, async () => {
      throw new BmcError('AUTH_FAILED', 'BMC 127.0.0.1:623 refused the user');
    });
    h.tell({ type: 'open', id: 3, target: TARGET, takeOver: true });
    await waitFor(() => h.sent.some((m) => m.type === 'failed'));
    const failed = h.sent.find((m) => m.type === 'failed');
    expect(failed).toEqual({ type: 'failed', id: 3, code: 'AUTH_FAILED', message: 'BMC 127.0.0.1:623 refused the user' });
    expect(JSON.stringify(h.sent)).not.toContain(TARGET.password);
  });
});
