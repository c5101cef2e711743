/**
 * The daemon's discovery and reporting end to end: a simulated fleet with its lease file, the
 * metal-api stand-in (HMAC checked, bodies validated against the real swagger), and faults. The
 * BMCs are read in two report worker threads (METAL_BMC_REPORT_WORKERS; the default on two cores
 * is the main thread, which the other daemon tests use).
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { startDaemon, type Daemon } from '../../src/daemon.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import { redfishSessionKey } from '../../src/outband/redfish-sessions.js';
import { renderFleetLeases, type Fleet } from '../../src/sim/fleet.js';
import { fleetDaemonEnv, startTestFleet } from '../helpers/fleet.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('openssl');

const HMAC_KEY = 'report-test-hmac-key';
let fleet: Fleet;
let api: MetalApiStandIn;
let daemon: Daemon;
let log: CapturedLog;
let dir: string;
let leaseFile: string;
/** the Redfish session tokens the daemon kept (a secret like the password) */
const tokens: string[] = [];

async function until<T>(check: () => T | undefined | false, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

const reportedUuids = () => new Set(api.reports.flatMap((r) => Object.keys(r.reports)));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'daemon-report-'));
  leaseFile = join(dir, 'dhcpd.leases');
  fleet = await startTestFleet({ count: 12 });
  // the DHCP server knows the first 10 BMCs at start
  writeFileSync(leaseFile, renderFleetLeases(fleet.machines.slice(0, 10)));
  api = await startMetalApiStandIn({ hmacKey: HMAC_KEY });
  log = captureLog();
  const config = loadConfig({
    ...fleetDaemonEnv(fleet, { dir, metalApiUrl: api.url, hmacKey: HMAC_KEY }),
    METAL_BMC_BMC_TIMEOUT: '3s',
    METAL_BMC_HTTP_ADDRESS: '127.0.0.1:0',
    METAL_BMC_REPORT_WORKERS: '2',
  });
  daemon = await startDaemon(config, log.logger);
});

