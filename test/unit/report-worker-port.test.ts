/**
 * What crosses a report worker's port (src/report/worker-protocol.ts): a read's outcome keeps the
 * error code the cycle counts by (a BmcError again on the main side, any other code a plain
 * Error), and a worker's log lines become bounded records with the daemon's redaction of secrets.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BmcError, isBmcErrorCode } from '../../src/errors.js';
import { createWorkerLogSender, type WorkerLogHeld, type WorkerLogRecord } from '../../src/outband/worker-log.js';
import { attemptOfPort, validTrustUpdate } from '../../src/report/worker-pool.js';
import { factsOf, reasonOf } from '../../src/status/reason.js';
import { attemptOverPort, workerLogger } from '../../src/report/worker-thread.js';

const CODES = ['TIMEOUT', 'ABORTED', 'AUTH_FAILED', 'HTTP', 'UNTRUSTED', 'CLOSED', 'UNKNOWN', 'timeout', '__proto__', 'constructor', ''];

describe('a read across the port', () => {
  it('keeps the code, message and protocol detail of a BmcError; anything else is an Error with its message', () => {
    fc.assert(
      fc.property(fc.oneof(fc.constantFrom(...CODES), fc.string()), fc.string(), fc.option(fc.integer({ min: 100, max: 599 }), { nil: undefined }), fc.nat(60_000), fc.boolean(), (code, message, httpStatus, durationMs, late) => {
        const error = isBmcErrorCode(code) ? new BmcError(code, message, httpStatus === undefined ? {} : { httpStatus }) : Object.assign(new Error(message), { code });
        const back = attemptOfPort(structuredClone(attemptOverPort({ ok: false, error, durationMs, late })));
        expect(back.ok).toBe(false);
        expect(back.durationMs).toBe(durationMs);
        expect(back.late).toBe(late);
        const err = back.ok ? undefined : back.error;
        if (isBmcErrorCode(code)) {
          expect(err).toBeInstanceOf(BmcError);
          expect((err as BmcError).code).toBe(code);
          expect((err as BmcError).httpStatus).toBe(httpStatus);
        } else {
          expect(err).not.toBeInstanceOf(BmcError);
        }
        expect((err as Error).message).toBe(message);
      }),
    );
  });

  it("keeps the cause's code, so the status page still tells a certificate failure from a wrong password", () => {
    const tls = new BmcError('AUTH_FAILED', 'Redfish: TLS verification failed', { cause: Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }) });
    const back = attemptOfPort(structuredClone(attemptOverPort({ ok: false, error: tls, durationMs: 1, late: false })));
    const err = back.ok ? undefined : back.error;
    expect(reasonOf(factsOf(err))).toBe('certificate');
    expect(reasonOf(factsOf(tls))).toBe('certificate');
    // a plain error keeps its own code (an errno) for the cycle's count
    const plain = attemptOfPort(structuredClone(attemptOverPort({ ok: false, error: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), durationMs: 1, late: false })));
    expect(plain.ok ? undefined : factsOf(plain.error).code).toBe('ECONNREFUSED');
  });

  it('passes a report through as it was', () => {
    const report = { uuid: 'u', bmcVersion: '1', biosVersion: '2', fru: {}, powerState: 'ON', indicatorLED: 'LED-OFF', powerSupplies: [], source: 'redfish', missing: ['x'] } as never;
    expect(attemptOfPort(structuredClone(attemptOverPort({ ok: true, report, vendor: 'lenovo', durationMs: 5, late: false })))).toEqual({ ok: true, report, vendor: 'lenovo', durationMs: 5, late: false });
  });
});

describe("a report worker's trust changes", () => {
  const hex = fc.stringMatching(/^[0-9a-f]{64}$/);
  it('are taken only for the BMC of the read they name, with a fingerprint, address and proof as the trust file holds them', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('mac:aa:bb:cc:dd:ee:ff', 'ip:10.0.0.1'),
        fc.oneof(fc.constantFrom('mac:aa:bb:cc:dd:ee:ff', 'ip:10.0.0.1', 'mac:00:00:00:00:00:01'), fc.string()),
        fc.option(fc.oneof(hex, fc.string()), { nil: undefined }),
        fc.option(fc.oneof(fc.constantFrom('10.0.0.1', 'x'.repeat(65)), fc.integer() as fc.Arbitrary<unknown>), { nil: undefined }),
        fc.option(fc.constantFrom('ipmi', 'none', 'rakp', 1), { nil: undefined }),
        fc.boolean(),
        (readKey, key, redfishSha256, ip, proof, inFlight) => {
          const m = { type: 'trust-update', id: 1, key, patch: { redfishSha256, ip, proof } } as never;
          const valid =
            inFlight &&
            key === readKey &&
            (redfishSha256 === undefined || /^[0-9a-f]{64}$/.test(redfishSha256)) &&
            (ip === undefined || (typeof ip === 'string' && ip.length <= 64)) &&
            (proof === undefined || proof === 'ipmi' || proof === 'none');
          expect(validTrustUpdate(m, inFlight ? readKey : undefined)).toBe(valid);
        },
      ),
    );
  });
});

describe("a report worker's log lines", () => {
  function capture(level = 'debug') {
    const sent: Array<WorkerLogRecord | WorkerLogHeld> = [];
    const logger = workerLogger(level, createWorkerLogSender((m) => sent.push(m)));
    return { logger, records: () => sent.filter((m): m is WorkerLogRecord => m.type === 'log') };
  }

  it('become records: an error as its message, a list joined, secrets redacted, objects without a message left out', () => {
    const { logger, records } = capture();
    logger.warn({ bmc: '10.0.0.1', err: new BmcError('TIMEOUT', 'no answer within 20000 ms'), missing: ['fru', 'led'], password: 'hunter2-secret', detail: { nested: 1 } }, 'cannot read BMC');
    expect(records()).toEqual([{ type: 'log', level: 'warn', msg: 'cannot read BMC', fields: { bmc: '10.0.0.1', err: 'no answer within 20000 ms', missing: 'fru, led', password: '[redacted]' } }]);
    expect(JSON.stringify(records())).not.toContain('hunter2');
  });

  it("keep the main thread's level: below it nothing is sent", () => {
    const { logger, records } = capture('warn');
    logger.debug({ bmc: '10.0.0.1' }, 'Redfish unavailable, using IPMI');
    logger.info({ bmc: '10.0.0.1' }, 'BMC certificate recorded on first use');
    logger.error({ bmc: '10.0.0.1' }, 'BMC did not prove over IPMI that it knows the password; no credentials sent to it');
    expect(records().map((r) => r.level)).toEqual(['error']);
  });
});
