/**
 * Hedged GETs of one Redfish transport (src/redfish/http.ts `TransportOptions.hedge`) against an
 * HTTPS server: a GET the BMC leaves unanswered is sent again on another connection and the first
 * answer taken, but only to a BMC that answered another request promptly, once per transport,
 * never for a path that was slow when last asked too, and never for a request that changes something.
 */
import { expect } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { createTransport, openRedfish, SESSIONS_PATH, type TransportOptions } from '../../src/redfish/index.js';
import { MAX_SLOW_PATHS, type HedgeOutcome } from '../../src/redfish/http.js';
import { mockupPerTest } from '../helpers/mockup-per-test.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('openssl');

const AFTER_MS = 100;
const SYSTEMS = '/redfish/v1/Systems';
const CHASSIS = '/redfish/v1/Chassis';
const exactly = (path: string): RegExp => new RegExp(`^${path}$`);

const mock = mockupPerTest();
const { get, countOf, authorization } = mock;

function hedged(slowPaths = new Set<string>(), extra: Partial<TransportOptions> = {}) {
  const outcomes: HedgeOutcome[] = [];
  const t = createTransport({ host: mock.server.host, port: mock.server.port, insecure: true, retries: 0, timeoutMs: 10_000, hedge: { afterMs: AFTER_MS, slowPaths, onOutcome: (o) => outcomes.push(o) }, ...extra });
  mock.track(t);
  return { t, outcomes, slowPaths };
}


/** The BMC leaves the next request for `path` unanswered. */
const hangOnce = (path: string, method = 'GET'): void => mock.server.addFault({ path: exactly(path), method, fault: { kind: 'hang' }, times: 1 });

/** The next request for `path` is answered only once the returned function is called. */
function holdOnce(path: string): () => void {
  let release!: () => void;
  mock.server.addFault({ path: exactly(path), fault: { kind: 'held', until: new Promise<void>((r) => (release = r)) }, times: 1 });
  return release;
}

/** Resolves once more than AFTER_MS passed since `since` (the hedge's timer, due earlier, has fired by then). */
const pastHedgeTime = (since: number) => waitFor(() => performance.now() - since > AFTER_MS * 1.5, 5000, 'the hedge time past');

