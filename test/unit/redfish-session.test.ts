import { afterEach, beforeEach, expect } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { createTransport, openRedfish, ReloginPendingError, type RedfishClient, type RedfishOptions } from '../../src/redfish/index.js';
import { createLoginBudget, type LoginBudget } from '../../src/redfish/login-budget.js';
import { isTransient } from '../../src/redfish/task.js';
import { failure } from '../helpers/failure.js';
import { startMockupServer, startSilentServer, type MockupServer, type MockupServerOptions } from '../helpers/redfish-mockup-server.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('openssl');

let server: MockupServer;
/** the refused logins of this test's clients: a test's own, as a server's port may come again in a later test */
let budget: LoginBudget;

async function start(options: MockupServerOptions = {}): Promise<void> {
  await server?.close();
  server = await startMockupServer(options);
}

function opts(extra: Partial<RedfishOptions> = {}): RedfishOptions {
  return { host: server.host, port: server.port, user: server.user, password: server.password, retryBackoffMs: 10, loginBudget: budget, ...extra };
}

async function withClient<T>(extra: Partial<RedfishOptions>, fn: (c: RedfishClient) => Promise<T>): Promise<T> {
  const client = await openRedfish(opts(extra));
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

const countOf = (method: string, path: string): number => server.requests.filter((r) => r.method === method && r.path === path).length;

beforeEach(async () => {
  budget = createLoginBudget();
  server = await startMockupServer();
});

afterEach(async () => {
  // Every test closes its clients: no session may be left behind, success or failure.
  expect(server.sessionCount()).toBe(0);
  await server.close();
});

describe('authentication', () => {
  it.each([401, 403])("auto: a session refused %i for want of a slot (SessionLimitExceeded) is no refused password: HTTP Basic follows at once, and the next login is not held", async (status) => {
    server.addFault({ method: 'POST', path: '/redfish/v1/SessionService/Sessions', times: 2, fault: { kind: 'status', status, message: 'The session establishment failed due to the number of simultaneous sessions exceeding the limit of the implementation.', messageId: 'Base.1.8.SessionLimitExceeded' } });
    for (let i = 0; i < 2; i++) await withClient({}, async (client) => expect(client.auth).toBe('basic'));
    expect(countOf('POST', '/redfish/v1/SessionService/Sessions')).toBe(2);
    // slots free again: a session, no login held back
    await withClient({}, async (client) => expect(client.auth).toBe('session'));
  });

  it('auto: logs in with a session, sends X-Auth-Token, deletes the session on close', async () => {
    const client = await openRedfish(opts());
    expect(client.auth).toBe('session');
    expect(server.sessionCount()).toBe(1);
    const systems = await client.get<{ Members: unknown[] }>('/redfish/v1/Systems');
    expect(systems.Members).toEqual([{ '@odata.id': '/redfish/v1/Systems/437XR1138R2' }]);
    const get = server.requests.find((r) => r.path === '/redfish/v1/Systems');
    expect(get?.headers['x-auth-token']).toMatch(/^[0-9a-f]{32}$/);
    expect(get?.headers.authorization).toBeUndefined();
    await client.close();
    await client.close(); // idempotent
    expect(server.sessionCount()).toBe(0);
    expect(server.requests.filter((r) => r.method === 'DELETE')).toHaveLength(1);
    expect((await failure(client.get('/redfish/v1/Systems'))).code).toBe('CLOSED');
  });

  it.each(['<html><body>Created</body></html>', '{"@odata.id": "/redfish/v1/SessionService/Sessions/'])('a login answered 201 with a token but a body that is no JSON (%s): the session is used, and deleted on close', async (loginBody) => {
    await start({ loginBody });
    const client = await openRedfish(opts());
    expect(client.auth).toBe('session');
    expect(server.sessionCount()).toBe(1);
    expect((await client.get<{ Members: unknown[] }>('/redfish/v1/Systems')).Members).toHaveLength(1);
    await client.close();
    expect(server.sessionCount()).toBe(0);
  });

  it('auto falls back to Basic when session login is unsupported (405)', async () => {
    await start({ sessions: false });
    await withClient({}, async (client) => {
      expect(client.auth).toBe('basic');
      await client.get('/redfish/v1/Chassis');
      const get = server.requests.find((r) => r.path === '/redfish/v1/Chassis');
      expect(get?.headers.authorization).toBe(`Basic ${Buffer.from(`${server.user}:${server.password}`).toString('base64')}`);
    });
  });

  it('session mode refuses a BMC without sessions', async () => {
    await start({ sessions: false });
    expect((await failure(openRedfish(opts({ authMode: 'session' })))).code).toBe('UNSUPPORTED');
  });

  it.each(['auto', 'session', 'basic'] as const)('wrong password → AUTH_FAILED without the password in the message (%s)', async (authMode) => {
    const err = await failure(openRedfish(opts({ authMode, password: 'wr0ng-s3cret' })));
    expect(err.code).toBe('AUTH_FAILED');
    expect(err.httpStatus).toBe(401);
    expect(err.message).not.toContain('wr0ng-s3cret');
    expect(err.message).toMatch(/HTTP 401/);
    if (authMode !== 'basic') expect(err.message).toContain('Invalid username or password');
  });

  it('logs in again once when the session expired', async () => {
    await withClient({}, async (client) => {
      server.expireSessions();
      const [a, b] = await Promise.all([client.get('/redfish/v1/Systems'), client.get('/redfish/v1/Chassis')]);
      expect(a).toBeDefined();
      expect(b).toBeDefined();
      expect(countOf('POST', '/redfish/v1/SessionService/Sessions')).toBe(2);
      expect(server.sessionCount()).toBe(1);
    });
  });

  it("auto: a session that expired while the BMC's slots filled up is replaced by HTTP Basic, not a failed read; session mode fails NO_SESSION_SLOTS", async () => {
    const full = { kind: 'status', status: 503, message: 'The maximum number of user sessions is reached.', messageId: 'IDRAC.2.4.RAC0218' } as const;
    await withClient({}, async (client) => {
      expect(client.auth).toBe('session');
      server.expireSessions();
      server.addFault({ method: 'POST', path: '/redfish/v1/SessionService/Sessions', fault: full, times: 1 });
      expect(await client.get('/redfish/v1/Systems')).toBeDefined();
      expect(server.requests.at(-1)!.headers.authorization).toMatch(/^Basic /);
      expect(client.session()).toBeUndefined();
    });
    await withClient({ authMode: 'session' }, async (client) => {
      server.expireSessions();
      server.addFault({ method: 'POST', path: '/redfish/v1/SessionService/Sessions', fault: full, times: 1 });
      const err = await failure(client.get('/redfish/v1/Systems'));
      expect(err.code).toBe('NO_SESSION_SLOTS');
    });
  });

  it('a 401 that was not an expiry: new session, the old one is deleted too; 403 is AUTH_FAILED without a new login', async () => {
    await withClient({}, async (client) => {
      server.addFault({ path: '/redfish/v1/Systems', fault: { kind: 'status', status: 401 }, times: 1 });
      await client.get('/redfish/v1/Systems');
      expect(countOf('POST', '/redfish/v1/SessionService/Sessions')).toBe(2);
      server.addFault({ path: '/redfish/v1/Chassis', fault: { kind: 'status', status: 403 } });
      const err = await failure(client.get('/redfish/v1/Chassis'));
      expect(err.code).toBe('AUTH_FAILED');
      expect(err.httpStatus).toBe(403);
      expect(countOf('POST', '/redfish/v1/SessionService/Sessions')).toBe(2);
      server.clearFaults();
    });
  });

  it('never puts the token or the password into an error message', async () => {
    await withClient({}, async (client) => {
      server.addFault({ path: '/redfish/v1/Systems', fault: { kind: 'status', status: 500, message: 'session {token} with password {password} is broken' } });
      const err = await failure(client.get('/redfish/v1/Systems'));
      expect(err.message).toContain('[redacted]');
      expect(err.message).not.toContain(server.password);
      const token = server.requests.find((r) => r.path === '/redfish/v1/Systems')?.headers['x-auth-token'] as string;
      expect(err.message).not.toContain(token);
      server.clearFaults();
    });
  });
});

describe('a dropped or resumed session', () => {
  const SESSIONS = '/redfish/v1/SessionService/Sessions';

  /** A session made by one client and left open, as a report read leaves it for the next. */
  async function keptSession(): Promise<{ token: string; location: string | undefined }> {
    const first = await openRedfish(opts());
    const s = first.session();
    await first.close({ keepSession: true });
    if (s === undefined) throw new Error('no session');
    return { token: s.token, location: s.location };
  }

  it('a resumed session the BMC no longer knows and answers 403 for: one new login, the read succeeds, the new session is the one in use', async () => {
    await start({ unknownSessionStatus: 403 });
    const kept = await keptSession();
    server.expireSessions();
    await withClient({ resumeSession: kept }, async (client) => {
      const [systems, chassis] = await Promise.all([client.get('/redfish/v1/Systems'), client.get('/redfish/v1/Chassis')]);
      expect(systems).toBeDefined();
      expect(chassis).toBeDefined();
      expect(countOf('POST', SESSIONS)).toBe(2);
      expect(client.session()).toMatchObject({ resumed: false });
      expect(client.session()?.token).not.toBe(kept.token);
    });
  });

  it('a 403 once the resumed session has answered is AUTH_FAILED, without a new login', async () => {
    const kept = await keptSession();
    await withClient({ resumeSession: kept }, async (client) => {
      await client.get('/redfish/v1/Systems');
      server.addFault({ path: '/redfish/v1/Chassis', fault: { kind: 'status', status: 403 } });
      expect((await failure(client.get('/redfish/v1/Chassis'))).code).toBe('AUTH_FAILED');
      expect(countOf('POST', SESSIONS)).toBe(1);
      expect(client.session()).toEqual({ token: kept.token, location: kept.location, resumed: true });
      server.clearFaults();
    });
  });

  it('a resumed session answered with errors only is reported refused (not worth keeping); one that answered once is not', async () => {
    const kept = await keptSession();
    server.addFault({ path: '/redfish/v1/Systems', fault: { kind: 'status', status: 500 } });
    await withClient({ resumeSession: kept }, async (client) => {
      expect((await failure(client.get('/redfish/v1/Systems'))).httpStatus).toBe(500);
      expect(client.session()).toMatchObject({ token: kept.token, resumed: true, refused: true });
      await client.get('/redfish/v1/Chassis');
      expect(client.session()).toEqual({ token: kept.token, location: kept.location, resumed: true });
    });
    server.clearFaults();
  });

  it('a resumed session over a pinned certificate the server no longer presents: UNTRUSTED, its token not sent, reported refused so that the next read logs in (and is refused there, logged and counted by the trust gate)', async () => {
    const kept = await keptSession();
    const before = server.requests.length;
    await withClient({ resumeSession: kept, pinnedSha256: 'ab'.repeat(32) }, async (client) => {
      expect((await failure(client.get('/redfish/v1/Systems'))).code).toBe('UNTRUSTED');
      expect(client.session()).toMatchObject({ token: kept.token, resumed: true, refused: true });
    });
    expect(server.requests.slice(before).filter((r) => r.headers['x-auth-token'] === kept.token)).toEqual([]);
    // the test's own cleanup: the session left open above
    await withClient({ resumeSession: kept }, async () => undefined);
  });

  it('a new login the caller gave up on after the BMC made its session: the caller hears at once, close() deletes the session once the answer names it', async () => {
    const client = await openRedfish(opts());
    server.expireSessions();
    let release!: () => void;
    server.addFault({ method: 'POST', path: SESSIONS, times: 1, fault: { kind: 'answer-held', until: new Promise<void>((r) => (release = r)) } });
    const abort = new AbortController();
    const reading = client.get('/redfish/v1/Systems', { signal: abort.signal });
    await waitFor(() => server.sessionCount() === 1, 5000, 'the new session made on the BMC');
    abort.abort(new Error('metal-bmc is shutting down'));
    await expect(reading).rejects.toMatchObject({ code: 'ABORTED' });
    release();
    await client.close();
    expect(server.sessionCount()).toBe(0);
  });

  it('a new login that fails is not sent again by the next refused request (BMCs lock an account out after a few failed logins)', async () => {
    await withClient({}, async (client) => {
      server.expireSessions();
      server.addFault({ method: 'POST', path: SESSIONS, fault: { kind: 'status', status: 401 } });
      const refused = await failure(client.get('/redfish/v1/Systems'));
      expect(refused.code).toBe('AUTH_FAILED');
      // a BMC that never went away refuses for our credentials: final, not waited through
      expect(refused).not.toBeInstanceOf(ReloginPendingError);
      expect((await failure(client.get('/redfish/v1/Chassis'))).code).toBe('AUTH_FAILED');
      expect(countOf('POST', SESSIONS)).toBe(2);
      server.clearFaults();
    });
  });

  it('after the BMC went away (a reset connection, 503s), a refused new login is sent again once its wait has passed, at most `refusals` refused in all; meanwhile ReloginPendingError, worth waiting through', async () => {
    await withClient({ reloginAfterRestart: { refusals: 3, everyMs: 200 } }, async (client) => {
      // the BMC restarts: a connection reset (the read is retried and answered), its sessions gone, logins refused
      server.addFault({ path: '/redfish/v1/Chassis', fault: { kind: 'reset' }, times: 1 });
      await client.get('/redfish/v1/Chassis');
      server.expireSessions();
      server.addFault({ method: 'POST', path: SESSIONS, fault: { kind: 'status', status: 401 } });
      const logins = () => countOf('POST', SESSIONS);
      const first = await failure(client.get('/redfish/v1/Systems'));
      expect(first).toBeInstanceOf(ReloginPendingError);
      expect(first).toMatchObject({ code: 'AUTH_FAILED', httpStatus: 401 });
      expect(isTransient(first)).toBe(true);
      expect(logins()).toBe(2);
      // before its time: the same refusal, no login
      expect(await failure(client.get('/redfish/v1/Systems'))).toBe(first);
      expect(logins()).toBe(2);
      await waitFor(() => Date.now() >= (first as ReloginPendingError).retryAt, 5000, 'the wait after the first refusal');
      const second = await failure(client.get('/redfish/v1/Systems'));
      expect(second).toBeInstanceOf(ReloginPendingError);
      expect(logins()).toBe(3);
      await waitFor(() => Date.now() >= (second as ReloginPendingError).retryAt, 5000, 'the wait after the second refusal');
      // the third refusal is final: AUTH_FAILED, not pending, and no login is sent again
      const third = await failure(client.get('/redfish/v1/Systems'));
      expect(third).not.toBeInstanceOf(ReloginPendingError);
      expect(third).toMatchObject({ code: 'AUTH_FAILED', httpStatus: 401 });
      expect(isTransient(third)).toBe(false);
      expect(logins()).toBe(4);
      expect(await failure(client.get('/redfish/v1/Chassis'))).toBe(third);
      expect(logins()).toBe(4);
      server.clearFaults();
    });
  });

  it('after the BMC stopped answering (a request past its own deadline, no refusal), a refused new login is pending too, not final', async () => {
    await withClient({ reloginAfterRestart: { everyMs: 100 } }, async (client) => {
      let release!: () => void;
      server.addFault({ path: '/redfish/v1/Chassis', times: 1, fault: { kind: 'answer-held', until: new Promise<void>((r) => (release = r)) } });
      expect((await failure(client.get('/redfish/v1/Chassis', { timeoutMs: 300 }))).code).toBe('TIMEOUT');
      release();
      server.expireSessions();
      server.addFault({ method: 'POST', path: SESSIONS, fault: { kind: 'status', status: 401 }, times: 1 });
      const refused = await failure(client.get('/redfish/v1/Systems'));
      expect(refused).toBeInstanceOf(ReloginPendingError);
      await waitFor(() => Date.now() >= (refused as ReloginPendingError).retryAt, 5000, 'the wait after the refusal');
      await client.get('/redfish/v1/Systems');
      server.clearFaults();
    });
  });

  it('a request the caller gave up on is no sign of the BMC gone: a refused new login after it stays final', async () => {
    await withClient({ reloginAfterRestart: { everyMs: 100 } }, async (client) => {
      let release!: () => void;
      server.addFault({ path: '/redfish/v1/Chassis', times: 1, fault: { kind: 'answer-held', until: new Promise<void>((r) => (release = r)) } });
      const abort = new AbortController();
      const asked = countOf('GET', '/redfish/v1/Chassis');
      const reading = client.get('/redfish/v1/Chassis', { signal: abort.signal });
      await waitFor(() => countOf('GET', '/redfish/v1/Chassis') > asked, 5000, 'the request at the BMC');
      abort.abort(new Error('the caller gave up'));
      expect((await failure(reading)).code).toBe('ABORTED');
      release();
      server.expireSessions();
      server.addFault({ method: 'POST', path: SESSIONS, fault: { kind: 'status', status: 401 } });
      const refused = await failure(client.get('/redfish/v1/Systems'));
      expect(refused.code).toBe('AUTH_FAILED');
      expect(refused).not.toBeInstanceOf(ReloginPendingError);
      server.clearFaults();
    });
  });

  it('after the BMC went away, logins refused while its user service starts give way to the one it takes; the read succeeds on the new session', async () => {
    await withClient({ reloginAfterRestart: { everyMs: 100 } }, async (client) => {
      server.addFault({ path: '/redfish/v1/Systems', fault: { kind: 'status', status: 503 }, times: 1 });
      await client.get('/redfish/v1/Systems');
      server.expireSessions();
      server.addFault({ method: 'POST', path: SESSIONS, fault: { kind: 'status', status: 401 }, times: 1 });
      const refused = await failure(client.get('/redfish/v1/Chassis'));
      expect(refused).toBeInstanceOf(ReloginPendingError);
      await waitFor(() => Date.now() >= (refused as ReloginPendingError).retryAt, 5000, 'the wait after the refusal');
      await client.get('/redfish/v1/Chassis');
      expect(countOf('POST', SESSIONS)).toBe(3);
      expect(client.session()).toMatchObject({ resumed: false });
    });
  });

  it('a new login that failed for another reason (503 while the session service starts after a reset) is tried again by the next refused request', async () => {
    await withClient({}, async (client) => {
      server.expireSessions();
      server.addFault({ method: 'POST', path: SESSIONS, fault: { kind: 'status', status: 503 }, times: 1 });
      expect((await failure(client.get('/redfish/v1/Systems'))).httpStatus).toBe(503);
      await client.get('/redfish/v1/Chassis');
      expect(client.session()).toMatchObject({ resumed: false });
    });
  });
});

describe('transport faults', () => {
  it('503 on a GET is retried twice, then HTTP 503 with the Redfish message', async () => {
    await withClient({}, async (client) => {
      server.addFault({ path: '/redfish/v1/Systems', fault: { kind: 'status', status: 503 } });
      const err = await failure(client.get('/redfish/v1/Systems'));
      expect(err.code).toBe('HTTP');
      expect(err.httpStatus).toBe(503);
      expect(err.message).toContain('Injected status 503.');
      expect(countOf('GET', '/redfish/v1/Systems')).toBe(3);
      server.clearFaults();
    });
  });

  it('onAnswer hears the connection made and every response the BMC sends, head and body, an error status and a retried one included', async () => {
    let answers = 0;
    await withClient({ onAnswer: () => answers++, connections: 1 }, async (client) => {
      const afterLogin = answers;
      expect(afterLogin).toBeGreaterThanOrEqual(4); // TCP connected, TLS handshake done, the login's head, its body (one piece or more)
      server.addFault({ path: '/redfish/v1/Systems', fault: { kind: 'status', status: 503 }, times: 1 });
      await client.get('/redfish/v1/Systems');
      expect(answers - afterLogin).toBeGreaterThanOrEqual(4); // the 503's head and body, the answer's after it
      server.clearFaults();
    });
  });

  it('a transient 503 or connection reset is retried and succeeds', async () => {
    await withClient({}, async (client) => {
      server.addFault({ path: '/redfish/v1/Systems', fault: { kind: 'status', status: 503 }, times: 1 });
      await client.get('/redfish/v1/Systems');
      expect(countOf('GET', '/redfish/v1/Systems')).toBe(2);
      server.addFault({ path: '/redfish/v1/Chassis', fault: { kind: 'reset' }, times: 1 });
      await client.get('/redfish/v1/Chassis');
      expect(countOf('GET', '/redfish/v1/Chassis')).toBe(2);
    });
  });

  it('503 with Retry-After: any method waits as told and is sent again; a wait past the deadline fails at once', async () => {
    await withClient({ timeoutMs: 3000 }, async (client) => {
      server.addFault({ method: 'POST', path: '/redfish/v1/Systems', fault: { kind: 'status', status: 503, retryAfter: '0' }, times: 2 });
      await client.post('/redfish/v1/Systems/437XR1138R2/Actions/ComputerSystem.Reset', { ResetType: 'On' });
      expect(server.requests.filter((r) => r.method === 'POST' && r.path.startsWith('/redfish/v1/Systems'))).toHaveLength(3);
      server.addFault({ method: 'POST', path: '/redfish/v1/Managers', fault: { kind: 'status', status: 503, retryAfter: '3600' } });
      const t0 = performance.now();
      expect((await failure(client.post('/redfish/v1/Managers/BMC/Actions/Manager.Reset', { ResetType: 'ForceRestart' }))).httpStatus).toBe(503);
      expect(performance.now() - t0).toBeLessThan(2500); // did not wait an hour, nor for the deadline
      expect(server.requests.filter((r) => r.method === 'POST' && r.path.startsWith('/redfish/v1/Managers'))).toHaveLength(1);
      server.clearFaults();
    });
  });

  it('503 with Retry-After on every answer: a GET is sent up to 11 times, an action 3 (a BMC that acted before its 503 resets a host three times at most)', async () => {
    await withClient({ timeoutMs: 5000 }, async (client) => {
      server.addFault({ method: 'GET', path: '/redfish/v1/Chassis', fault: { kind: 'status', status: 503, retryAfter: '0' } });
      expect((await failure(client.get('/redfish/v1/Chassis'))).httpStatus).toBe(503);
      expect(countOf('GET', '/redfish/v1/Chassis')).toBe(11);
      server.addFault({ method: 'POST', path: '/redfish/v1/Systems', fault: { kind: 'status', status: 503, retryAfter: '0' } });
      expect((await failure(client.post('/redfish/v1/Systems/437XR1138R2/Actions/ComputerSystem.Reset', { ResetType: 'ForceRestart' }))).httpStatus).toBe(503);
      expect(server.requests.filter((r) => r.method === 'POST' && r.path.startsWith('/redfish/v1/Systems'))).toHaveLength(3);
      server.clearFaults();
    });
  });

  it('500 is not retried; POST/PATCH are never retried', async () => {
    await withClient({}, async (client) => {
      server.addFault({ path: '/redfish/v1/Managers', fault: { kind: 'status', status: 500 } });
      expect((await failure(client.get('/redfish/v1/Managers'))).httpStatus).toBe(500);
      expect(countOf('GET', '/redfish/v1/Managers')).toBe(1);
      server.addFault({ method: 'POST', path: '/redfish/v1/Systems', fault: { kind: 'status', status: 503 } });
      expect((await failure(client.post('/redfish/v1/Systems/437XR1138R2/Actions/ComputerSystem.Reset', { ResetType: 'On' }))).httpStatus).toBe(503);
      expect(server.requests.filter((r) => r.method === 'POST' && r.path.startsWith('/redfish/v1/Systems'))).toHaveLength(1);
      server.clearFaults();
    });
  });

  it('a BMC that never answers → TIMEOUT within the deadline', async () => {
    await withClient({ timeoutMs: 300 }, async (client) => {
      server.addFault({ path: '/redfish/v1/Systems', fault: { kind: 'hang' } });
      const t0 = performance.now();
      const err = await failure(client.get('/redfish/v1/Systems'));
      const elapsed = performance.now() - t0;
      expect(err.code).toBe('TIMEOUT');
      expect(err.message).toContain('/redfish/v1/Systems');
      // time is the subject (the deadline holds): never before it, and well before "never" (the
      // request hangs forever) with a 2 s margin for a loaded machine
      expect(elapsed).toBeGreaterThanOrEqual(290);
      expect(elapsed).toBeLessThan(300 + 2000);
      server.clearFaults();
    });
  });

  it("the caller's signal aborts a request → ABORTED", async () => {
    await withClient({}, async (client) => {
      server.addFault({ path: '/redfish/v1/Systems', fault: { kind: 'hang' } });
      const controller = new AbortController();
      // the stimulus: the caller gives up once the request is on its way
      const arrived = countOf('GET', '/redfish/v1/Systems');
      void waitFor(() => countOf('GET', '/redfish/v1/Systems') > arrived).then(() => controller.abort());
      const t0 = performance.now();
      expect((await failure(client.get('/redfish/v1/Systems', { signal: controller.signal }))).code).toBe('ABORTED');
      // the request would hang for the client's whole default deadline: ending within 5 s means the signal ended it
      expect(performance.now() - t0).toBeLessThan(5000);
      server.clearFaults();
    });
  });

  it('at most `connections` requests are in flight per BMC', async () => {
    // the second connection opens after 100 ms of waiting; the three requests behind it wait on
    await withClient({ connections: 2, openConnectionAfterMs: 100, timeoutMs: 400 }, async (client) => {
      server.addFault({ path: '/redfish/v1/Chassis', fault: { kind: 'hang' } });
      const pending = Array.from({ length: 5 }, () => client.get('/redfish/v1/Chassis').catch((e: unknown) => e));
      await waitFor(() => countOf('GET', '/redfish/v1/Chassis') >= 2, 5000, 'two requests in flight');
      // a request on another connection, sent after the five, has reached the server: a third of
      // the five would have reached it too had the limit let it go
      await withClient({}, (other) => other.get('/redfish/v1/'));
      expect(countOf('GET', '/redfish/v1/Chassis')).toBe(2);
      const results = await Promise.all(pending);
      expect(results.every((e) => e instanceof BmcError && e.code === 'TIMEOUT')).toBe(true);
      server.clearFaults();
    });
  });

  it('malformed JSON → DECODE naming the path', async () => {
    await withClient({}, async (client) => {
      server.addFault({ path: '/redfish/v1/Managers/BMC', fault: { kind: 'malformed' } });
      const err = await failure(client.get('/redfish/v1/Managers/BMC'));
      expect(err.code).toBe('DECODE');
      expect(err.message).toContain('/redfish/v1/Managers/BMC');
      server.clearFaults();
    });
  });

  it('an action the BMC took (2xx) whose answer is not JSON is done, not DECODE: a reset is not reported failed, a boot change not repeated', async () => {
    await withClient({}, async (client) => {
      server.addFault({ method: 'POST', path: '/redfish/v1/Systems', fault: { kind: 'malformed' } });
      const answer = await client.post('/redfish/v1/Systems/437XR1138R2/Actions/ComputerSystem.Reset', { ResetType: 'On' });
      expect(answer.body).toBeUndefined();
      expect(server.requests.filter((r) => r.method === 'POST' && r.path.startsWith('/redfish/v1/Systems'))).toHaveLength(1);
      server.clearFaults();
    });
  });

  it('a GET answered 503 with a Retry-After too long to wait for fails at once, without the quick retries of a 503 without one', async () => {
    await withClient({ timeoutMs: 3000 }, async (client) => {
      server.addFault({ path: '/redfish/v1/Managers', fault: { kind: 'status', status: 503, retryAfter: '3600' } });
      expect((await failure(client.get('/redfish/v1/Managers'))).httpStatus).toBe(503);
      expect(countOf('GET', '/redfish/v1/Managers')).toBe(1);
      server.clearFaults();
    });
  });

  it.each([true, false])('a 50 MiB body (Content-Length declared: %s) → DECODE at the 2 MiB bound, and the transfer is cut short', async (declareLength) => {
    await withClient({}, async (client) => {
      const sent = { bytes: 0 };
      server.addFault({ path: '/redfish/v1/Systems/437XR1138R2', fault: { kind: 'huge', bytes: 50 << 20, declareLength, sent } });
      const err = await failure(client.get('/redfish/v1/Systems/437XR1138R2'));
      expect(err.code).toBe('DECODE');
      expect(err.message).toMatch(/larger than 2097152 bytes/);
      // the client stopped reading: far less than the 50 MiB went out (socket buffers hold a few MiB at most)
      expect(sent.bytes).toBeLessThan(16 << 20);
      server.clearFaults();
      expect(await client.get('/redfish/v1/Systems')).toMatchObject({ Members: [{ '@odata.id': '/redfish/v1/Systems/437XR1138R2' }] });
    });
  });

  it.each([true, false])('answers each within the bound but many together (Content-Length declared: %s) → DECODE once the read has brought maxTotalResponseBytes', async (declareLength) => {
    await withClient({ maxTotalResponseBytes: 1 << 20 }, async (client) => {
      server.addFault({ path: '/redfish/v1/Systems/437XR1138R2', fault: { kind: 'huge', bytes: 300_000, declareLength } });
      // the login and the service root came first; three more answers of 300 KB fit, the fourth does not
      for (let i = 0; i < 3; i++) await client.get('/redfish/v1/Systems/437XR1138R2').catch((e: unknown) => expect((e as BmcError).code).toBe('DECODE'));
      const err = await failure(client.get('/redfish/v1/Systems/437XR1138R2'));
      expect(err.code).toBe('DECODE');
      expect(err.message).toMatch(/the answers of this BMC read passed 1048576 bytes in all; nothing more is read from it/);
      server.clearFaults();
      expect((await failure(client.get('/redfish/v1/Systems'))).message).toMatch(/passed 1048576 bytes in all/);
    });
  });

  it('redirect loop → PROTOCOL after 3 redirects', async () => {
    await withClient({}, async (client) => {
      server.addFault({ path: '/redfish/v1/Chassis/1U', fault: { kind: 'redirect-loop' } });
      const err = await failure(client.get('/redfish/v1/Chassis/1U'));
      expect(err.code).toBe('PROTOCOL');
      expect(err.message).toMatch(/redirect loop/);
      expect(countOf('GET', '/redfish/v1/Chassis/1U')).toBe(4);
      server.clearFaults();
    });
  });

  it('a GET outside the Redfish tree is not sent, whether a link names it through dot segments or a redirect points there', async () => {
    await withClient({}, async (client) => {
      const before = server.requests.length;
      for (const link of ['/redfish/v1/../../admin', '/redfish/v1/%2e%2e/%2e%2e/admin/config', '/cgi-bin/config']) {
        const err = await failure(client.get(link));
        expect(err.code).toBe('PROTOCOL');
        expect(err.message).toMatch(/outside the Redfish tree/);
      }
      expect(server.requests.slice(before).filter((r) => !r.path.startsWith('/redfish'))).toEqual([]);
      server.addFault({ path: '/redfish/v1/Chassis/1U', fault: { kind: 'redirect', location: '/admin/secrets' } });
      const err = await failure(client.get('/redfish/v1/Chassis/1U'));
      expect(err.code).toBe('PROTOCOL');
      expect(err.message).toMatch(/redirect outside the Redfish tree/);
      expect(server.requests.slice(before).filter((r) => !r.path.startsWith('/redfish'))).toEqual([]);
      server.clearFaults();
      // a redirect within the tree is still followed
      server.addFault({ path: '/redfish/v1/Chassis/1U', fault: { kind: 'redirect', location: '/redfish/v1/Chassis' } });
      await client.get('/redfish/v1/Chassis/1U');
      server.clearFaults();
    });
  });

  it('a TLS handshake that never completes → TIMEOUT within the deadline', async () => {
    const silent = await startSilentServer();
    try {
      const t0 = performance.now();
      const err = await failure(openRedfish({ host: silent.host, port: silent.port, user: 'u', password: 'p', timeoutMs: 300 }));
      expect(err.code).toBe('TIMEOUT');
      // time is the subject; the silent server never completes a handshake: a 2 s margin for a loaded machine
      expect(performance.now() - t0).toBeLessThan(300 + 2000);
    } finally {
      await silent.close();
    }
  });

  it.each([{}, { pinnedSha256: 'ab'.repeat(32) }])('connectTimeoutMs bounds the handshake on its own (%o)', async (tls) => {
    const silent = await startSilentServer();
    try {
      const t0 = performance.now();
      const err = await failure(openRedfish({ host: silent.host, port: silent.port, user: 'u', password: 'p', timeoutMs: 5000, connectTimeoutMs: 200, ...tls }));
      expect(err.code).toBe('TIMEOUT');
      expect(err.message).toMatch(/no TLS session within 200 ms/);
      // the message names the connect deadline; the bound stays far below the 5 s request deadline
      expect(performance.now() - t0).toBeLessThan(200 + 2000);
    } finally {
      await silent.close();
    }
  });

  it('close() closes the connections: at once when idle, after the answer when a request is still running', async () => {
    // both connections open as the two requests go out (without the wait a slow answer would need)
    const idle = await openRedfish(opts({ authMode: 'basic', connections: 2, openConnectionAfterMs: 0 }));
    await Promise.all([idle.get('/redfish/v1/Systems'), idle.get('/redfish/v1/Chassis')]);
    expect(server.openConnections()).toBe(2);
    await idle.close();
    await waitFor(() => server.openConnections() === 0, 5000, 'both connections closed');

    // the transport itself: its close() decides at once, before its first await
    let release!: () => void;
    server.addFault({ path: '/redfish/v1/Chassis', fault: { kind: 'held', until: new Promise<void>((r) => (release = r)) } });
    const busy = createTransport({ host: server.host, port: server.port });
    const authorization = `Basic ${Buffer.from(`${server.user}:${server.password}`).toString('base64')}`;
    const running = busy.request({ method: 'GET', path: '/redfish/v1/Chassis', headers: { authorization } });
    await waitFor(() => countOf('GET', '/redfish/v1/Chassis') === 2, 5000, 'the request at the BMC');
    const closing = busy.close();
    release();
    expect((await running).status).toBe(200);
    await closing;
    await waitFor(() => server.openConnections() === 0, 5000, 'the connection closed');
    server.clearFaults();
  });

  it('a login the caller gave up on after the BMC created its session: the caller hears at once, the session is deleted once the answer names it', async () => {
    let release!: () => void;
    server.addFault({ method: 'POST', path: '/redfish/v1/SessionService/Sessions', times: 1, fault: { kind: 'answer-held', until: new Promise<void>((r) => (release = r)) } });
    const abort = new AbortController();
    const opening = openRedfish(opts({ signal: abort.signal }));
    await waitFor(() => server.sessionCount() === 1, 5000, 'the session created on the BMC');
    abort.abort(new Error('metal-bmc is shutting down'));
    // the caller does not wait for the BMC's answer
    await expect(opening).rejects.toMatchObject({ code: 'ABORTED' });
    expect(server.sessionCount()).toBe(1);
    release();
    await waitFor(() => server.sessionCount() === 0, 5000, 'the session deleted');
    expect(server.requests.filter((r) => r.method === 'DELETE')).toHaveLength(1);
  });

  it('close() never throws, even when the BMC is gone', async () => {
    const client = await openRedfish(opts({ closeTimeoutMs: 300 }));
    const other = server;
    server = await startMockupServer();
    await other.close();
    await expect(client.close()).resolves.toBeUndefined();
  });

  it('rejects unusable options with INVALID_ARGUMENT', async () => {
    expect((await failure(openRedfish(opts({ timeoutMs: -1 })))).code).toBe('INVALID_ARGUMENT');
    expect((await failure(openRedfish(opts({ connections: 0 })))).code).toBe('INVALID_ARGUMENT');
    expect((await failure(openRedfish(opts({ pinnedSha256: 'abc' })))).code).toBe('INVALID_ARGUMENT');
    expect((await failure(openRedfish(opts({ host: 'bmc/evil' })))).code).toBe('INVALID_ARGUMENT');
    await withClient({}, async (client) => {
      expect((await failure(client.get('https://other.example/redfish/v1'))).code).toBe('INVALID_ARGUMENT');
    });
  });
});

describe('TLS policies', () => {
  it('pinned fingerprint: accepts the right certificate, refuses another', async () => {
    await withClient({ pinnedSha256: server.fingerprint256 }, async (client) => {
      await client.get('/redfish/v1/Systems');
    });
    const wrong = 'ab'.repeat(32);
    const err = await failure(openRedfish(opts({ pinnedSha256: wrong })));
    expect(err.code).toBe('UNTRUSTED');
    expect(err.message).toMatch(/pinned/);
  });

  it('ca: verifies the chain; insecure:false without a ca refuses a self-signed BMC', async () => {
    await withClient({ ca: server.certPem }, async (client) => {
      await client.get('/redfish/v1/Systems');
    });
    expect((await failure(openRedfish(opts({ insecure: false })))).code).toBe('AUTH_FAILED');
  });
});
