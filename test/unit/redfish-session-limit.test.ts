/** Which Redfish error answers say the BMC's session slots are all taken (session-limit.ts). */
import { describe, expect, it } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { httpError } from '../../src/redfish/http-errors.js';
import { sessionLimitMessageId } from '../../src/redfish/session-limit.js';
import { warningsEvery } from '../../src/warnings-every.js';

const answer = (status: number, ...ids: string[]): BmcError =>
  httpError('POST', '/redfish/v1/SessionService/Sessions', status, { error: { code: 'Base.1.7.GeneralError', message: 'A general error has occurred.', '@Message.ExtendedInfo': ids.map((MessageId) => ({ MessageId, Message: 'm' })) } }, []);

describe('sessionLimitMessageId', () => {
  it.each([
    [503, 'IDRAC.2.4.RAC0218'],
    [503, 'IDRAC.2.1.RAC0218'],
    [503, 'Base.1.8.SessionLimitExceeded'],
    [400, 'Base.1.17.SessionLimitExceeded'],
    [403, 'idrac.2.9.rac0218'],
    [503, 'SESSIONLIMITEXCEEDED'],
  ])('HTTP %i with %s: the MessageId as the BMC wrote it', (status, id) => {
    expect(sessionLimitMessageId(answer(status, 'Base.1.7.GeneralError', id))).toBe(id);
  });

  it.each([['Base.1.7.GeneralError'], ['IDRAC.2.4.RAC0219'], ['Oem.SessionLimitExceededSoon'], ['RAC0218.Oem.Other'], ['Base.1.8.ServiceTemporarilyUnavailable'], ['Base.1.8.CreateLimitReachedForResource']])('%s is not a session limit', (id) => {
    expect(sessionLimitMessageId(answer(503, id))).toBeUndefined();
  });

  it('only the answer\'s ExtendedInfo counts: a message text or an error without one says nothing', () => {
    expect(sessionLimitMessageId(new BmcError('HTTP', 'POST: HTTP 503: SessionLimitExceeded', { httpStatus: 503 }))).toBeUndefined();
    expect(sessionLimitMessageId(undefined)).toBeUndefined();
  });
});

describe('warningsEvery', () => {
  it('says a BMC once per period, each BMC on its own, and remembers a bounded number of them', () => {
    let now = 0;
    const w = warningsEvery(1000, 2, () => now);
    expect([w.due('a'), w.due('a'), w.due('b')]).toEqual([true, false, true]);
    now = 999;
    expect(w.due('a')).toBe(false);
    now = 1000;
    expect(w.due('a')).toBe(true);
    // a third BMC: the one told longest ago (b) is forgotten, and said again
    expect(w.due('c')).toBe(true);
    expect([w.due('a'), w.due('b')]).toEqual([false, true]);
  });
});
