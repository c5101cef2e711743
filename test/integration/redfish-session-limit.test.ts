/**
 * A BMC whose Redfish session slots are all taken (operators' scripts, exporters, a GUI that left
 * its sessions open; iDRAC keeps an idle one 30 minutes) refuses every new session login with the
 * right password: iDRAC 503 IDRAC.2.4.RAC0218, Lenovo XCC 503 Base.1.x.SessionLimitExceeded (the
 * simulator's `redfish-sessions-exhausted`, by the machine's `sessionsExhaustedAnswer`), and the
 * simulator's own store when full. In auto mode the client
 * falls back to HTTP Basic for the connection; where Basic is refused too (`redfish-basic-refused`,
 * iDRAC10's "Unadvertised" default) and in session mode the failure says so: NO_SESSION_SLOTS, not
 * AUTH_FAILED, and no secret in it.
 */
import { beforeEach, expect } from 'vitest';
import { connectOutband } from '../../src/outband/connect.js';
import { redfishMessagesOf } from '../../src/redfish/http-errors.js';
import { openRedfish, type RedfishClient, type RedfishOptions } from '../../src/redfish/index.js';
import { createLoginBudget, loginBudgetKey, type LoginBudget } from '../../src/redfish/login-budget.js';
import type { Fleet } from '../../src/sim/fleet.js';
import type { SimMachine } from '../../src/sim/machine.js';
import { SESSIONS_EXHAUSTED_ANSWERS, type SessionsExhaustedAnswer } from '../../src/sim/quirks-redfish.js';
import { failure } from '../helpers/failure.js';
import { LOGIN_REQUEST } from '../helpers/fleet.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import { withPeers } from '../helpers/peers.js';
import { fleetPerFile, redfishOptionsOf } from '../helpers/redfish-fleet.js';

const { describe, it } = withPeers('openssl');

const SLOTS = 2;
const PASSWORD = 'slots-pass-Hq4Zr8';
const WARNING = 'redfish session slots of the BMC all taken; using HTTP Basic for its connections (said once an hour per BMC)';
const SYSTEM = '/redfish/v1/Systems/1'; // the Lenovo-like machine's

let fleet: Fleet;
const { machineWith } = fleetPerFile({ count: 10, variants: ['lenovo'], password: PASSWORD, redfishSessionsPerMachine: SLOTS, recordRequests: true }, (f) => (fleet = f));
/** each test's own: a refused login of one test holds back no login of another */
let budget: LoginBudget;
beforeEach(() => {
  budget = createLoginBudget();
});

const requests = (route: string): number => fleet.redfish?.requests.byRoute[route] ?? 0;
/** session POSTs `m` received, a quirk's answer included (the route counters count routed requests only) */
const logins = (m: SimMachine): number => fleet.requestLog(m.state.index).filter((r) => LOGIN_REQUEST.test(r.what)).length;
const origin = (m: SimMachine): string => `https://${m.state.address}:${fleet.redfishPort}`;

const options = (m: SimMachine, extra: Partial<RedfishOptions> = {}): RedfishOptions => redfishOptionsOf(fleet, m, { loginBudget: budget, ...extra });

/** `err`'s message and every cause's, one after another. */
function messages(err: unknown): string {
  const out: string[] = [];
  for (let e: unknown = err; e instanceof Error; e = e.cause) out.push(e.message);
  return out.join(' <- ');
}

function expectNoSecret(text: string): void {
  expect(text).not.toContain(PASSWORD);
  expect(text).not.toContain(Buffer.from(`${fleet.user}:${PASSWORD}`).toString('base64'));
}

/** The fallback's warning lines in `log`: exactly one, naming the BMC and the MessageId. */
function expectOneWarning(log: CapturedLog, m: SimMachine, messageId: string): void {
  const warnings = log.find(WARNING);
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toMatchObject({ level: 40, origin: origin(m), messageId });
  expectNoSecret(log.text());
}

