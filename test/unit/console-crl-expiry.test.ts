/**
 * When the console's CRL goes out of date (src/console/crl-expiry.ts), on a hand-moved clock: told
 * once, as an error, when the CRL in force passes its nextUpdate or is loaded past it; nothing for a
 * CRL replaced in time; a nextUpdate beyond the longest timer Node keeps is still told on time.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { crlExpiredNote, watchCrlExpiry } from '../../src/console/crl-expiry.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const EXPIRED = /console CRL expired/;

let log: CapturedLog;

beforeEach(() => {
  vi.useFakeTimers({ now: new Date('2026-12-05T12:00:00Z') });
  log = captureLog('info');
});

afterEach(() => {
  vi.useRealTimers();
});

const inHours = (h: number) => new Date(Date.now() + h * HOUR);

describe('the console CRL going out of date', () => {
  it('is told once, as an error naming the file and the time, when its nextUpdate passes', () => {
    const expiry = watchCrlExpiry({ crlFile: '/etc/metal-bmc/console-crl.pem', logger: log.logger });
    const at = inHours(2);
    expiry.loaded(at);
    vi.advanceTimersByTime(2 * HOUR - 1);
    expect(log.find(EXPIRED)).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(log.find(EXPIRED)).toHaveLength(1);
    expect(log.find(EXPIRED)[0]).toMatchObject({ level: 50, crlFile: '/etc/metal-bmc/console-crl.pem', crlExpiredAt: at.toISOString() });
    vi.advanceTimersByTime(10 * DAY);
    expect(log.find(EXPIRED)).toHaveLength(1);
    expect(expiry.nextUpdate()).toEqual(at);
    expiry.stop();
  });

  it('a CRL loaded past its nextUpdate is told at once; one replaced in time is never told; one without a nextUpdate never', () => {
    const expiry = watchCrlExpiry({ crlFile: 'crl.pem', logger: log.logger });
    expiry.loaded(inHours(-1));
    expect(log.find(EXPIRED)).toHaveLength(1);
    expiry.loaded(inHours(1));
    vi.advanceTimersByTime(HOUR / 2);
    // the next CRL arrives before the first expires
    expiry.loaded(inHours(24));
    vi.advanceTimersByTime(12 * HOUR);
    expect(log.find(EXPIRED)).toHaveLength(1);
    expiry.loaded(undefined);
    vi.advanceTimersByTime(100 * DAY);
    expect(log.find(EXPIRED)).toHaveLength(1);
    expect(expiry.nextUpdate()).toBeUndefined();
    expiry.stop();
  });

  it('a nextUpdate beyond the longest timer (~24.8 days) is told on time, not early', () => {
    const expiry = watchCrlExpiry({ crlFile: 'crl.pem', logger: log.logger });
    const at = new Date(Date.now() + 40 * DAY);
    expiry.loaded(at);
    vi.advanceTimersByTime(40 * DAY - 1);
    expect(log.find(EXPIRED)).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(log.find(EXPIRED)).toHaveLength(1);
    expiry.stop();
  });

  it('stop() ends the wait', () => {
    const expiry = watchCrlExpiry({ crlFile: 'crl.pem', logger: log.logger });
    expiry.loaded(inHours(1));
    expiry.stop();
    vi.advanceTimersByTime(2 * HOUR);
    expect(log.find(EXPIRED)).toEqual([]);
  });

  it('a refused handshake is noted only while the CRL in force is past its nextUpdate', () => {
    const at = new Date('2026-12-05T12:00:00Z');
    expect(crlExpiredNote(undefined)).toBeUndefined();
    expect(crlExpiredNote(at, at.getTime() - 1)).toBeUndefined();
    expect(crlExpiredNote(at, at.getTime())).toEqual({ crlExpiredAt: '2026-12-05T12:00:00.000Z' });
  });
});
