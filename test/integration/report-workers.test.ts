/**
 * Report reads in worker threads (src/report/worker-pool.ts) against the simulated fleet: the
 * same reports as reads in the main thread, really made in the workers (their TLS connections are
 * theirs, the main thread's stay untouched), the trust records of first contacts written by the
 * main thread's store and pinned afterwards (a changed certificate refused in the worker, counted
 * and logged here), a worker that dies fails only its reads in flight and is started again (their
 * BMCs read one at a time until each has been read once), the caller's abort ends a read at once
 * (the worker stops it too), and a dead BMC costs its deadline only.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BmcError } from '../../src/errors.js';
import type { Lease } from '../../src/leases/types.js';
import { createMetalApiClient } from '../../src/metalapi/client.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import { connectOutband } from '../../src/outband/connect.js';
import { createRedfishSessionMemory, redfishSessionKey } from '../../src/outband/redfish-sessions.js';
import { createBmcTrust, openTrustStore, trustKey, type TrustMetrics } from '../../src/outband/trust.js';
import type { BmcReport } from '../../src/outband/types.js';
import { openRedfish } from '../../src/redfish/index.js';
import { SecondConnectionSwitch } from '../../src/redfish/second-connection.js';
import { loginBudgetKey, processLoginBudget } from '../../src/redfish/login-budget.js';
import { sharedTlsStats } from '../../src/redfish/tls-context.js';
import { runReportCycle, type CycleDeps } from '../../src/report/cycle.js';
import type { BmcReadAttempt } from '../../src/report/read-bmc.js';
import { createReportWorkerPool, workerOfBmc, type ReportWorkerPool } from '../../src/report/worker-pool.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { LOGIN_REQUEST, sessionTokenUsed, startTestFleet } from '../helpers/fleet.js';
import { captureLog } from '../helpers/log.js';
import { makeUnreadable } from '../helpers/unreadable-file.js';
import { waitFor } from '../helpers/wait.js';

let fleet: Fleet;
/** one BMC whose every Redfish answer takes 3 s: a read of it is in flight for many seconds */
let slow: Fleet;
let api: MetalApiStandIn;
const dirs: string[] = [];
const pools: ReportWorkerPool[] = [];

beforeAll(async () => {
  fleet = await startTestFleet({ count: 3, variants: ['supermicro', 'lenovo', 'gigabyte'], seed: 'report-workers' });
  slow = await startTestFleet({ count: 1, seed: 'report-workers-slow', recordRequests: true, latency: { redfish: { p50Ms: 3000, p99Ms: 3000 }, ipmi: { p50Ms: 2, p99Ms: 2 } } });
  api = await startMetalApiStandIn({ hmacKey: 'k' });
});
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
  await api?.close();
  await fleet?.close();
  await slow?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const settings = () => ({ user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: 20_000 });

function leases(): Lease[] {
  return fleet.machines.map((m) => ({ ip: m.state.address, mac: m.state.mac }) as Lease);
}

/** an address of the fleet's network where no BMC answers */
function deadLease(): Lease {
  const [a, b] = fleet.machines[0]!.state.address.split('.');
  return { ip: `${a}.${b}.250.250`, mac: 'aa:bb:cc:dd:ee:ff' } as Lease;
}

function pool(o: Partial<Parameters<typeof createReportWorkerPool>[0]> = {}): ReportWorkerPool {
  const p = createReportWorkerPool({ workers: 2, settings: settings(), logger: captureLog('warn').logger, ...o });
  pools.push(p);
  return p;
}

/** a report worker that answers no read (its BMCs never answer) but dies when told to */
const SILENT_WORKER = new URL('../fixtures/workers/silent-report-worker.mjs', import.meta.url);

/** BMCs of no fleet, for workers that never reach them */
function nowhere(count: number): Lease[] {
  return Array.from({ length: count }, (_, i) => ({ ip: `10.99.0.${i + 1}`, mac: `aa:bb:cc:99:00:0${i + 1}` }) as Lease);
}

/** Makes `bmcs` suspects of a one-worker pool: in flight at its worker's exit; waits for the worker started again. */
async function makeSuspects(workers: ReportWorkerPool, bmcs: Lease[]): Promise<void> {
  const { reads, restarts } = workers.stats()[0]!;
  const inFlight = bmcs.map((l) => workers.read(l, { timeoutMs: 60_000 }));
  await waitFor(() => workers.stats()[0]!.reads === reads + bmcs.length, 10_000, 'the reads under way');
  await workers.kill(0);
  for (const lost of await Promise.all(inFlight)) expect(lost.ok ? undefined : lost.lostWithWorker).toBe(true);
  await waitFor(() => workers.stats()[0]!.restarts === restarts + 1 && workers.stats()[0]!.alive, 10_000, 'the worker started again');
}

/** what `p` settled to, or 'pending' if it has not within `ms` */
function settledWithin<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), ms)));
  return Promise.race([p, pending]).finally(() => clearTimeout(timer));
}

function countingTrustMetrics() {
  const counts = { refused: [] as string[], firstUse: [] as string[] };
  const metrics: TrustMetrics = { refused: { inc: ({ check }) => counts.refused.push(check) }, firstUse: { inc: ({ what, proof }) => counts.firstUse.push(`${what}/${proof}`) } };
  return { counts, metrics };
}

/** what the report says of a machine; the power reading moves between two reads */
const stable = ({ powerMetric: _p, ...rest }: BmcReport) => rest;