afterAll(async () => {
  await daemon?.stop();
  await api?.close();
  await fleet?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('discovery and report', () => {
  it('reports every BMC of the lease file to metal-api with swagger-valid bodies', async () => {
    await until(() => reportedUuids().size >= 10);
    const expected = fleet.machines.slice(0, 10).map((m) => m.state.uuid);
    expect([...reportedUuids()].sort()).toEqual([...expected].sort());
    const first = api.reports[0]!;
    expect(first.partitionid).toBe('test-partition');
    const m0 = fleet.machines[0]!.state;
    // BMCVersion as the Go daemon sends it: from IPMI for Supermicro, none (metal-hammer's kept) from Redfish
    const bmcVersionOf = (m: typeof m0) => (m.variant === 'supermicro' ? m.bmcVersion : '');
    expect(first.reports[m0.uuid]).toMatchObject({ BMCIp: m0.address, BMCVersion: bmcVersionOf(m0), BIOSVersion: m0.biosVersion, PowerState: m0.power === 'on' ? 'ON' : 'OFF' });
    const lenovo = fleet.machines.slice(0, 10).find((m) => m.state.variant === 'lenovo')!.state;
    expect(first.reports[lenovo.uuid]).toMatchObject({ BMCVersion: '' });
    expect(first.reports[lenovo.uuid]!.FRU).not.toHaveProperty('board_part_number');
    // every request was accepted: HMAC and swagger validation passed
    expect(api.requests.every((r) => r.status < 300)).toBe(true);
    // and metal-api decoded every IndicatorLEDState (LED-ON/LED-OFF, never "")
    expect(api.problems).toEqual([]);
    expect(api.ledStates.get(m0.uuid)).toBe(m0.identify ? 'LED-ON' : 'LED-OFF');
  });

  it('a BMC whose lease appears is reported within seconds, without waiting for the interval', async () => {
    const before = api.reports.length;
    writeFileSync(`${leaseFile}.new`, renderFleetLeases(fleet.machines));
    // the DHCP server replaces the file by rename
    const { renameSync } = await import('node:fs');
    renameSync(`${leaseFile}.new`, leaseFile);
    await until(() => reportedUuids().has(fleet.machines[11]!.state.uuid));
    const quick = api.reports.slice(before);
    expect(Object.keys(quick.at(-1)!.reports).sort()).toEqual([fleet.machines[10]!.state.uuid, fleet.machines[11]!.state.uuid].sort());
  });

  it("a lease file cut short inside a declaration (a copy written over it in place): every BMC is kept, the one cut short is logged with its line once it stays so; written whole, the error's end is logged once", async () => {
    const good = readFileSync(leaseFile, 'utf8');
    writeFileSync(leaseFile, good.slice(0, Math.floor(good.length / 2)));
    try {
      const err = await until(() => log.find('cannot use the lease file; keeping the last good view')[0]);
      expect(String((err.err as { message?: unknown }).message)).toMatch(/line \d+: unterminated block of lease/);
      // the BMCs after the cut are kept (for a minute at most, if it stays so)
      expect(daemon.leases()).toHaveLength(12);
    } finally {
      writeFileSync(leaseFile, good);
    }
    // the error's end logged once, naming it
    const usable = await until(() => log.find('the lease file can be used again')[0]);
    expect(String(usable.ended)).toMatch(/line \d+: unterminated block of lease/);
    expect(log.find('the lease file can be used again')).toHaveLength(1);
    expect(daemon.leases()).toHaveLength(12);
    expect(log.find('BMC leases changed').filter((l) => (l.removed as string[]).length > 0)).toEqual([]);
  });

  it('a lease entry that cannot be read is left out, logged once with its line and counted; every other BMC stays', async () => {
    const good = readFileSync(leaseFile, 'utf8');
    const line = good.split('\n').length;
    appendFileSync(leaseFile, 'lease 10.255.0.1 {\n  ends 4 2026/02/30 00:00:00;\n  hardware ethernet 00:00:5e:00:53:01;\n}\n');
    const warned = await until(() => log.find('lease file entry cannot be read; left out, the rest of the file read')[0]);
    expect(warned).toMatchObject({ file: leaseFile, line: line + 1 }); // the line of the statement that cannot be read
    expect(await daemon.context.registry.getSingleMetricAsString('metal_bmc_lease_entries_skipped_total')).toMatch(/ 1$/m);
    // dhcpd renews a BMC after it: read (its lease ends later), the entry not logged again
    const m0 = fleet.machines[0]!.state.address;
    const endsOf = (): number => {
      const expires = daemon.leases().find((l) => l.ip === m0)?.expires;
      return expires instanceof Date ? expires.getTime() : 0;
    };
    const before = endsOf();
    await until(() => Date.now() >= before - 24 * 3600_000 + 1000); // a renewal a second later: its end a second later
    appendFileSync(leaseFile, renderFleetLeases([fleet.machines[0]!]).slice(renderFleetLeases([]).length));
    await until(() => endsOf() > before);
    expect(daemon.leases()).toHaveLength(12);
    expect(log.find('lease file entry cannot be read; left out, the rest of the file read')).toHaveLength(1);
    writeFileSync(leaseFile, good);
  });

  it('metal-api answering 500 twice: the report still lands', async () => {
    // no follow-up of machines an earlier cycle created still under way: the next report is this test's
    await daemon.reporter.idle();
    api.setFailures(2, 500);
    const before = api.reports.length;
    daemon.reporter.leasesChanged([daemon.leases()[0]!]);
    await until(() => api.reports.length > before);
    expect(api.requests.filter((r) => r.status === 500).length).toBeGreaterThanOrEqual(2);
    // each retry is told: a line and a count
    expect(log.find('metal-api request failed; sending it again after a pause').length).toBeGreaterThanOrEqual(2);
    expect(await daemon.context.registry.getSingleMetricAsString('metal_bmc_metal_api_retries_total')).toMatch(/code="HTTP"\} [2-9]/);
    // every attempt counted by its status, and the clock read from metal-api's Date header
    const requests = await daemon.context.registry.getSingleMetricAsString('metal_bmc_metal_api_requests_total');
    expect(requests).toMatch(/status="500"\} [2-9]/);
    expect(requests).toMatch(/status="200"\} [1-9]/);
    const offset = Number(/^metal_bmc_metal_api_clock_offset_seconds (\S+)$/m.exec(await daemon.context.registry.getSingleMetricAsString('metal_bmc_metal_api_clock_offset_seconds'))?.[1]);
    expect(Math.abs(offset)).toBeLessThan(5);
  });

  it('10 % of BMCs not answering are skipped and logged; the others are reported', async () => {
    // no follow-up of machines an earlier cycle created still under way: the next report is this test's
    await daemon.reporter.idle();
    fleet.setFaults({ share: 0.1 }, { noAnswer: true });
    const dead = fleet.select({ share: 0.1 }).map((m) => m.state.address);
    const before = api.reports.length;
    daemon.reporter.leasesChanged(daemon.leases());
    await until(() => api.reports.length > before, 20_000);
    fleet.clearFaults();
    const last = api.reports.at(-1)!;
    expect(Object.keys(last.reports)).toHaveLength(12 - dead.length);
    const skipped = log.find('cannot read BMC, skipped in this report').map((l) => l.bmc);
    for (const a of dead) expect(skipped).toContain(a);
  });

  it('exposes health, readiness and metrics', async () => {
    const base = `http://127.0.0.1:${daemon.opsPort}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/metal_bmc_report_cycles_total\{trigger="leases",outcome="ok"\} \d+/);
    expect(metrics).toMatch(/metal_bmc_bmc_read_failures_total\{code="TIMEOUT"\} [1-9]/);
    expect(metrics).toMatch(/metal_bmc_lease_file_errors_total [1-9]/);
    expect(metrics).toMatch(/metal_bmc_bmcs_discovered 12/);
    // no state file write failed here: the counter is there, without a file
    expect(metrics).toMatch(/^# TYPE metal_bmc_state_write_failures_total counter$/m);
    // where the adaptive limit settled: at least its floor (4), at most METAL_BMC_REPORT_CONCURRENCY's default (1024)
    const limit = Number(/^metal_bmc_report_concurrency_limit (\d+)$/m.exec(metrics)?.[1]);
    expect(limit).toBeGreaterThanOrEqual(4);
    expect(limit).toBeLessThanOrEqual(1024);
  });

  it('reads the BMCs in the report workers; their first contacts go to the trust file through the main thread', async () => {
    const firstUse = await until(() => {
      const lines = log.find('BMC certificate recorded on first use');
      return lines.length >= 10 && lines;
    });
    // each line came from a worker, over its port
    expect(firstUse.every((l) => l.module === 'report-workers' && typeof l.worker === 'number' && typeof l.threadId === 'number')).toBe(true);
    const file = JSON.parse(readFileSync(join(dir, 'state', 'bmc-trust.json'), 'utf8')) as { bmcs: Record<string, { redfishSha256?: string; proof?: string }> };
    for (const m of fleet.machines.slice(0, 10)) expect(file.bmcs[`mac:${m.state.mac.toLowerCase()}`], m.state.address).toMatchObject({ redfishSha256: expect.stringMatching(/^[0-9a-f]{64}$/), proof: 'ipmi' });
  });

  it('keeps each BMC\'s Redfish session open for its next read, in the state folder, tied to its pinned certificate', async () => {
    const file = join(dir, 'state', 'redfish-sessions.json');
    type Entry = { token?: string; pin?: string };
    const sessions = await until(() => {
      try {
        const parsed = JSON.parse(readFileSync(file, 'utf8')) as { sessions: Record<string, Entry> };
        return Object.keys(parsed.sessions).length >= 10 && parsed.sessions;
      } catch {
        return undefined;
      }
    });
    const trust = JSON.parse(readFileSync(join(dir, 'state', 'bmc-trust.json'), 'utf8')) as { bmcs: Record<string, { redfishSha256?: string }> };
    fleet.machines.slice(0, 10).forEach((m, i) => {
      const entry = sessions[redfishSessionKey(m.state.address, fleet.redfishPort, m.state.mac)];
      expect(entry?.token, m.state.address).toMatch(/^[0-9a-f]{32}$/);
      expect(entry?.pin).toBe(trust.bmcs[`mac:${m.state.mac.toLowerCase()}`]?.redfishSha256);
      // left open on the BMC, not logged out
      expect(fleet.redfish!.openSessions(i)).toBeGreaterThanOrEqual(1);
      tokens.push(entry!.token!);
    });
    const metrics = await (await fetch(`http://127.0.0.1:${daemon.opsPort}/metrics`)).text();
    expect(Number(/^metal_bmc_report_redfish_sessions_kept (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(10);
  });

  it('never logs a secret', () => {
    for (const token of tokens) expect(log.text()).not.toContain(token);
    expect(log.text()).not.toContain(HMAC_KEY);
    expect(log.text()).not.toContain(fleet.password);
    expect(log.text()).toContain('[redacted]');
  });
});
