/**
 * Log records of console worker threads (src/console/worker-log.ts): every record is cut to its
 * bounds and never throws (fast-check), the worker's sender holds back what exceeds its rate and
 * says how much, sends a quirk once per BMC and quirk, and the main thread logs a quirk record
 * through the process-wide once-per-BMC-and-quirk rule with the worker's and machine's names,
 * which a record cannot overwrite. The worker side of the port forwards its sessions' quirks.
 */
import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { boundWorkerLog, createWorkerLogSender, logWorkerRecord, WORKER_LOG_BOUNDS, type WorkerLogHeld, type WorkerLogRecord } from '../../src/outband/worker-log.js';
import { serveConsoles, type PortLike } from '../../src/console/worker-thread.js';
import type { FromWorker, ToWorker } from '../../src/console/worker-protocol.js';
import { captureLog } from '../helpers/log.js';
import { waitFor } from '../helpers/wait.js';

describe('worker log record bounds', () => {
  it('keeps a well-formed record as it is', () => {
    expect(boundWorkerLog({ id: 3, level: 'warn', msg: 'BMC x: y', fields: { bmc: '10.0.0.1', quirk: 'sol-port', n: 2, ok: true } })).toEqual({
      type: 'log',
      id: 3,
      level: 'warn',
      msg: 'BMC x: y',
      fields: { bmc: '10.0.0.1', quirk: 'sol-port', n: 2, ok: true },
    });
  });

  it.each([
    ['an unknown level', { level: 'fatal', msg: 'x', fields: {} }],
    ['an empty message', { level: 'info', msg: '', fields: {} }],
    ['a console id that is no positive integer', { id: -1, level: 'info', msg: 'x', fields: {} }],
    ['no object', 'warn'],
  ])('refuses %s', (_what, v) => {
    expect(boundWorkerLog(v)).toBeUndefined();
  });

  it('leaves out reserved, malformed and non-primitive fields, so a record cannot pose as another worker or machine', () => {
    const r = boundWorkerLog({ level: 'info', msg: 'x', fields: { worker: 9, machineId: 'other', threadId: 1, 'a.b': 1, obj: { a: 1 }, nan: Number.NaN, fine: 'yes' } });
    expect(r?.fields).toEqual({ fine: 'yes' });
  });

  it('cuts every record to its bounds and never throws', () => {
    fc.assert(
      fc.property(fc.anything({ maxDepth: 3 }), fc.dictionary(fc.string({ maxLength: 40 }), fc.oneof(fc.string({ maxLength: 400 }), fc.double(), fc.boolean(), fc.object()), { maxKeys: 20 }), fc.string({ maxLength: 1000 }), fc.constantFrom('debug', 'info', 'warn', 'error', 'trace', 'x'), (junk, fields, msg, level) => {
        for (const v of [junk, { level, msg, fields }, { level, msg, fields, id: junk }]) {
          const r = boundWorkerLog(v);
          if (!r) continue;
          expect(r.msg.length).toBeLessThanOrEqual(WORKER_LOG_BOUNDS.msgChars);
          expect(Object.keys(r.fields).length).toBeLessThanOrEqual(WORKER_LOG_BOUNDS.fields);
          for (const [k, value] of Object.entries(r.fields)) {
            expect(k.length).toBeLessThanOrEqual(WORKER_LOG_BOUNDS.keyChars);
            expect(['string', 'number', 'boolean']).toContain(typeof value);
            if (typeof value === 'string') expect(value.length).toBeLessThanOrEqual(WORKER_LOG_BOUNDS.valueChars);
          }
          expect(boundWorkerLog(r)).toEqual(r);
        }
      }),
    );
  });
});