describe('report reads in worker threads', () => {
  it('reads the same reports as the main thread, over TLS connections of the workers', async () => {
    const deps: CycleDeps = {
      partitionId: 'p',
      connect: (host, signal, onAnswer) => connectOutband({ ...settings(), host, readAhead: true, onAnswer, signal }),
      metalApi: createMetalApiClient({ baseUrl: api.url, hmacKey: 'k', timeoutMs: 20_000 }),
      concurrency: 8,
      bmcTimeoutMs: 20_000,
      logger: captureLog('error').logger,
    };
    const inMain = new Map<string, BmcReport>();
    const main = await runReportCycle({ ...deps, observer: { read: (l, o) => o.ok && inMain.set(l.ip, o.report), reported: () => undefined } }, leases());
    expect(main.read).toBe(3);

    const workers = pool();
    const mainTls = sharedTlsStats().connections;
    const inWorkers = new Map<string, BmcReport>();
    const result = await runReportCycle({ ...deps, reader: workers, observer: { read: (l, o) => o.ok && inWorkers.set(l.ip, o.report), reported: () => undefined } }, leases());
    expect(result.read).toBe(3);
    expect(result.reported).toBe(3);
    for (const l of leases()) expect(stable(inWorkers.get(l.ip)!), l.ip).toEqual(stable(inMain.get(l.ip)!));
    // the connections were the workers' own: none more in this thread, two per BMC over there
    expect(sharedTlsStats().connections).toBe(mainTls);
    const stats = workers.stats();
    expect(stats.reduce((n, s) => n + s.reads, 0)).toBe(3);
    expect(stats.reduce((n, s) => n + s.tlsConnections, 0)).toBeGreaterThanOrEqual(3);
    for (const s of stats) expect(s.threadId).toBeGreaterThan(0);
  });

  it('a BMC goes to the same worker every time, so its TLS session resumes there', async () => {
    const workers = pool();
    const lease = leases()[1]!;
    const first = await workers.read(lease, { timeoutMs: 20_000 });
    expect(first.ok).toBe(true);
    const before = workers.stats();
    const second = await workers.read(lease, { timeoutMs: 20_000 });
    expect(second.ok).toBe(true);
    const after = workers.stats();
    const used = after.findIndex((s, i) => s.reads > before[i]!.reads);
    expect(after.filter((s, i) => s.reads > before[i]!.reads)).toHaveLength(1);
    expect(after[used]!.tlsResumed).toBeGreaterThan(before[used]!.tlsResumed);
  });

  it('a worker keeps a BMC\'s confirmed IPMI GUID (and a Supermicro\'s identity beside it): the next read opens no IPMI session', async () => {
    const workers = pool({ guidMaxAgeMs: 60_000 });
    const byIp = new Map(fleet.machines.map((m) => [m.state.address, m.state.manufacturer]));
    expect([...byIp.values()]).toContain('Supermicro');
    const first = await Promise.all(leases().map((l) => workers.read(l, { timeoutMs: 20_000 })));
    const second = await Promise.all(leases().map((l) => workers.read(l, { timeoutMs: 20_000 })));
    leases().forEach((l, i) => {
      const [a, b] = [first[i]!, second[i]!];
      if (!a.ok || !b.ok) throw new Error(`${l.ip}: a read failed`);
      expect(a.report.source, l.ip).toBe('redfish+ipmi');
      // Supermicro takes BMCVersion and FRU from IPMI: kept with the GUID while Redfish names the same Manager firmware
      expect(b.report.source, l.ip).toBe('redfish');
      expect(b.report.uuid).toBe(a.report.uuid);
      if (byIp.get(l.ip) === 'Supermicro') expect({ ...b.report, source: a.report.source }, l.ip).toEqual(a.report);
    });
    // and without the setting every read has its session
    const plain = pool();
    for (let round = 0; round < 2; round++) {
      for (const attempt of await Promise.all(leases().map((l) => plain.read(l, { timeoutMs: 20_000 })))) expect(attempt.ok && attempt.report.source).toBe('redfish+ipmi');
    }
  });

  it('a read in a worker resumes the Redfish session the main thread kept from the last one (its layout too), and hands back the one to keep', async () => {
    const sessions = createRedfishSessionMemory({ maxAgeMs: 3_600_000 });
    const workers = pool({ redfishSessions: sessions });
    const keyOf = (l: Lease) => redfishSessionKey(l.ip, fleet.redfishPort, l.mac);
    const first = await Promise.all(leases().map((l) => workers.read(l, { timeoutMs: 20_000 })));
    const tokens = leases().map((l) => sessions.get(keyOf(l))?.token);
    for (const t of tokens) expect(t).toMatch(/^[0-9a-f]{32}$/);
    // with it, where the worker's read found the System and the rest (redfish/layout.ts), checked on its way in
    for (const l of leases()) expect(sessions.get(keyOf(l))?.layout?.system, l.ip).toMatch(/^\/redfish\/v1\/Systems\/[^/]+$/);
    fleet.machines.forEach((_, i) => expect(fleet.redfish!.openSessions(i)).toBe(1));
    const second = await Promise.all(leases().map((l) => workers.read(l, { timeoutMs: 20_000 })));
    leases().forEach((l, i) => {
      const [a, b] = [first[i]!, second[i]!];
      if (!a.ok || !b.ok) throw new Error(`${l.ip}: a read failed`);
      expect(b.report).toEqual(a.report);
      // the same session: resumed in the worker, not a new login
      expect(sessions.get(keyOf(l))?.token, l.ip).toBe(tokens[i]);
      expect(fleet.redfish!.openSessions(i)).toBe(1);
    });
    for (let i = 0; i < fleet.machines.length; i++) fleet.redfish!.dropSessions(i);
  });

  it('records a first contact in the main thread’s trust file, pins it next time, and refuses another certificate', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'report-workers-trust-'));
    dirs.push(dir);
    const store = openTrustStore({ file: join(dir, 'bmc-trust.json'), writeDelayMs: 0 });
    const log = captureLog('info');
    const { counts, metrics } = countingTrustMetrics();
    const workers = pool({ trust: createBmcTrust({ store, logger: log.logger, metrics }), trustMetrics: metrics, logger: log.logger });
    const lease = leases()[0]!;
    const key = trustKey({ ip: lease.ip, mac: lease.mac });

    const first = await workers.read(lease, { timeoutMs: 20_000 });
    expect(first.ok).toBe(true);
    const record = store.get(key);
    expect(record?.redfishSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(record?.proof).toBe('ipmi');
    expect(counts.firstUse).toEqual(['redfish/ipmi']);
    // the worker's log line reached this logger, with the worker it came from
    await waitFor(() => log.find('BMC certificate recorded on first use').length === 1, 10_000, 'the first-use line');
    expect(log.find('BMC certificate recorded on first use')[0]).toMatchObject({ bmc: lease.ip, module: 'report-workers' });
    expect(typeof log.find('BMC certificate recorded on first use')[0]!.worker).toBe('number');

    const pinned = await workers.read(lease, { timeoutMs: 20_000 });
    expect(pinned.ok).toBe(true);
    expect(counts.firstUse).toHaveLength(1);

    // another certificate than the recorded one: refused before any credential goes out
    store.update(key, { redfishSha256: 'ab'.repeat(32) });
    const refused = await workers.read(lease, { timeoutMs: 20_000 });
    expect(refused.ok).toBe(false);
    expect(refused.ok ? undefined : refused.error).toBeInstanceOf(BmcError);
    expect(refused.ok ? undefined : (refused.error as BmcError).code).toBe('UNTRUSTED');
    expect(counts.refused).toEqual(['redfish']);
    await waitFor(() => log.find('BMC presents another identity than the one recorded; credentials not sent').length === 1, 10_000, 'the refusal line');
    expect(log.text()).not.toContain(fleet.password);
    await store.close();
  });

  it('METAL_BMC_TRUST_REQUIRE_PROOF reaches the workers: a first contact whose IPMI has no session for it is refused there, not trusted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'report-workers-proof-'));
    dirs.push(dir);
    const store = openTrustStore({ file: join(dir, 'bmc-trust.json'), writeDelayMs: 0 });
    const { counts, metrics } = countingTrustMetrics();
    const log = captureLog('info');
    const workers = pool({ trust: createBmcTrust({ store, logger: log.logger, metrics, requireProof: true }), trustMetrics: metrics, logger: log.logger });
    const lease = leases()[1]!;
    const machine = fleet.machines.find((m) => m.state.address === lease.ip)!;
    fleet.setFaults([machine.state.index], { sessionsFull: true }); // RAKP answered "no resources": no proof
    try {
      const read = await workers.read(lease, { timeoutMs: 20_000 });
      expect(read.ok).toBe(false);
      expect(read.ok ? undefined : (read.error as BmcError).code).toBe('UNTRUSTED');
      expect(read.ok ? undefined : (read.error as Error).message).toMatch(/refused as METAL_BMC_TRUST_REQUIRE_PROOF asks/);
      expect(store.get(trustKey({ ip: lease.ip, mac: lease.mac }))).toBeUndefined();
      expect(counts.refused).toEqual(['ipmi-proof']);
    } finally {
      fleet.setFaults([machine.state.index], { sessionsFull: false });
      await store.close();
    }
  });

  it('with required proof, a worker meets a record without proof as a first contact: proven, its certificate recorded as ipmi, the unproven SSH key forgotten', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'report-workers-reprove-'));
    dirs.push(dir);
    const lease = leases()[1]!;
    const key = trustKey({ ip: lease.ip, mac: lease.mac });
    writeFileSync(join(dir, 'bmc-trust.json'), JSON.stringify({ version: 1, bmcs: { [key]: { redfishSha256: 'ab'.repeat(32), sshSha256: 'cd'.repeat(32), proof: 'none', firstSeen: '2026-01-01T00:00:00Z', lastSeen: '2026-01-01T00:00:00Z' } } }));
    const store = openTrustStore({ file: join(dir, 'bmc-trust.json'), writeDelayMs: 0 });
    const { counts, metrics } = countingTrustMetrics();
    const log = captureLog('info');
    const workers = pool({ trust: createBmcTrust({ store, logger: log.logger, metrics, requireProof: true }), trustMetrics: metrics, logger: log.logger });
    try {
      const read = await workers.read(lease, { timeoutMs: 20_000 });
      expect(read.ok).toBe(true);
      expect(counts.refused).toEqual([]);
      expect(counts.firstUse).toEqual(['redfish/ipmi']);
      const record = store.get(key);
      expect(record?.redfishSha256).toMatch(/^[0-9a-f]{64}$/);
      expect(record?.redfishSha256).not.toBe('ab'.repeat(32));
      expect(record?.proof).toBe('ipmi');
      expect(record?.sshSha256).toBeUndefined();
    } finally {
      await store.close();
    }
  });

  it('a trust record that cannot be used reaches the workers: the BMC is refused there, not met as a first contact', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'report-workers-unusable-'));
    dirs.push(dir);
    const lease = leases()[0]!;
    const key = trustKey({ ip: lease.ip, mac: lease.mac });
    const entry = { redfishSha256: 'not a fingerprint', firstSeen: '2026-01-01T00:00:00Z', lastSeen: '2026-01-01T00:00:00Z' };
    writeFileSync(join(dir, 'bmc-trust.json'), JSON.stringify({ version: 1, bmcs: { [key]: entry } }));
    const store = openTrustStore({ file: join(dir, 'bmc-trust.json'), writeDelayMs: 0 });
    const { counts, metrics } = countingTrustMetrics();
    const log = captureLog('info');
    const workers = pool({ trust: createBmcTrust({ store, logger: log.logger, metrics }), trustMetrics: metrics, logger: log.logger });
    try {
      const read = await workers.read(lease, { timeoutMs: 20_000 });
      expect(read.ok).toBe(false);
      expect(read.ok ? undefined : (read.error as BmcError).code).toBe('UNTRUSTED');
      expect(read.ok ? undefined : (read.error as Error).message).toMatch(/cannot be used \(redfishSha256 is not a SHA-256 fingerprint/);
      expect(counts.refused).toEqual(['record']);
      expect(counts.firstUse).toEqual([]);
      expect(store.get(key)).toBeUndefined();
    } finally {
      await store.close();
    }
    expect((JSON.parse(readFileSync(join(dir, 'bmc-trust.json'), 'utf8')) as { bmcs: Record<string, unknown> }).bmcs[key]).toEqual(entry);
  });

  it('a trust file that cannot be read reaches the workers: a BMC without a record in memory is refused there before anything is sent, and met with its pin once the file can be read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'report-workers-unreadable-'));
    dirs.push(dir);
    const file = join(dir, 'bmc-trust.json');
    const lease = leases()[0]!;
    const key = trustKey({ ip: lease.ip, mac: lease.mac });
    // the run before: the BMC pinned (proven over IPMI)
    const before = openTrustStore({ file, writeDelayMs: 0 });
    const first = await pool({ trust: createBmcTrust({ store: before }) }).read(lease, { timeoutMs: 20_000 });
    expect(first.ok).toBe(true);
    await before.close();
    const pins = readFileSync(file, 'utf8');
    await makeUnreadable(file);
    // a start on the file it cannot read
    const store = openTrustStore({ file, writeDelayMs: 0 });
    const { counts, metrics } = countingTrustMetrics();
    const log = captureLog('info');
    const workers = pool({ trust: createBmcTrust({ store, logger: log.logger, metrics }), trustMetrics: metrics, logger: log.logger });
    try {
      const read = await workers.read(lease, { timeoutMs: 20_000 });
      expect(read.ok ? undefined : (read.error as BmcError).code).toBe('UNTRUSTED');
      expect(read.ok ? undefined : (read.error as Error).message).toContain(`no record in memory and the trust file ${file} cannot be read (ENXIO); a first contact is refused`);
      expect(counts.refused).toEqual(['unreadable-file']);
      expect(counts.firstUse).toEqual([]);
      expect(store.get(key)).toBeUndefined();
      rmSync(file);
      writeFileSync(file, pins);
      const again = await workers.read(lease, { timeoutMs: 20_000 });
      expect(again.ok).toBe(true);
      expect(counts.firstUse).toEqual([]); // the pin from the file, not a first contact
      expect(store.get(key)?.redfishSha256).toBe((JSON.parse(pins) as { bmcs: Record<string, { redfishSha256: string }> }).bmcs[key]!.redfishSha256);
    } finally {
      await store.close();
    }
  });

  it('a Redfish login refused in a worker counts in the main thread\'s budget for the BMC and user: the commands\' client and the next read send none while it stands', async () => {
    const own = await startTestFleet({ count: 1, variants: ['lenovo'], seed: 'report-workers-logins' });
    try {
      const m = own.machines[0]!;
      m.state.faults.wrongCredentials = true;
      const logins = () => own.redfish?.requests.byRoute['POST sessions'] ?? 0;
      const workers = pool({ settings: { ...settings(), ipmiPort: own.ipmiPort, redfishPort: own.redfishPort, user: own.user, password: own.password } });
      const lease = { ip: m.state.address, mac: m.state.mac } as Lease;
      expect((await workers.read(lease, { timeoutMs: 10_000 })).ok).toBe(false);
      expect(logins()).toBe(1);
      expect(processLoginBudget.get(loginBudgetKey(m.state.address, own.redfishPort, own.user, own.password))).toMatchObject({ count: 1, status: 401 });
      // the command path, in the main thread
      const command = await openRedfish({ host: m.state.address, port: own.redfishPort, user: own.user, password: own.password, insecure: true }).then(
        () => undefined,
        (e: unknown) => e as BmcError,
      );
      expect(command?.message).toMatch(/login not sent/);
      // the next read, in its worker: no Redfish login (it then fails over IPMI, refused there too)
      expect((await workers.read(lease, { timeoutMs: 10_000 })).ok).toBe(false);
      expect(logins()).toBe(1);
    } finally {
      await own.close();
    }
  });

  it("Basic refused in a worker after the BMC's session slots were all taken reaches the main thread's budget as such: the command path hears NO_SESSION_SLOTS, not a wrong password", async () => {
    const own = await startTestFleet({ count: 1, variants: ['lenovo'], seed: 'report-workers-slots' });
    try {
      const m = own.machines[0]!;
      m.state.quirks = new Set(['redfish-sessions-exhausted', 'redfish-basic-refused']);
      const workers = pool({ settings: { ...settings(), ipmiPort: own.ipmiPort, redfishPort: own.redfishPort, user: own.user, password: own.password } });
      await workers.read({ ip: m.state.address, mac: m.state.mac } as Lease, { timeoutMs: 10_000 });
      const key = loginBudgetKey(m.state.address, own.redfishPort, own.user, own.password);
      await waitFor(() => processLoginBudget.get(key) !== undefined, 10_000, "the refusal in the main thread's budget");
      expect(processLoginBudget.get(key)).toMatchObject({ count: 1, status: 401, slotsTaken: true });
      const command = await openRedfish({ host: m.state.address, port: own.redfishPort, user: own.user, password: own.password, insecure: true }).then(
        () => undefined,
        (e: unknown) => e as BmcError,
      );
      expect(command?.code).toBe('NO_SESSION_SLOTS');
    } finally {
      await own.close();
    }
  });

  it('a Redfish login refused after its read ended (the login runs on to its answer): the refusal still counts in the main thread\'s budget', async () => {
    // every Redfish answer takes 2 s: the read is given up on once its login reached the BMC, and the 401 comes after
    const own = await startTestFleet({ count: 1, variants: ['lenovo'], seed: 'report-workers-late-login', recordRequests: true, latency: { redfish: { p50Ms: 2000, p99Ms: 2000 }, ipmi: { p50Ms: 2, p99Ms: 2 } } });
    try {
      const m = own.machines[0]!;
      m.state.faults.wrongCredentials = true;
      const key = loginBudgetKey(m.state.address, own.redfishPort, own.user, own.password);
      const workers = pool({ workers: 1, settings: { ...settings(), ipmiPort: own.ipmiPort, redfishPort: own.redfishPort, user: own.user, password: own.password } });
      const abort = new AbortController();
      const reading = workers.read({ ip: m.state.address, mac: m.state.mac } as Lease, { timeoutMs: 60_000, signal: abort.signal });
      await waitFor(() => own.requestLog(0).some((r) => r.protocol === 'redfish' && LOGIN_REQUEST.test(r.what)), 10_000, 'the login at the BMC');
      abort.abort(new Error('the cycle stops'));
      expect((await reading).ok).toBe(false);
      expect(processLoginBudget.get(key), 'no refusal yet when the read ended').toBeUndefined();
      await waitFor(() => workers.stats()[0]!.abandoned === 1, 10_000, "the worker's answer to the stopped read");
      await waitFor(() => processLoginBudget.get(key) !== undefined, 10_000, "the late refusal in the main thread's budget");
      expect(processLoginBudget.get(key)).toMatchObject({ count: 1, status: 401 });
    } finally {
      await own.close();
    }
  });

  it('a dead BMC costs its deadline only', async () => {
    const workers = pool();
    const dead = await workers.read(deadLease(), { timeoutMs: 1500 });
    expect(dead.ok).toBe(false);
    expect(dead.ok ? undefined : (dead.error as BmcError).code).toBe('TIMEOUT');
    // its own deadline, not the pool's guard (twice the deadline and 5 s more)
    expect(dead.durationMs).toBeGreaterThanOrEqual(1400);
    expect(dead.durationMs).toBeLessThan(2 * 1500 + 5000);

  });

  it('the caller’s abort ends a read at once, and the worker stops it too', async () => {
    const workers = pool({ settings: { ...settings(), ipmiPort: slow.ipmiPort, redfishPort: slow.redfishPort, user: slow.user, password: slow.password } });
    // no NaN from workers that are not running yet: the limiter would hold instead of stepping back
    const load = workers.load();
    expect(load.busy).toBeGreaterThanOrEqual(0);
    expect(load.busy).toBeLessThanOrEqual(1);
    const machine = slow.machines[0]!.state;
    const abort = new AbortController();
    const before = slow.requestLog(0).length;
    const seen = (re: RegExp) => slow.requestLog(0).slice(before).some((r) => r.protocol === 'redfish' && re.test(r.what));
    const reading = workers.read({ ip: machine.address, mac: machine.mac } as Lease, { timeoutMs: 60_000, signal: abort.signal });
    // the worker has the read: its Redfish login reached the BMC (each answer takes 3 s)
    await waitFor(() => seen(LOGIN_REQUEST), 10_000, 'the login at the BMC');
    abort.abort(new Error('the cycle stops'));
    const aborted = await reading;
    expect(aborted.ok ? undefined : (aborted.error as BmcError).code).toBe('ABORTED');
    // the worker's own answer follows within a few seconds; had it not stopped the read, that
    // would take at least two more answers of 3 s each (the Redfish login, then what follows it)
    await waitFor(() => workers.stats().some((s) => s.abandoned === 1), 5000, "the worker's answer to the stopped read");
    // the login was on its way: it runs on to its answer in the background, and the session it
    // created is deleted (an answer of 3 s each), not left in one of the BMC's few slots
    await waitFor(() => seen(/^DELETE \/redfish\/v1\/SessionService\/Sessions\//) && slow.redfish!.openSessions(0) === 0, 15_000, 'the stopped login\'s session deleted');
  });

  it("the cycle's switch for second connections, turned on while a worker reads, ends that read's wait for its BMC's second Redfish connection", async () => {
    // a second connection only after 10 minutes of waiting, no hedges: one request at a time, each answered after 3 s
    const workers = pool({ workers: 1, settings: { ...settings(), ipmiPort: slow.ipmiPort, redfishPort: slow.redfishPort, user: slow.user, password: slow.password, redfishOpenConnectionAfterMs: 600_000 } });
    const machine = slow.machines[0]!.state;
    await waitFor(() => slow.redfish!.openSessions(0) === 0, 15_000, 'no session of earlier reads');
    const before = slow.requestLog(0).length;
    const redfish = () => slow.requestLog(0).slice(before).filter((r) => r.protocol === 'redfish');
    /** two requests of the read at the BMC less than an answer's time apart: on two connections */
    const together = () => redfish().some((r, i, all) => i > 0 && r.atMs - all[i - 1]!.atMs < 1500);
    const cycleSwitch = new SecondConnectionSwitch();
    const abort = new AbortController();
    const reading = workers.read({ ip: machine.address, mac: machine.mac } as Lease, { timeoutMs: 60_000, signal: abort.signal, secondConnection: cycleSwitch });
    // the service root, then the login after its answer: one after the other while the switch is off
    await waitFor(() => redfish().length >= 2, 15_000, 'two requests of the read at the BMC');
    expect(together()).toBe(false);
    cycleSwitch.turnOn();
    // the requests after the login go out side by side (the worker heard the switch turn on)
    await waitFor(together, 15_000, 'two requests of the read at the BMC together');
    abort.abort(new Error('the cycle stops'));
    expect((await reading).ok).toBe(false);
    await waitFor(() => slow.redfish!.openSessions(0) <= 1, 15_000, 'the read ended');
    slow.redfish!.dropSessions(0);
  });

  it('a read given up on after its login: its late answer still hands the session to keep, none is left behind', async () => {
    const sessions = createRedfishSessionMemory({ maxAgeMs: 3_600_000 });
    const workers = pool({ workers: 1, redfishSessions: sessions, settings: { ...settings(), ipmiPort: slow.ipmiPort, redfishPort: slow.redfishPort, user: slow.user, password: slow.password } });
    const machine = slow.machines[0]!.state;
    const key = redfishSessionKey(machine.address, slow.redfishPort, machine.mac);
    // the earlier reads of this BMC logged out (each logout takes an answer of 3 s)
    await waitFor(() => slow.redfish!.openSessions(0) === 0, 15_000, 'no session of earlier reads');
    const abort = new AbortController();
    const before = slow.requestLog(0).length;
    const tokenUsed = () => sessionTokenUsed(slow.requestLog(0).slice(before));
    const reading = workers.read({ ip: machine.address, mac: machine.mac } as Lease, { timeoutMs: 60_000, signal: abort.signal });
    // the login is done and its answer in (each answer takes 3 s); vendor detection is under way. A
    // read given up on while its login's answer is still on the way deletes that session instead
    await waitFor(() => slow.redfish!.openSessions(0) === 1 && tokenUsed(), 15_000, 'the login and a request with its token');
    abort.abort(new Error('the cycle stops'));
    expect((await reading).ok).toBe(false);
    await waitFor(() => sessions.get(key)?.token !== undefined, 10_000, 'the session handed back with the late answer');
    expect(slow.redfish!.openSessions(0)).toBe(1);
    slow.redfish!.dropSessions(0);
  });

  it('a worker that hangs: the read fails at the guard (twice its deadline and 5 s), and the worker is told to stop it', async () => {
    const log = captureLog('info');
    const workers = pool({ workers: 1, logger: log.logger, entry: new URL('../fixtures/workers/hanging-report-worker.mjs', import.meta.url) });
    const hung = await workers.read(leases()[0]!, { timeoutMs: 100 });
    expect(hung.ok ? undefined : (hung.error as BmcError).code).toBe('TIMEOUT');
    expect(hung.ok ? '' : (hung.error as Error).message).toMatch(/report worker 0 did not answer within 5200 ms/);
    await waitFor(() => log.find('told to stop a read').length === 1, 5000, 'the hung worker told to stop the read');
    // the same BMC is not read again beside the read still running there (it would log in beside it: one session lost on the BMC)
    const again = await workers.read(leases()[0]!, { timeoutMs: 100 });
    expect(again.ok ? undefined : (again.error as BmcError).code).toBe('BUSY');
    expect(again.ok ? '' : (again.error as Error).message).toMatch(/its last read, given up on, still runs in report worker 0/);
    // it does not answer a heap query either: its loop counts as stuck, and it is ended and started again
    await waitFor(() => workers.stats()[0]!.restarts === 1, 15_000, 'the stuck worker started again');
    expect(log.find('report worker does not answer: its event loop is stuck; ending it and starting it again')).toHaveLength(1);
    // the pool stops such a worker too (it never says it closed): within the shutdown deadline and the die wait
    await workers.close(100);
  });

  it("a read given up on in another worker than the BMC's own (its own was restarting): no second read beside it once its own is back", async () => {
    const workers = pool({ entry: SILENT_WORKER });
    const lease = nowhere(16).find((l) => workerOfBmc(l.ip, 2) === 0)!;
    await workers.measureHeap(); // both run: the exit below is seen at once
    await workers.kill(0);
    const first = new AbortController();
    const givenUp = workers.read(lease, { timeoutMs: 60_000, signal: first.signal });
    expect(workers.stats().map((s) => s.reads)).toEqual([0, 1]); // in worker 1, standing in
    first.abort(new Error('the cycle stops'));
    const aborted = await givenUp;
    expect(aborted.ok ? undefined : (aborted.error as BmcError).code).toBe('ABORTED');
    // worker 1 runs it still (it answers no read); the BMC's own worker is back
    await waitFor(() => workers.stats()[0]!.alive && workers.stats()[0]!.restarts === 1, 10_000, 'worker 0 started again');
    const second = new AbortController();
    const again = workers.read(lease, { timeoutMs: 60_000, signal: second.signal });
    second.abort(new Error('the test is done'));
    const refused = await again;
    expect(refused.ok ? undefined : (refused.error as BmcError).code).toBe('BUSY');
    expect(refused.ok ? '' : (refused.error as Error).message).toMatch(/its last read, given up on, still runs in report worker 1/);
    expect(workers.stats().map((s) => s.reads)).toEqual([0, 1]);
  });

  it('a session entry from a worker that is not one is not kept, with one line', async () => {
    const log = captureLog('warn');
    const sessions = createRedfishSessionMemory({ maxAgeMs: 3_600_000 });
    const lease = leases()[0]!;
    const key = redfishSessionKey(lease.ip, fleet.redfishPort, lease.mac);
    sessions.set(key, { user: fleet.user, token: 'kept-before', since: Date.now(), misses: 0 });
    const workers = pool({ workers: 1, logger: log.logger, redfishSessions: sessions, entry: new URL('../fixtures/workers/bad-session-report-worker.mjs', import.meta.url) });
    const attempt = await workers.read(lease, { timeoutMs: 20_000 });
    expect(attempt.ok).toBe(false);
    expect(sessions.get(key)?.token).toBe('kept-before');
    expect(log.find('report worker sent a Redfish session entry that is not one; ignored')).toEqual([expect.objectContaining({ worker: 0, bmc: key })]);
    await workers.close(100);
  });

  it('a worker that dies fails its reads in flight and is started again', async () => {
    const log = captureLog('warn');
    const workers = pool({ workers: 1, logger: log.logger });
    const inFlight = workers.read(deadLease(), { timeoutMs: 60_000 });
    await workers.kill(0);
    const lost = await inFlight;
    expect(lost.ok).toBe(false);
    expect(lost.ok ? undefined : (lost.error as BmcError).code).toBe('CLOSED');
    expect(lost.ok ? '' : (lost.error as Error).message).toMatch(/report worker 0 exited/);
    await waitFor(() => workers.stats()[0]!.restarts === 1, 10_000, 'the worker started again');
    const again = await workers.read(leases()[2]!, { timeoutMs: 20_000 });
    expect(again.ok).toBe(true);
    expect(lost.ok ? undefined : lost.lostWithWorker).toBe(true);
    expect(log.find('report worker exited; starting it again, its reads in flight are read again in this report where the cycle has time for them, else skipped')).toHaveLength(1);
  });

  it('a read while every worker is being started again waits for the worker and is read by it, within its deadline', async () => {
    const workers = pool({ workers: 1 });
    await workers.kill(0);
    // the worker's exit was seen; its restart waits for the backoff of a quick death (100 ms at least)
    expect(workers.stats()[0]!.alive).toBe(false);
    const attempt = await workers.read(leases()[1]!, { timeoutMs: 60_000 });
    expect(attempt.ok).toBe(true);
    expect(workers.stats()[0]!.restarts).toBe(1);
  });

  it('a read whose deadline passes while no worker runs fails CLOSED, not lost with its worker (no retry into the same restart); the pool closing ends the wait', async () => {
    const workers = pool({ workers: 1 });
    await workers.kill(0);
    const short = await workers.read(leases()[1]!, { timeoutMs: 1 });
    expect(short.ok ? undefined : (short.error as BmcError).code).toBe('CLOSED');
    expect(short.ok ? '' : (short.error as Error).message).toMatch(/no report worker is running \(restarting\) within the read's deadline/);
    expect(short.ok ? undefined : short.lostWithWorker).toBeUndefined();
    const aborted = new AbortController();
    const waiting = workers.read(leases()[2]!, { timeoutMs: 60_000, signal: aborted.signal });
    aborted.abort(new Error('the cycle ends'));
    const ended = await waiting;
    expect(ended.ok).toBe(false);
  });

  it('a BMC in flight at two worker exits in a row is set aside: not read again (nor retried) beside the others, which go on', async () => {
    const log = captureLog('warn');
    const workers = pool({ workers: 1, logger: log.logger });
    const suspect = deadLease();
    for (const exit of [1, 2]) {
      const inFlight = workers.read(suspect, { timeoutMs: 60_000 });
      await waitFor(() => workers.stats()[0]!.reads === exit, 10_000, 'the read under way');
      await workers.kill(0);
      const lost = await inFlight;
      expect(lost.ok ? undefined : lost.lostWithWorker).toBe(exit === 1 ? true : undefined);
      await waitFor(() => workers.stats()[0]!.restarts === exit, 10_000, 'the worker started again');
    }
    expect(log.find(/^a BMC was being read each time a report worker exited/)).toEqual([expect.objectContaining({ bmc: suspect.ip, exits: 2 })]);
    const setAside = await workers.read(suspect, { timeoutMs: 60_000 });
    expect(setAside.ok ? undefined : (setAside.error as BmcError).code).toBe('BUSY');
    expect(setAside.ok ? '' : (setAside.error as Error).message).toMatch(/was being read at each of the last 2 report worker exits; set aside until/);
    expect(workers.stats()[0]!.reads).toBe(2);
    expect((await workers.read(leases()[2]!, { timeoutMs: 20_000 })).ok).toBe(true);
  });

  it('BMCs in flight at a worker exit are read again one at a time: the one that ends the workers is set aside alone, not with the BMC read beside it', async () => {
    const log = captureLog('warn');
    const workers = pool({ workers: 1, logger: log.logger });
    const culprit = deadLease();
    const companion = { ...deadLease(), ip: deadLease().ip.replace(/\.250$/, '.249'), mac: 'aa:bb:cc:dd:ee:fe' } as Lease;
    // first exit: both in flight
    const first = [workers.read(culprit, { timeoutMs: 60_000 }), workers.read(companion, { timeoutMs: 60_000 })];
    await waitFor(() => workers.stats()[0]!.reads === 2, 10_000, 'both reads under way');
    await workers.kill(0);
    await Promise.all(first);
    await waitFor(() => workers.stats()[0]!.restarts === 1, 10_000, 'the worker started again');
    // read again together: the suspects go one at a time, so only the culprit is in flight at the second exit
    const again = workers.read(culprit, { timeoutMs: 60_000 });
    const companionAgain = workers.read(companion, { timeoutMs: 60_000 });
    await waitFor(() => workers.stats()[0]!.reads === 3, 10_000, "the culprit's read under way");
    expect(workers.stats()[0]!.reads).toBe(3); // the companion waits for its turn
    await workers.kill(0);
    await again;
    await waitFor(() => workers.stats()[0]!.restarts === 2, 10_000, 'the worker started again');
    expect(log.find(/^a BMC was being read each time a report worker exited/)).toEqual([expect.objectContaining({ bmc: culprit.ip, exits: 2 })]);
    // the companion's turn came with the culprit's exit: not set aside, it waits for the worker
    // started again and is read by it (a dead BMC's read, ended here by one more exit)
    await waitFor(() => workers.stats()[0]!.reads === 4, 10_000, "the companion's read under way on the worker started again");
    expect(log.find(/^a BMC was being read each time a report worker exited/)).toHaveLength(1);
    await workers.kill(0);
    const companionRead = await companionAgain;
    expect(companionRead.ok ? undefined : (companionRead.error as BmcError).code).toBe('CLOSED');
  });

  it('a suspect whose read fails without an exit (a dead BMC) is no suspect any longer: its next read does not wait for the turn; one line says suspects are read one at a time', async () => {
    const log = captureLog('warn');
    const workers = pool({ workers: 1, logger: log.logger });
    const dead = deadLease();
    const other = { ...deadLease(), ip: deadLease().ip.replace(/\.250$/, '.248'), mac: 'aa:bb:cc:dd:ee:fd' } as Lease;
    await makeSuspects(workers, [dead, other]);
    // read alone, it fails at its deadline: the worker answered, it did not exit under it
    const failed = await workers.read(dead, { timeoutMs: 1500 });
    expect(failed.ok ? undefined : (failed.error as BmcError).code).toBe('TIMEOUT');
    const reads = workers.stats()[0]!.reads;
    const abort = new AbortController();
    // the other suspect holds the turn; the dead BMC starts beside it
    const suspect = workers.read(other, { timeoutMs: 60_000, signal: abort.signal });
    const cleared = workers.read(dead, { timeoutMs: 60_000, signal: abort.signal });
    await waitFor(() => workers.stats()[0]!.reads === reads + 2, 5000, 'both reads under way');
    abort.abort(new Error('the test is done'));
    await Promise.all([suspect, cleared]);
    expect(log.find(/^BMCs that were being read when a report worker exited are read one at a time/)).toEqual([expect.objectContaining({ suspects: 2 })]);
  });

  it('the line that says suspects are read one at a time counts those of the exits since the last such line: suspects never read again (their leases went) are not counted again', async () => {
    const log = captureLog('warn');
    const workers = pool({ workers: 1, entry: SILENT_WORKER, logger: log.logger });
    const [a, b, c] = nowhere(3);
    const announced = () => log.find(/^BMCs that were being read when a report worker exited are read one at a time/).map((l) => l.suspects);
    await makeSuspects(workers, [a!, b!]);
    // a read asked with the cycle's abort already given: the line, and no wait for the turn
    const gaveUp = await workers.read(a!, { timeoutMs: 60_000, signal: AbortSignal.abort() });
    expect(gaveUp.ok ? undefined : (gaveUp.error as BmcError).code).toBe('ABORTED');
    expect(announced()).toEqual([2]);
    // neither is read again (their leases went): they stay suspects, but were told of already
    await makeSuspects(workers, [c!]);
    await workers.read(c!, { timeoutMs: 60_000, signal: AbortSignal.abort() });
    expect(announced()).toEqual([2, 1]);
  });

  it("a retry that waits for its turn as a suspect starts only if the cycle's budget still holds it when the turn comes", async () => {
    const workers = pool();
    // two BMCs read by the same worker, where nothing answers
    const [a, b] = Array.from({ length: 250 }, (_, i) => ({ ip: deadLease().ip.replace(/\.250$/, `.${i}`), mac: `aa:bb:cc:dd:ef:${i.toString(16).padStart(2, '0')}` }) as Lease).filter((l) => workerOfBmc(l.ip, 2) === 0);
    const deps: CycleDeps = {
      partitionId: 'p',
      connect: () => Promise.reject(new Error('reads go to the workers')),
      reader: workers,
      metalApi: createMetalApiClient({ baseUrl: api.url, hmacKey: 'k' }),
      concurrency: 4,
      fixedConcurrency: true,
      bmcTimeoutMs: 2000,
      // a retry fits as it is queued (twice its deadline), not after waiting for one more deadline
      cycleBudgetMs: 5500,
      logger: captureLog('warn').logger,
    };
    const reads = () => workers.stats().reduce((n, w) => n + w.reads, 0);
    const before = reads();
    // the workers run (a heap query answered): the worker exits as soon as it is told to
    await workers.measureHeap();
    const cycle = runReportCycle(deps, [a!, b!]);
    await waitFor(() => reads() === before + 2, 10_000, 'both reads under way');
    await workers.kill(0);
    // both lost with the worker, both retried: one at a time as suspects; the second's turn comes after the first's deadline
    const result = await cycle;
    expect(result).toMatchObject({ read: 0, failed: 2, retried: 1 });
    expect(reads()).toBe(before + 3);
  });

  it("the cycle's abort while suspects wait for their turn: every read ends at once, none waits for a turn that never comes", async () => {
    const workers = pool({ workers: 1, entry: SILENT_WORKER });
    const suspects = nowhere(3);
    await makeSuspects(workers, suspects);
    const abort = new AbortController();
    const reads = suspects.map((l) => workers.read(l, { timeoutMs: 60_000, signal: abort.signal }));
    await waitFor(() => workers.stats()[0]!.reads === 4, 10_000, "the first suspect's read under way");
    expect(workers.stats()[0]!.reads).toBe(4); // the other two wait for their turn
    abort.abort(new Error('the daemon stops'));
    const ended = await settledWithin(Promise.all(reads), 2000);
    if (ended === 'pending') throw new Error('a read waiting for its turn did not end at the abort');
    for (const r of ended) expect(r.ok ? undefined : (r.error as BmcError).code).toBe('ABORTED');
    expect(workers.stats()[0]!.reads).toBe(4);
  });

  it('close() while suspects wait for their turn: every read ends, and close() with them', async () => {
    const workers = pool({ workers: 1, entry: SILENT_WORKER });
    const suspects = nowhere(3);
    await makeSuspects(workers, suspects);
    const reads = suspects.map((l) => workers.read(l, { timeoutMs: 60_000 }));
    await waitFor(() => workers.stats()[0]!.reads === 4, 10_000, "the first suspect's read under way");
    const ended = await settledWithin(Promise.all([...reads, workers.close(100)]), 2000);
    if (ended === 'pending') throw new Error('a read waiting for its turn did not end at close()');
    for (const r of ended.slice(0, 3) as BmcReadAttempt[]) expect(r.ok).toBe(false);
    expect(workers.stats()[0]!.reads).toBe(4);
  });

  it('a worker that dies under a read: the cycle reads that BMC again on another worker, where it has time, and reports it', async () => {
    slow.setLatency({ redfish: { p50Ms: 300, p99Ms: 300 }, ipmi: { p50Ms: 2, p99Ms: 2 } });
    try {
      const workers = pool({ settings: { ...settings(), ipmiPort: slow.ipmiPort, redfishPort: slow.redfishPort, user: slow.user, password: slow.password } });
      const machine = slow.machines[0]!.state;
      const before = slow.requestLog(0).length;
      const deps: CycleDeps = {
        partitionId: 'p',
        connect: () => Promise.reject(new Error('reads go to the workers')),
        reader: workers,
        metalApi: createMetalApiClient({ baseUrl: api.url, hmacKey: 'k' }),
        concurrency: 4,
        bmcTimeoutMs: 30_000,
        cycleBudgetMs: 120_000,
        logger: captureLog('warn').logger,
      };
      const cycle = runReportCycle(deps, [{ ip: machine.address, mac: machine.mac } as Lease]);
      // the BMC has been asked something: its read is under way in one worker (answers take 300 ms each)
      await waitFor(() => slow.requestLog(0).length > before, 10_000, 'the read under way');
      const busy = workers.stats().find((w) => w.reads > 0)!;
      await workers.kill(busy.worker);
      const result = await cycle;
      expect(result).toMatchObject({ read: 1, failed: 0, reported: 1, retried: 1 });
      // read again by the other worker (its own was still starting again), not by the one that died
      expect(workers.stats().filter((w) => w.reads > 0).map((w) => w.worker)).toEqual([0, 1]);
    } finally {
      slow.setLatency({ redfish: { p50Ms: 3000, p99Ms: 3000 }, ipmi: { p50Ms: 2, p99Ms: 2 } });
      // the lost read's session died with its worker; it would count against the tests after this one
      slow.redfish!.dropSessions(0);
    }
  });
});