describe('iDRAC 503 RAC0218 to the session POST (redfish-sessions-exhausted)', () => {
  it('auto: HTTP Basic for this connection, the machine read, one warning naming the BMC and the MessageId; the session POST sent once (not retried)', async () => {
    const m = machineWith('redfish-sessions-exhausted');
    const log = captureLog('info');
    const loginsBefore = logins(m);
    const client = await openRedfish(options(m, { logger: log.logger }));
    try {
      expect(client.auth).toBe('basic');
      expect(client.session()).toBeUndefined();
      const system = await client.get<{ PowerState: string }>(SYSTEM);
      expect(system.PowerState).toBe(m.state.power === 'on' ? 'On' : 'Off');
    } finally {
      await client.close();
    }
    expect(logins(m) - loginsBefore).toBe(1);
    expectOneWarning(log, m, 'IDRAC.2.4.RAC0218');
    expect(fleet.redfish?.openSessions(fleet.machines.indexOf(m))).toBe(0);
    // the next connection (the next report cycle) falls back too, without saying it again
    const again = await openRedfish(options(m, { logger: log.logger }));
    expect(again.auth).toBe('basic');
    await again.close();
    expectOneWarning(log, m, 'IDRAC.2.4.RAC0218');
  });

  it('the facade (Redfish only, no IPMI to hide a failure) reads the power state and switches the machine on', async () => {
    const m = machineWith('redfish-sessions-exhausted');
    m.state.power = 'off';
    const log = captureLog('info');
    const resets = requests('POST reset');
    const bmc = await connectOutband({ host: m.state.address, user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: 5000, protocol: 'redfish', logger: log.logger, redfishLoginBudget: budget });
    try {
      expect((await bmc.info()).powerState).toBe('OFF');
      await bmc.powerOn();
    } finally {
      await bmc.close();
    }
    expect(m.state.power).toBe('on');
    expect(requests('POST reset')).toBeGreaterThan(resets);
    expectOneWarning(log, m, 'IDRAC.2.4.RAC0218');
  });

  it('session mode: NO_SESSION_SLOTS naming RAC0218, no fallback', async () => {
    const m = machineWith('redfish-sessions-exhausted');
    const systems = requests('GET systems');
    const err = await failure(openRedfish(options(m, { authMode: 'session' })));
    expect(err.code).toBe('NO_SESSION_SLOTS');
    expect(err.httpStatus).toBe(503);
    expect(err.message).toContain(origin(m));
    expect(err.message).toContain('IDRAC.2.4.RAC0218');
    expect(err.message).toMatch(/session slots are all taken.*end unused Redfish sessions on the BMC/);
    expectNoSecret(messages(err));
    expect(requests('GET systems')).toBe(systems); // no Basic check
  });

  it('auto with Basic refused too (redfish-basic-refused, iDRAC10\'s "Unadvertised"): NO_SESSION_SLOTS, not AUTH_FAILED, saying what to do; counted in the login budget, no secret anywhere', async () => {
    const m = machineWith('redfish-sessions-exhausted', 'redfish-basic-refused');
    const log = captureLog('info');
    const loginsBefore = logins(m);
    const err = await failure(openRedfish(options(m, { logger: log.logger })));
    expect(err.code).toBe('NO_SESSION_SLOTS');
    expect(err.message).toContain(origin(m));
    expect(err.message).toContain('IDRAC.2.4.RAC0218');
    expect(err.message).toMatch(/refused HTTP Basic too \(HTTP 401/);
    expect(err.message).toMatch(/end unused Redfish sessions on the BMC.*or enable HTTP Basic authentication on it/);
    expectNoSecret(messages(err));
    expectOneWarning(log, m, 'IDRAC.2.4.RAC0218');
    expect(logins(m) - loginsBefore).toBe(1);
    // a 401 to Basic counts as a failed login on many BMCs: the budget has it, and the BMC was not away (the 503 was the session limit's)
    const record = budget.get(loginBudgetKey(m.state.address, fleet.redfishPort, fleet.user, fleet.password));
    expect(record).toMatchObject({ count: 1, status: 401, away: false, slotsTaken: true });
    expect(record?.message).toContain('session slots are all taken');
    // the next client within the budget's wait sends nothing and says why, with the same code (the status page's sessions-full, not wrong credentials)
    const held = await failure(openRedfish(options(m)));
    expect(held.code).toBe('NO_SESSION_SLOTS');
    expect(held.message).toMatch(/login not sent .*session slots are all taken/);
    expect(logins(m) - loginsBefore).toBe(1);
    expectNoSecret(messages(held));
  });

  it('a kept session (resumeSession) is used as before: no login, no fallback', async () => {
    const m = machineWith();
    const first = await openRedfish(options(m));
    const kept = first.session()!;
    await first.close({ keepSession: true });
    m.state.quirks.add('redfish-sessions-exhausted');
    const log = captureLog('info');
    const loginsBefore = logins(m);
    const client = await openRedfish(options(m, { resumeSession: { token: kept.token, location: kept.location }, logger: log.logger }));
    try {
      expect(client.auth).toBe('session');
      expect((await client.get<{ PowerState: string }>(SYSTEM)).PowerState).toMatch(/^(On|Off)$/);
      expect(client.session()).toMatchObject({ resumed: true });
    } finally {
      await client.close();
    }
    expect(logins(m)).toBe(loginsBefore);
    expect(log.find(WARNING)).toHaveLength(0);
  });
});

describe('the BMC\'s own session store full (Base.1.8.SessionLimitExceeded)', () => {
  it('the DMTF answer to a login beyond the slots; session mode NO_SESSION_SLOTS, auto falls back to Basic', async () => {
    const m = machineWith();
    const held: RedfishClient[] = [];
    try {
      for (let i = 0; i < SLOTS; i++) held.push(await openRedfish(options(m, { authMode: 'session' })));
      expect(fleet.redfish?.openSessions(fleet.machines.indexOf(m))).toBe(SLOTS);

      const refused = await failure(openRedfish(options(m, { authMode: 'session' })));
      expect(refused.code).toBe('NO_SESSION_SLOTS');
      expect(refused.httpStatus).toBe(503);
      expect(redfishMessagesOf(refused.cause).map((x) => x.messageId)).toEqual(['Base.1.8.SessionLimitExceeded']);
      expect(refused.message).toContain('Base.1.8.SessionLimitExceeded');

      const log = captureLog('info');
      const client = await openRedfish(options(m, { logger: log.logger }));
      try {
        expect(client.auth).toBe('basic');
        expect((await client.get<{ PowerState: string }>(SYSTEM)).PowerState).toMatch(/^(On|Off)$/);
      } finally {
        await client.close();
      }
      expectOneWarning(log, m, 'Base.1.8.SessionLimitExceeded');
    } finally {
      await Promise.all(held.map((c) => c.close()));
    }
    expect(fleet.redfish?.openSessions(fleet.machines.indexOf(m))).toBe(0);
  });
});

describe.each(Object.entries(SESSIONS_EXHAUSTED_ANSWERS) as [SessionsExhaustedAnswer, { status: number; messageId: string }][])('%s\'s answer to the session POST with every slot taken (redfish-sessions-exhausted)', (answer, { status, messageId }) => {
  function exhausted(): SimMachine {
    const m = machineWith('redfish-sessions-exhausted');
    m.state.sessionsExhaustedAnswer = answer;
    return m;
  }
  const budgetRecord = (m: SimMachine) => budget.get(loginBudgetKey(m.state.address, fleet.redfishPort, fleet.user, fleet.password));

  it(`auto: HTTP ${status} ${messageId} falls back to HTTP Basic, the machine read; the refusal not counted in the login budget`, async () => {
    const m = exhausted();
    const log = captureLog('info');
    const loginsBefore = logins(m);
    const client = await openRedfish(options(m, { logger: log.logger }));
    try {
      expect(client.auth).toBe('basic');
      expect((await client.get<{ PowerState: string }>(SYSTEM)).PowerState).toBe(m.state.power === 'on' ? 'On' : 'Off');
    } finally {
      await client.close();
    }
    expect(logins(m) - loginsBefore).toBe(1);
    expectOneWarning(log, m, messageId);
    expect(budgetRecord(m)).toBeUndefined();
  });

  it(`session mode: NO_SESSION_SLOTS (HTTP ${status}) naming ${messageId}, not AUTH_FAILED; not counted in the login budget`, async () => {
    const m = exhausted();
    const err = await failure(openRedfish(options(m, { authMode: 'session' })));
    expect(err.code).toBe('NO_SESSION_SLOTS');
    expect(err.httpStatus).toBe(status);
    expect(err.message).toContain(messageId);
    expectNoSecret(messages(err));
    expect(budgetRecord(m)).toBeUndefined();
  });
});
