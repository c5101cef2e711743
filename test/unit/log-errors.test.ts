/** Errors are logged as `{ err }`: the JSON line keeps a BmcError's code, its cause chain with their codes, and redaction still applies. */
import { describe, expect, it } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { captureLog } from '../helpers/log.js';

type Json = Record<string, unknown>;

describe('error logging', () => {
  it("keeps a BmcError's code, protocol detail and cause", () => {
    const log = captureLog();
    const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:443'), { code: 'ECONNREFUSED' });
    const inner = new BmcError('HTTP', 'Redfish answered 503', { httpStatus: 503, cause: refused });
    const err = new BmcError('TIMEOUT', 'reading BMC 10.0.0.1: timed out', { cause: inner });
    log.logger.warn({ bmc: '10.0.0.1', err }, 'cannot read BMC');
    log.logger.error(new BmcError('COMPLETION_CODE', 'Chassis Control refused', { completionCode: 0xd5 }), 'as the first argument');

    const [line, first] = log.lines as [Json, Json];
    const e = line.err as Json;
    expect(e).toMatchObject({ type: 'BmcError', code: 'TIMEOUT' });
    expect(e.message).toMatch(/^reading BMC 10\.0\.0\.1: timed out/);
    expect(e.stack).toMatch(/BmcError: reading BMC/);
    const cause = e.cause as Json;
    expect(cause).toMatchObject({ type: 'BmcError', code: 'HTTP', httpStatus: 503, message: expect.stringMatching(/^Redfish answered 503/) });
    expect(cause.cause).toMatchObject({ type: 'Error', code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 10.0.0.1:443' });
    expect(first.err).toMatchObject({ type: 'BmcError', code: 'COMPLETION_CODE', completionCode: 0xd5, message: 'Chassis Control refused' });
  });

  it('redacts secrets on a logged error and its causes', () => {
    const log = captureLog();
    const cause = Object.assign(new Error('login refused'), { password: 'SECRET-IN-CAUSE' });
    const err = Object.assign(new BmcError('AUTH_FAILED', 'Redfish login failed', { cause }), { token: 'SECRET-TOKEN' });
    log.logger.warn({ err }, 'login');
    expect(log.text()).not.toMatch(/SECRET-/);
    expect(((log.lines[0]!.err as Json).cause as Json).password).toBe('[redacted]');
  });

  it('ends a cause chain that loops, and leaves a value that is not an error as it is', () => {
    const log = captureLog();
    const a = new BmcError('PROTOCOL', 'a');
    const b = new BmcError('PROTOCOL', 'b', { cause: a });
    Object.defineProperty(a, 'cause', { value: b });
    log.logger.warn({ err: a }, 'loop');
    log.logger.warn({ err: 'plain text' }, 'text');
    expect((log.lines[0]!.err as Json).code).toBe('PROTOCOL');
    expect(log.lines[1]!.err).toBe('plain text');
  });
});