describe('worker log sender', () => {
  it('sends at most the burst at once, then the rate, and says how many it held back', () => {
    let t = 1_000_000;
    const sent: Array<WorkerLogRecord | WorkerLogHeld> = [];
    const s = createWorkerLogSender((m) => sent.push(m), () => t);
    for (let i = 0; i < 1000; i++) s.log({ level: 'info', msg: `line ${i}`, fields: {} });
    expect(sent).toHaveLength(WORKER_LOG_BOUNDS.burst);
    expect(s.suppressed).toBe(1000 - WORKER_LOG_BOUNDS.burst);
    t += 1000; // one second: room for `perSecond` more, the first of them says what was held back
    s.log({ level: 'info', msg: 'after', fields: {} });
    expect(sent.slice(WORKER_LOG_BOUNDS.burst)).toEqual([
      { type: 'log-held', count: 1000 - WORKER_LOG_BOUNDS.burst },
      { type: 'log', level: 'info', msg: 'after', fields: {} },
    ]);
  });

  it('sends a quirk once per BMC and quirk', () => {
    const sent: Array<WorkerLogRecord | WorkerLogHeld> = [];
    const s = createWorkerLogSender((m) => sent.push(m));
    for (let i = 0; i < 50; i++) s.quirk(1, '10.0.0.1', { kind: 'sequence-restart', message: 'restarted' });
    s.quirk(2, '10.0.0.2', { kind: 'sequence-restart', message: 'restarted' });
    s.quirk(1, '10.0.0.1', { kind: 'sol-port', message: 'port' });
    expect(sent).toEqual([
      { type: 'log', id: 1, level: 'warn', msg: 'restarted', fields: { bmc: '10.0.0.1', quirk: 'sequence-restart' } },
      { type: 'log', id: 2, level: 'warn', msg: 'restarted', fields: { bmc: '10.0.0.2', quirk: 'sequence-restart' } },
      { type: 'log', id: 1, level: 'warn', msg: 'port', fields: { bmc: '10.0.0.1', quirk: 'sol-port' } },
    ]);
  });
});

describe('worker log records in the main thread', () => {
  it('logs a quirk once per BMC and quirk as a warning with worker, thread and machine, then as debug', () => {
    const log = captureLog('debug');
    const bmc = `192.0.2.${100 + Math.floor(Math.random() * 100)}`;
    const record = { type: 'log', id: 4, level: 'warn', msg: `BMC ${bmc} named its SOL port in network byte order`, fields: { bmc, quirk: 'sol-port' } };
    expect(logWorkerRecord(log.logger, record, { worker: 1, threadId: 7, machineId: 'm-1' })).toBe(true);
    expect(logWorkerRecord(log.logger, record, { worker: 0, threadId: 8, machineId: 'm-1' })).toBe(true);
    const lines = log.find(record.msg);
    expect(lines.map((l) => l.level)).toEqual([40, 20]);
    expect(lines[0]).toMatchObject({ bmc, quirk: 'sol-port', worker: 1, threadId: 7, machineId: 'm-1' });
  });

  it('logs another record at its level, and refuses what is not one', () => {
    const log = captureLog('debug');
    expect(logWorkerRecord(log.logger, { level: 'error', msg: 'x', fields: { worker: 99, reason: 'r' } }, { worker: 2, threadId: 3 })).toBe(true);
    expect(log.find('x')[0]).toMatchObject({ level: 50, worker: 2, threadId: 3, reason: 'r' });
    expect(logWorkerRecord(log.logger, { level: 'error' }, { worker: 2, threadId: 3 })).toBe(false);
  });
});

describe('the worker side of the port', () => {
  it('forwards the IPMI events of a session it opens as one quirk record per BMC and quirk', async () => {
    const sent: FromWorker[] = [];
    let listener: ((m: ToWorker) => void) | undefined;
    const port: PortLike = { postMessage: (m) => sent.push(m), on: (_e, l) => (listener = l) };
    serveConsoles(port, { metalBmc: 'console-worker', maxInFlightBytes: 1 << 20 }, async (_t, _s, _takeOver, onEvent) => {
      for (let i = 0; i < 3; i++) onEvent?.({ kind: 'sequence-restart', message: 'BMC restarted its sequence numbers' });
      return new PassThrough();
    });
    listener!({ type: 'open', id: 5, target: { host: '10.1.0.17', port: 623, user: 'ADMIN', password: 'secret', timeoutMs: 1000 }, takeOver: true });
    await waitFor(() => sent.some((m) => m.type === 'opened'));
    const logs = sent.filter((m) => m.type === 'log');
    expect(logs).toEqual([{ type: 'log', id: 5, level: 'warn', msg: 'BMC restarted its sequence numbers', fields: { bmc: '10.1.0.17', quirk: 'sequence-restart' } }]);
    expect(JSON.stringify(sent)).not.toContain('secret');
  });
});