describe('hedged Redfish GETs', () => {
  it('a GET the BMC leaves unanswered is sent again on another connection, and that answer is taken', async () => {
    const { t, outcomes } = hedged();
    expect((await get(t, '/redfish/v1/')).status).toBe(200); // a prompt answer: the BMC is not slow as a whole
    hangOnce(SYSTEMS);
    const answer = await get(t, SYSTEMS);
    expect(answer.status).toBe(200);
    expect((answer.body as { '@odata.id': string })['@odata.id']).toBe(SYSTEMS);
    expect(countOf(SYSTEMS)).toBe(2);
    expect(outcomes).toEqual(['won']);
    // the unanswered copy's connection was cut off; the transport goes on over the other
    expect((await get(t, CHASSIS)).status).toBe(200);
    await waitFor(() => mock.server.openConnections() === 1, 5000, 'the cut connection closed at the server');
  });

  it('a hedge held back for want of a prompt answer goes once another request is answered promptly', async () => {
    const { t, outcomes } = hedged();
    hangOnce(SYSTEMS);
    const sent = performance.now();
    const systems = get(t, SYSTEMS);
    await pastHedgeTime(sent);
    expect(countOf(SYSTEMS)).toBe(1);
    expect((await get(t, '/redfish/v1/')).status).toBe(200);
    expect((await systems).status).toBe(200);
    expect(countOf(SYSTEMS)).toBe(2);
    expect(outcomes).toEqual(['won']);
  });

  it('the hedge time counts from going out on a connection, not from waiting behind another request', async () => {
    const after = 400;
    const outcomes: HedgeOutcome[] = [];
    const t = createTransport({ host: mock.server.host, port: mock.server.port, insecure: true, retries: 0, timeoutMs: 10_000, openConnectionAfterMs: 60_000, hedge: { afterMs: after, slowPaths: new Set(), onOutcome: (o) => outcomes.push(o) } });
    mock.track(t);
    expect((await get(t, '/redfish/v1/')).status).toBe(200);
    const release = holdOnce(CHASSIS);
    const chassis = get(t, CHASSIS);
    await waitFor(() => countOf(CHASSIS) === 1, 5000, 'the held request at the BMC');
    hangOnce(SYSTEMS);
    const queuedAt = performance.now();
    const systems = get(t, SYSTEMS); // waits for the one connection
    await waitFor(() => performance.now() - queuedAt > after * 0.75, 5000, 'most of the hedge time spent in the queue');
    release();
    await chassis;
    const startedAt = performance.now();
    await waitFor(() => countOf(SYSTEMS) === 2, 5000, 'the second copy at the BMC');
    // time is the subject: a lower bound, which load cannot break
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(after - 25);
    expect((await systems).status).toBe(200);
    expect(outcomes).toEqual(['won']);
  });

  it('a BMC that answered nothing promptly gets no second copy: its GET meets its deadline', async () => {
    const { t, outcomes } = hedged(new Set(), { timeoutMs: 1000 });
    hangOnce(SYSTEMS);
    await expect(get(t, SYSTEMS)).rejects.toSatisfy((e: unknown) => e instanceof BmcError && e.code === 'TIMEOUT');
    expect(countOf(SYSTEMS)).toBe(1);
    expect(outcomes).toEqual([]);
  });

  it('a path slow when last asked is not hedged (slow every time, a second copy gains nothing); once answered in time, it is again', async () => {
    const first = hedged();
    expect((await get(first.t, '/redfish/v1/')).status).toBe(200);
    const release = holdOnce(SYSTEMS);
    hangOnce(SYSTEMS); // the second copy gets no answer
    const systems = get(first.t, SYSTEMS);
    await waitFor(() => countOf(SYSTEMS) === 2, 5000, 'the second copy at the BMC');
    release();
    expect((await systems).status).toBe(200);
    expect(first.outcomes).toEqual(['lost']);
    expect([...first.slowPaths]).toEqual([SYSTEMS]);

    // the BMC's next read, with what the first one learnt: slow again, no second copy
    const second = hedged(first.slowPaths, { timeoutMs: 1000 });
    expect((await get(second.t, '/redfish/v1/')).status).toBe(200);
    hangOnce(SYSTEMS);
    await expect(get(second.t, SYSTEMS)).rejects.toSatisfy((e: unknown) => e instanceof BmcError && e.code === 'TIMEOUT');
    expect(countOf(SYSTEMS)).toBe(3);
    expect(second.outcomes).toEqual([]);
    expect(first.slowPaths.has(SYSTEMS)).toBe(true);

    // answered in time: a straggler next time gets its second copy
    const third = hedged(first.slowPaths);
    expect((await get(third.t, SYSTEMS)).status).toBe(200);
    expect(first.slowPaths.size).toBe(0);
    hangOnce(SYSTEMS);
    const fourth = hedged(first.slowPaths);
    expect((await get(fourth.t, '/redfish/v1/')).status).toBe(200);
    expect((await get(fourth.t, SYSTEMS)).status).toBe(200);
    expect(fourth.outcomes).toEqual(['won']);
  });

  it('one hedge per transport: a second unanswered GET meets its deadline', async () => {
    const { t, outcomes } = hedged(new Set(), { timeoutMs: 1500 });
    expect((await get(t, '/redfish/v1/')).status).toBe(200);
    hangOnce(SYSTEMS);
    expect((await get(t, SYSTEMS)).status).toBe(200);
    hangOnce(CHASSIS);
    await expect(get(t, CHASSIS)).rejects.toSatisfy((e: unknown) => e instanceof BmcError && e.code === 'TIMEOUT');
    expect(countOf(CHASSIS)).toBe(1);
    expect(outcomes).toEqual(['won']);
  });

  it('a request that changes something is never sent twice', async () => {
    const { t, outcomes } = hedged(new Set(), { timeoutMs: 1000 });
    expect((await get(t, '/redfish/v1/')).status).toBe(200);
    const reset = '/redfish/v1/Systems/1/Actions/ComputerSystem.Reset';
    hangOnce(reset, 'POST');
    await expect(t.request({ method: 'POST', path: reset, headers: { authorization: authorization() }, json: { ResetType: 'On' } })).rejects.toSatisfy((e: unknown) => e instanceof BmcError && e.code === 'TIMEOUT');
    expect(countOf(reset, 'POST')).toBe(1);
    expect(outcomes).toEqual([]);
  });

  it('the Basic credential check of a BMC without sessions is never sent twice (each refused one counts towards a lockout)', async () => {
    const outcomes: HedgeOutcome[] = [];
    mock.server.addFault({ path: exactly(SESSIONS_PATH), method: 'POST', fault: { kind: 'status', status: 400 }, times: 1 }); // a prompt answer
    hangOnce(SYSTEMS); // the check's path
    const opening = openRedfish({ host: mock.server.host, port: mock.server.port, insecure: true, user: mock.server.user, password: mock.server.password, retries: 0, timeoutMs: 1000, hedge: { afterMs: AFTER_MS, slowPaths: new Set(), onOutcome: (o) => outcomes.push(o) } });
    await expect(opening).rejects.toSatisfy((e: unknown) => e instanceof BmcError && e.code === 'TIMEOUT');
    expect(countOf(SESSIONS_PATH, 'POST')).toBe(1);
    expect(countOf(SYSTEMS)).toBe(1);
    expect(outcomes).toEqual([]);
  });

  it('a server error is no prompt answer: a BMC that answered only 503 gets no second copy', async () => {
    const { t, outcomes } = hedged(new Set(), { timeoutMs: 1000 });
    mock.server.addFault({ path: exactly(CHASSIS), fault: { kind: 'status', status: 503 }, times: 1 });
    await expect(get(t, CHASSIS)).rejects.toSatisfy((e: unknown) => e instanceof BmcError && e.httpStatus === 503);
    hangOnce(SYSTEMS);
    await expect(get(t, SYSTEMS)).rejects.toSatisfy((e: unknown) => e instanceof BmcError && e.code === 'TIMEOUT');
    expect(countOf(SYSTEMS)).toBe(1);
    expect(outcomes).toEqual([]);
  });

  it('a second copy answered with a server error is not taken: the first copy\'s answer is', async () => {
    const { t, outcomes } = hedged();
    expect((await get(t, '/redfish/v1/')).status).toBe(200);
    const release = holdOnce(SYSTEMS);
    mock.server.addFault({ path: exactly(SYSTEMS), fault: { kind: 'status', status: 503 }, times: 1 });
    const systems = get(t, SYSTEMS);
    await waitFor(() => outcomes.length === 1, 5000, 'the second copy answered');
    release();
    expect((await systems).status).toBe(200);
    expect(outcomes).toEqual(['failed']);
  });

  it('a BMC remembers its slowest paths up to MAX_SLOW_PATHS, the one marked longest ago forgotten first', async () => {
    const marked = Array.from({ length: MAX_SLOW_PATHS }, (_, i) => `/redfish/v1/Chassis/${i}`);
    const { t, outcomes, slowPaths } = hedged(new Set(marked));
    expect((await get(t, '/redfish/v1/')).status).toBe(200);
    hangOnce(SYSTEMS);
    expect((await get(t, SYSTEMS)).status).toBe(200);
    expect(outcomes).toEqual(['won']);
    expect([...slowPaths]).toEqual([...marked.slice(1), SYSTEMS]);
  });

  it('where the first copy fails while the second is on its way, the second copy\'s answer is taken', async () => {
    const { t, outcomes } = hedged();
    expect((await get(t, '/redfish/v1/')).status).toBe(200);
    let resetFirst!: () => void;
    mock.server.addFault({ path: exactly(SYSTEMS), fault: { kind: 'reset-held', until: new Promise<void>((r) => (resetFirst = r)) }, times: 1 });
    const releaseSecond = holdOnce(SYSTEMS);
    const systems = get(t, SYSTEMS);
    await waitFor(() => countOf(SYSTEMS) === 2, 5000, 'the second copy at the BMC');
    resetFirst();
    await waitFor(() => mock.server.openConnections() === 1, 5000, 'the first copy\'s connection reset');
    releaseSecond();
    expect((await systems).status).toBe(200);
    expect(outcomes).toEqual(['won']);
  });

  it('the deadline ends a GET whose second copy still waits for a connection; the transport goes on', async () => {
    const { t, outcomes } = hedged(new Set(), { connections: 1, timeoutMs: 800 });
    expect((await get(t, '/redfish/v1/')).status).toBe(200);
    hangOnce(SYSTEMS);
    await expect(get(t, SYSTEMS)).rejects.toSatisfy((e: unknown) => e instanceof BmcError && e.code === 'TIMEOUT');
    expect(countOf(SYSTEMS)).toBe(1); // the second copy never left the queue
    expect(outcomes).toEqual(['failed']);
    expect((await get(t, CHASSIS)).status).toBe(200);
  });

  it('where the second copy fails, the first copy\'s answer is still taken', async () => {
    const { t, outcomes } = hedged();
    expect((await get(t, '/redfish/v1/')).status).toBe(200);
    const release = holdOnce(SYSTEMS);
    mock.server.addFault({ path: exactly(SYSTEMS), fault: { kind: 'reset' }, times: 1 });
    const systems = get(t, SYSTEMS);
    await waitFor(() => outcomes.length === 1, 5000, 'the second copy failed');
    release();
    expect((await systems).status).toBe(200);
    expect(outcomes).toEqual(['failed']);
  });
});
