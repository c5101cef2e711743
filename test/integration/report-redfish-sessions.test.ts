/**
 * Redfish sessions kept between report reads (METAL_BMC_REPORT_REDFISH_SESSION_MAX_AGE,
 * outband/redfish-sessions.ts), against the simulator, which records every request a machine gets
 * and counts its open sessions: the second read of a BMC resumes the first one's session (no
 * login, no logout, no service root), a session the BMC dropped is replaced by one login, one past
 * its age is deleted and replaced, a BMC that keeps dropping them is logged in and out as before,
 * and the kept sessions survive a restart through the state file.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectOutband } from '../../src/outband/connect.js';
import { createRedfishSessionMemory, MAX_MISSES, openRedfishSessionFile, REDFISH_SESSIONS_FILE, redfishSessionKey, type RedfishSessionKeeper } from '../../src/outband/redfish-sessions.js';
import type { BmcReport } from '../../src/outband/types.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { LOGIN_REQUEST, sessionTokenUsed, startTestFleet } from '../helpers/fleet.js';
import { waitFor } from '../helpers/wait.js';

let fleet: Fleet;
let dir: string;

beforeAll(async () => {
  fleet = await startTestFleet({ count: 2, variants: ['lenovo', 'gigabyte'], seed: 'latency-test', recordRequests: true });
  dir = mkdtempSync(join(tmpdir(), 'redfish-sessions-'));
});
afterAll(async () => {
  await fleet?.close();
  rmSync(dir, { recursive: true, force: true });
});

const hostOf = (i: number) => fleet.machines[i]!.state.address;
const keyOf = (i: number) => `${hostOf(i)}:${fleet.redfishPort}`;
const HOUR = 3_600_000;

interface Read {
  report: BmcReport;
  logins: number;
  logouts: number;
  roots: number;
  unauthorizedRetry: boolean;
  requests: string[];
}

/** One report read as a cycle does it (closed as the cycle closes it); what the machine was asked meanwhile. */
async function read(i: number, sessions?: RedfishSessionKeeper, mac?: string): Promise<Read> {
  const before = fleet.requestLog(i).length;
  const bmc = await connectOutband({ host: hostOf(i), user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: 20_000, readAhead: true, ...(sessions ? { redfishSessions: sessions } : {}), ...(mac ? { mac } : {}) });
  let report: BmcReport;
  try {
    report = await bmc.info();
  } finally {
    await bmc.close();
  }
  const requests = fleet.requestLog(i).slice(before).filter((r) => r.protocol === 'redfish').map((r) => r.what);
  const count = (re: RegExp) => requests.filter((w) => re.test(w)).length;
  return {
    report,
    logins: count(LOGIN_REQUEST),
    logouts: count(/^DELETE \/redfish\/v1\/SessionService\/Sessions\//),
    roots: count(/^GET \/redfish\/v1\/?$/),
    unauthorizedRetry: new Set(requests).size < requests.length,
    requests,
  };
}

describe('report reads keep their Redfish session', () => {
  it('the second read resumes the first one\'s session: no login, no logout, no service root, no collection, the same report', async () => {
    for (const i of [0, 1]) {
      const sessions = createRedfishSessionMemory({ maxAgeMs: HOUR });
      const first = await read(i, sessions);
      expect(first.logins).toBe(1);
      expect(first.roots).toBe(1);
      expect(first.logouts).toBe(0);
      expect(fleet.redfish!.openSessions(i)).toBe(1);
      expect(sessions.get(keyOf(i))?.token).toMatch(/^[0-9a-f]{32}$/);
      expect(sessions.get(keyOf(i))?.root).toBeDefined();

      const second = await read(i, sessions);
      expect(second.logins).toBe(0);
      expect(second.logouts).toBe(0);
      expect(second.roots).toBe(0);
      expect(second.report).toEqual(first.report);
      // and no collection: the System and the power data by the paths the first read found (redfish/layout.ts)
      expect(second.requests.filter((w) => /^GET \/redfish\/v1\/(Systems|Chassis|Managers)(\?.*)?$/.test(w))).toEqual([]);
      expect(second.requests.every((w) => /^GET \/redfish\/v1\/(Systems\/[^/?]+|Chassis\/[^?]+)$/.test(w))).toBe(true);
      expect(second.requests).toEqual(expect.arrayContaining([expect.stringMatching(/^GET \/redfish\/v1\/Systems\/[^/?]+$/)]));
      // nor the Manager: Lenovo's and Gigabyte's BMCVersion is not sent to metal-api, its version is kept with the layout
      expect(first.requests).toEqual(expect.arrayContaining([expect.stringMatching(/^GET \/redfish\/v1\/Managers/)]));
      expect(second.report.bmcVersion).toBe(first.report.bmcVersion);
      expect(second.requests.length).toBeLessThan(first.requests.length - 3);
      expect(fleet.redfish!.openSessions(i)).toBe(1);
      fleet.redfish!.dropSessions(i);
    }
  });

  it('without a keeper, a read logs in and out as before', async () => {
    const r = await read(0);
    expect(r.logins).toBe(1);
    expect(r.logouts).toBe(1);
    expect(fleet.redfish!.openSessions(0)).toBe(0);
  });

  it('a session the BMC dropped (a reboot, its idle timeout) is replaced by one login, and the report is whole', async () => {
    const sessions = createRedfishSessionMemory({ maxAgeMs: HOUR });
    const first = await read(0, sessions);
    const token = sessions.get(keyOf(0))!.token;
    expect(fleet.redfish!.dropSessions(0)).toBe(1);
    const second = await read(0, sessions);
    expect(second.logins).toBe(1);
    expect(second.report).toEqual(first.report);
    const kept = sessions.get(keyOf(0))!;
    expect(kept.token).not.toBe(token);
    expect(kept.misses).toBe(1);
    // a dropped session's service root is not trusted: the next read asks for it again
    expect(kept.root).toBeUndefined();
    expect(fleet.redfish!.openSessions(0)).toBe(1);
    const third = await read(0, sessions);
    expect(third.logins).toBe(0);
    expect(third.roots).toBe(1);
    expect(sessions.get(keyOf(0))!.misses).toBe(0);
    fleet.redfish!.dropSessions(0);
  });

  it('a session past its age is deleted and replaced by a new login', async () => {
    const sessions = createRedfishSessionMemory({ maxAgeMs: HOUR });
    await read(0, sessions);
    const old = sessions.get(keyOf(0))!;
    sessions.set(keyOf(0), { ...old, since: old.since - 2 * HOUR });
    const r = await read(0, sessions);
    expect(r.logins).toBe(1);
    expect(r.logouts).toBe(1);
    expect(sessions.get(keyOf(0))!.token).not.toBe(old.token);
    expect(fleet.redfish!.openSessions(0)).toBe(1);
    fleet.redfish!.dropSessions(0);
  });

  it(`a BMC that drops its kept session ${MAX_MISSES} reads in a row is logged in and out every read`, async () => {
    const sessions = createRedfishSessionMemory({ maxAgeMs: HOUR });
    await read(0, sessions);
    for (let miss = 1; miss <= MAX_MISSES; miss++) {
      fleet.redfish!.dropSessions(0);
      await read(0, sessions);
    }
    expect(sessions.get(keyOf(0))).toMatchObject({ misses: MAX_MISSES });
    expect(sessions.get(keyOf(0))!.token).toBeUndefined();
    expect(fleet.redfish!.openSessions(0)).toBe(0);
    const r = await read(0, sessions);
    expect(r.logins).toBe(1);
    expect(r.logouts).toBe(1);
    expect(fleet.redfish!.openSessions(0)).toBe(0);
  });

  it('a session kept for another certificate is not sent: the read logs in', async () => {
    const sessions = createRedfishSessionMemory({ maxAgeMs: HOUR });
    await read(0, sessions);
    const old = sessions.get(keyOf(0))!;
    sessions.set(keyOf(0), { ...old, pin: 'a'.repeat(64) });
    const r = await read(0, sessions);
    expect(r.logins).toBe(1);
    expect(sessions.get(keyOf(0))!.pin).toBeUndefined();
    fleet.redfish!.dropSessions(0);
  });

  it('a BMC replaced at the same address (another MAC; a CA vouches for both, so no pin tells them apart) is not offered its predecessor\'s token: it logs in', async () => {
    const sessions = createRedfishSessionMemory({ maxAgeMs: HOUR });
    const [before, after] = ['aa:bb:cc:00:00:01', 'AA:BB:CC:00:00:02'];
    const first = await read(0, sessions, before);
    expect(first.logins).toBe(1);
    const old = sessions.get(redfishSessionKey(hostOf(0), fleet.redfishPort, before))!;
    expect(old.token).toBeDefined();
    const second = await read(0, sessions, after);
    expect(second.logins).toBe(1);
    // the predecessor's token went nowhere, not even in a DELETE: both sessions are open on the BMC
    expect(second.logouts).toBe(0);
    expect(fleet.redfish!.openSessions(0)).toBe(2);
    expect(sessions.get(redfishSessionKey(hostOf(0), fleet.redfishPort, after))?.token).not.toBe(old.token);
    expect(sessions.get(redfishSessionKey(hostOf(0), fleet.redfishPort, before))).toEqual(old);
    // the same MAC again resumes its own session
    expect((await read(0, sessions, after)).logins).toBe(0);
    fleet.redfish!.dropSessions(0);
  });

  it('the state file keeps the sessions over a restart (mode 0600, no service root); the next process resumes them', async () => {
    const file = join(dir, REDFISH_SESSIONS_FILE);
    const before = openRedfishSessionFile({ file, maxAgeMs: HOUR, writeDelayMs: 0 });
    const first = await read(1, before);
    await before.close();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    expect(text).toContain(before.get(keyOf(1))!.token!);
    expect(text).not.toContain('ProtocolFeaturesSupported');

    const after = openRedfishSessionFile({ file, maxAgeMs: HOUR, writeDelayMs: 0 });
    expect(after.size).toBe(1);
    const second = await read(1, after);
    expect(second.logins).toBe(0);
    expect(second.logouts).toBe(0);
    // the service root is not in the file: read once, with the resumed session
    expect(second.roots).toBe(1);
    expect(second.report).toEqual(first.report);
    expect(fleet.redfish!.openSessions(1)).toBe(1);
    await after.close();
    fleet.redfish!.dropSessions(1);
  });

  it('a read aborted during vendor detection (shutdown, the cycle giving up on it) closes its sessions: none is left on the BMC', async () => {
    for (const sessions of [undefined, createRedfishSessionMemory({ maxAgeMs: HOUR })]) {
      const m = fleet.machines[0]!;
      m.state.faults.delayMs = 150; // every answer of this BMC is slow: detection takes a few of them after the login
      const shutdown = new AbortController();
      const before = fleet.requestLog(0).length;
      const tokenUsed = () => sessionTokenUsed(fleet.requestLog(0).slice(before));
      try {
        const connecting = connectOutband({ host: hostOf(0), user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: 20_000, readAhead: true, signal: shutdown.signal, ...(sessions ? { redfishSessions: sessions } : {}) });
        connecting.catch(() => undefined);
        // the login is done and its answer in (the session exists, and a request used its token);
        // detection is still reading. A session whose login answer has not arrived yet cannot be
        // deleted by anyone: under load, the session count alone left that window open
        await waitFor(() => fleet.redfish!.openSessions(0) === 1 && tokenUsed(), 10_000, 'the login and a request with its token');
        shutdown.abort(new Error('metal-bmc is shutting down'));
        await expect(connecting).rejects.toThrow();
      } finally {
        m.state.faults.delayMs = 0;
      }
      if (sessions) {
        // kept for the next read, not left behind: the next read resumes it
        await waitFor(() => sessions.get(keyOf(0))?.token !== undefined, 10_000, 'the session kept');
        const r = await read(0, sessions);
        expect(r.logins).toBe(0);
        expect(fleet.redfish!.openSessions(0)).toBe(1);
        fleet.redfish!.dropSessions(0);
      } else {
        await waitFor(() => fleet.redfish!.openSessions(0) === 0, 10_000, 'the session deleted');
      }
    }
  });
});
