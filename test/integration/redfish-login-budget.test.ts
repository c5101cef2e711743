/**
 * Refused Redfish logins are counted per BMC and user for every client of the process
 * (src/redfish/login-budget.ts), not per client: a firmware job's client, the commands' clients
 * and each report read's client of one BMC used to spend a budget each, so one account got
 * several times the refused logins meant for it and risked the BMC's lockout. Two clients of one
 * simulated BMC whose restart (503s, its sessions gone) is followed by logins refused 401 (its
 * user service still starting: the wrongCredentials fault).
 */
import { expect } from 'vitest';
import type { BmcError } from '../../src/errors.js';
import { openRedfish, ReloginPendingError, type RedfishClient, type RedfishOptions } from '../../src/redfish/index.js';
import { createLoginBudget } from '../../src/redfish/login-budget.js';
import type { Fleet } from '../../src/sim/fleet.js';
import type { SimMachine } from '../../src/sim/machine.js';
import { failure } from '../helpers/failure.js';
import { withPeers } from '../helpers/peers.js';
import { fleetPerFile, redfishOptionsOf } from '../helpers/redfish-fleet.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('openssl');

const SYSTEMS = '/redfish/v1/Systems';
let fleet: Fleet;
fleetPerFile({ count: 2, variants: ['lenovo'] }, (f) => (fleet = f));

const logins = (): number => fleet.redfish?.requests.byRoute['POST sessions'] ?? 0;

const options = (m: SimMachine, extra: Partial<RedfishOptions> = {}): RedfishOptions => redfishOptionsOf(fleet, m, extra);

describe('refused logins per BMC and user, across clients', () => {
  it('after a restart, two clients of one BMC and user get 3 refused logins in all, not 3 each; a new client then sends none', async () => {
    const m = fleet.machines[0]!;
    // the budget every client of a process shares (processLoginBudget), its own for this test
    const budget = createLoginBudget();
    const open = () => openRedfish(options(m, { reloginAfterRestart: { refusals: 3, everyMs: 300 }, loginBudget: budget }));
    const clients: RedfishClient[] = [await open(), await open()];
    try {
      // the BMC restarts: both clients meet its 503s, its sessions are gone, its user service refuses logins
      m.state.faults.redfishStatus = 503;
      for (const c of clients) expect((await failure(c.get(SYSTEMS))).httpStatus).toBe(503);
      m.state.faults.redfishStatus = null;
      fleet.redfish!.dropSessions(0);
      m.state.faults.wrongCredentials = true;
      const before = logins();
      const final = new Map<RedfishClient, BmcError>();
      for (let round = 0; final.size < clients.length; round++) {
        expect(round).toBeLessThan(20);
        let retryAt = Infinity;
        for (const c of clients.filter((x) => !final.has(x))) {
          const err = await failure(c.get(SYSTEMS));
          expect(err).toMatchObject({ code: 'AUTH_FAILED', httpStatus: 401 });
          if (err instanceof ReloginPendingError) retryAt = Math.min(retryAt, err.retryAt);
          else final.set(c, err);
        }
        if (final.size < clients.length) await waitFor(() => Date.now() >= retryAt, 5000, 'the next login\'s time');
      }
      expect(logins() - before).toBe(3);
      // a new client (a report read's) sends no login while the refusals stand
      const late = await failure(open());
      expect(late).toMatchObject({ code: 'AUTH_FAILED', httpStatus: 401 });
      expect(late).not.toBeInstanceOf(ReloginPendingError);
      expect(late.message).toMatch(/login not sent \(3 logins of this user refused by the BMC/);
      expect(logins() - before).toBe(3);
    } finally {
      m.state.faults.wrongCredentials = false;
      await Promise.all(clients.map((c) => c.close()));
    }
  });

  it('by default the process shares one budget: a second client right after a refused login sends none, and the login it waited for is taken once the BMC checks passwords', async () => {
    const m = fleet.machines[1]!;
    m.state.faults.wrongCredentials = true;
    const before = logins();
    const first = await failure(openRedfish(options(m, { reloginAfterRestart: { everyMs: 300 } })));
    expect(first).toMatchObject({ code: 'AUTH_FAILED', httpStatus: 401 });
    const second = await failure(openRedfish(options(m, { reloginAfterRestart: { everyMs: 300 } })));
    expect(second.message).toMatch(/login not sent/);
    expect(logins() - before).toBe(1);
    m.state.faults.wrongCredentials = false;
    const retryAt = Date.now() + 300;
    await waitFor(() => Date.now() >= retryAt, 5000, 'the next login\'s time');
    const client = await openRedfish(options(m, { reloginAfterRestart: { everyMs: 300 } }));
    await client.close();
    expect(logins() - before).toBe(2);
  });

  it('a refusal of one password holds back no login with another: an event\'s outdated password does not stop the daemon\'s right one', async () => {
    const m = fleet.machines[0]!;
    const budget = createLoginBudget();
    const before = logins();
    const wrong = await failure(openRedfish(options(m, { password: `${fleet.password}-outdated`, loginBudget: budget })));
    expect(wrong).toMatchObject({ code: 'AUTH_FAILED', httpStatus: 401 });
    // the same password again is held back
    expect((await failure(openRedfish(options(m, { password: `${fleet.password}-outdated`, loginBudget: budget })))).message).toMatch(/login not sent/);
    expect(logins() - before).toBe(1);
    const client = await openRedfish(options(m, { loginBudget: budget }));
    await client.close();
    expect(logins() - before).toBe(2);
  });
});
