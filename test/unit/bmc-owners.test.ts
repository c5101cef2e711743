/**
 * `metal-bmc bmc owners` (src/cli/bmc-owners.ts) against state folders the owners module
 * (src/report/owners.ts) wrote: list, reset by UUID and by MAC, the file's mode and format kept,
 * unknown owners an error that changes nothing; and a running daemon's owners file takes a reset
 * at its next cycle without bringing the forgotten owner back.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runOwners, type OwnersArgs } from '../../src/cli/bmc-owners.js';
import { UsageError } from '../../src/cli/args.js';
import type { Lease } from '../../src/leases/types.js';
import { createMetalApiClient } from '../../src/metalapi/client.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import type { BmcReport, Outband } from '../../src/outband/types.js';
import { runReportCycle, type CycleDeps } from '../../src/report/cycle.js';
import { createReportMetrics } from '../../src/report/metrics.js';
import { openUuidOwnersFile, UUID_OWNERS_FILE, type UuidOwners } from '../../src/report/owners.js';
import { captureLog } from '../helpers/log.js';

const U1 = '00000000-0000-4000-8000-000000000001';
const U2 = '00000000-0000-4000-8000-000000000002';
const U3 = '00000000-0000-4000-8000-000000000003';
const MAC_A = 'aa:00:00:00:00:01';
const MAC_B = 'aa:00:00:00:00:02';
const T0 = Date.UTC(2026, 11, 1, 8, 0, 0);

let dir: string;
let file: string;
let standin: MetalApiStandIn | undefined;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bmc-owners-'));
  file = join(dir, UUID_OWNERS_FILE);
});
afterEach(async () => {
  await standin?.close();
  standin = undefined;
  rmSync(dir, { recursive: true, force: true });
});

/** A state folder as the daemon leaves it: U1 and U2 with the BMC of MAC_A (U2 a minute later), U3 with one known by address only. */
async function daemonState(): Promise<void> {
  let t = T0;
  const owners = openUuidOwnersFile({ file, now: () => t });
  owners.set(U1, { ip: '10.0.0.1', mac: MAC_A });
  t += 60_000;
  owners.set(U2, { ip: '10.0.0.1', mac: MAC_A });
  owners.set(U3, { ip: '10.0.0.3' });
  await owners.close();
}

function output(): { write: (s: string) => boolean; text: () => string } {
  let text = '';
  return { write: (s) => ((text += s), true), text: () => text };
}

const args = (a: Partial<OwnersArgs>): OwnersArgs => ({ reset: false, list: false, json: false, stateDir: dir, ...a });
const ownersOnDisk = () => (JSON.parse(readFileSync(file, 'utf8')) as { owners: Record<string, unknown> }).owners;

describe('metal-bmc bmc owners', () => {
  it('--list prints every owner with its MAC, address and since when, as a table and as JSON', async () => {
    await daemonState();
    const table = output();
    expect(await runOwners(args({ list: true }), table)).toBe(0);
    expect(table.text().split('\n')).toEqual([
      expect.stringMatching(/^UUID +MAC +ADDRESS +SINCE$/),
      expect.stringMatching(new RegExp(`^${U1}  ${MAC_A}  10\\.0\\.0\\.1  2026-12-01T08:00:00\\.000Z$`)),
      expect.stringMatching(new RegExp(`^${U2}  ${MAC_A}  10\\.0\\.0\\.1  2026-12-01T08:01:00\\.000Z$`)),
      expect.stringMatching(new RegExp(`^${U3}  -  +10\\.0\\.0\\.3  2026-12-01T08:01:00\\.000Z$`)),
      '',
    ]);
    const json = output();
    expect(await runOwners(args({ list: true, json: true }), json)).toBe(0);
    expect(JSON.parse(json.text())).toEqual([
      { uuid: U1, mac: MAC_A, ip: '10.0.0.1', since: '2026-12-01T08:00:00.000Z' },
      { uuid: U2, mac: MAC_A, ip: '10.0.0.1', since: '2026-12-01T08:01:00.000Z' },
      { uuid: U3, mac: null, ip: '10.0.0.3', since: '2026-12-01T08:01:00.000Z' },
    ]);
  });

  it('--list of a folder without the file says so; an entry from before since was kept shows none', async () => {
    const empty = output();
    expect(await runOwners(args({ list: true }), empty)).toBe(0);
    expect(empty.text()).toBe(`no machine UUID owner recorded in ${file}\n`);
    writeFileSync(file, JSON.stringify({ version: 1, owners: { [U1]: { ip: '10.0.0.1', mac: MAC_A } } }));
    const json = output();
    await runOwners(args({ list: true, json: true }), json);
    expect(JSON.parse(json.text())).toEqual([{ uuid: U1, mac: MAC_A, ip: '10.0.0.1', since: null }]);
  });

  it('--uuid shows one owner; --uuid --reset forgets it, the rest of the file as the owners module writes it, mode 0600', async () => {
    await daemonState();
    const before = JSON.parse(readFileSync(file, 'utf8')) as { version: 1; owners: Record<string, unknown> };
    const shown = output();
    expect(await runOwners(args({ uuid: U2 }), shown)).toBe(0);
    expect(shown.text()).toContain(`${U2}  ${MAC_A}  10.0.0.1  2026-12-01T08:01:00.000Z`);

    const reset = output();
    expect(await runOwners(args({ uuid: U2.toUpperCase(), reset: true }), reset)).toBe(0);
    expect(reset.text()).toContain(`${U2}: owner ${MAC_A} 10.0.0.1 forgotten\n`);
    expect(reset.text()).toMatch(/next report cycle.*no restart needed/);
    const { [U2]: gone, ...rest } = before.owners;
    expect(gone).toBeDefined();
    // byte for byte what the module writes for the owners left: compact JSON, version 1, in their order
    expect(readFileSync(file, 'utf8')).toBe(JSON.stringify({ version: 1, owners: rest }));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(() => statSync(`${file}.lock`)).toThrow(); // the lock is released
    // the module reads it back, since included
    const reopened = openUuidOwnersFile({ file });
    expect(reopened.get(U2)).toBeUndefined();
    expect(reopened.entries()).toEqual([
      [U1, { ip: '10.0.0.1', mac: MAC_A, since: '2026-12-01T08:00:00.000Z' }],
      [U3, { ip: '10.0.0.3', since: '2026-12-01T08:01:00.000Z' }],
    ]);
  });

  it('--mac --reset forgets every UUID that BMC owns, and only those (JSON names them)', async () => {
    await daemonState();
    const reset = output();
    expect(await runOwners(args({ mac: 'AA-00-00-00-00-01', reset: true, json: true }), reset)).toBe(0);
    expect(JSON.parse(reset.text())).toEqual({
      forgotten: [
        { uuid: U1, mac: MAC_A, ip: '10.0.0.1', since: '2026-12-01T08:00:00.000Z' },
        { uuid: U2, mac: MAC_A, ip: '10.0.0.1', since: '2026-12-01T08:01:00.000Z' },
      ],
    });
    expect(Object.keys(ownersOnDisk())).toEqual([U3]);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('an unknown UUID or MAC is an error that names it and changes nothing; bad arguments are usage errors', async () => {
    await daemonState();
    const text = readFileSync(file, 'utf8');
    const mtime = statSync(file).mtimeMs;
    const unknown = '00000000-0000-4000-8000-0000000000ff';
    await expect(runOwners(args({ uuid: unknown, reset: true }), output())).rejects.toThrow(`no owner recorded for machine UUID ${unknown} in ${file}; nothing changed`);
    await expect(runOwners(args({ mac: MAC_B, reset: true }), output())).rejects.toThrow(`no owner recorded for a BMC with MAC ${MAC_B}`);
    await expect(runOwners(args({ uuid: unknown }), output())).rejects.toThrow(`no owner recorded for machine UUID ${unknown}`);
    expect(readFileSync(file, 'utf8')).toBe(text);
    expect(statSync(file).mtimeMs).toBe(mtime);

    for (const bad of [args({ reset: true }), args({ uuid: U1, mac: MAC_A, reset: true }), args({ mac: 'nonsense', reset: true }), args({ uuid: '', reset: true }), args({ list: true, uuid: U1 })]) {
      await expect(runOwners(bad, output())).rejects.toBeInstanceOf(UsageError);
    }
  });

  it('a damaged file is an error, not an empty list, and a reset does not write over it', async () => {
    writeFileSync(file, '{"version":1,"owners":{', { mode: 0o600 });
    await expect(runOwners(args({ list: true }), output())).rejects.toThrow(`${file} does not parse (`);
    await expect(runOwners(args({ uuid: U1, reset: true }), output())).rejects.toThrow(`${file} does not parse (`);
    expect(readFileSync(file, 'utf8')).toBe('{"version":1,"owners":{');
  });
});

describe('a running daemon and bmc owners --reset', () => {
  it('the daemon reads the reset at refresh, and its later write neither brings the owner back nor loses its own change', async () => {
    const daemon = openUuidOwnersFile({ file, writeDelayMs: 60_000 });
    daemon.set(U1, { ip: '10.0.0.1', mac: MAC_A });
    daemon.set(U3, { ip: '10.0.0.3' });
    await daemon.flush();
    daemon.set(U2, { ip: '10.0.0.2', mac: MAC_B }); // pending: the daemon has not written it yet
    expect(await runOwners(args({ uuid: U1, reset: true }), output())).toBe(0);
    expect(daemon.get(U1)).toEqual({ ip: '10.0.0.1', mac: MAC_A }); // until its cycle reads the file again
    daemon.refresh();
    expect(daemon.get(U1)).toBeUndefined();
    expect(daemon.get(U2)).toEqual({ ip: '10.0.0.2', mac: MAC_B });
    await daemon.close();
    expect(Object.keys(ownersOnDisk()).sort()).toEqual([U2, U3]);
  });

  it("the daemon's write under the lock does not undo a reset it has not read yet", async () => {
    const daemon = openUuidOwnersFile({ file, writeDelayMs: 60_000 });
    daemon.set(U1, { ip: '10.0.0.1', mac: MAC_A });
    await daemon.flush();
    daemon.set(U2, { ip: '10.0.0.2', mac: MAC_B });
    await runOwners(args({ uuid: U1, reset: true }), output());
    await daemon.flush(); // no refresh before: the write reads the file under the lock first
    expect(Object.keys(ownersOnDisk())).toEqual([U2]);
    expect(daemon.get(U1)).toBeUndefined();
    await daemon.close();
  });

  it('a BMC that moved to another NIC gets its machine back at the next cycle after the reset, without a restart', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const log = captureLog();
    // the BMC was at .1 with MAC_A; now it answers at .2 with MAC_B, the old lease has not expired, nobody answers at .1
    const leases: Lease[] = [{ ip: '10.0.0.1', mac: MAC_A, expires: 'never' } as Lease, { ip: '10.0.0.2', mac: MAC_B, expires: 'never' } as Lease];
    const seed = openUuidOwnersFile({ file, now: () => T0 });
    seed.set(U1, { ip: '10.0.0.1', mac: MAC_A });
    await seed.close();
    const owners = openUuidOwnersFile({ file, logger: log.logger, writeDelayMs: 60_000 });
    const report: BmcReport = { uuid: U1, bmcVersion: '1', biosVersion: '1', fru: {}, powerState: 'ON', indicatorLED: 'LED-OFF', powerSupplies: [], source: 'redfish', missing: [] };
    const deps = (o: UuidOwners): CycleDeps => ({
      partitionId: 'p',
      connect: async (ip: string): Promise<Outband> => {
        if (ip !== '10.0.0.2') throw new Error('no answer');
        return { address: ip, vendor: 't', info: async () => report, close: async () => undefined } as unknown as Outband;
      },
      metalApi: createMetalApiClient({ baseUrl: standin!.url, hmacKey: 'k', retries: 0 }),
      concurrency: 2,
      bmcTimeoutMs: 5000,
      logger: log.logger,
      metrics: createReportMetrics(new Registry()),
      owners: o,
    });
    await runReportCycle(deps(owners), leases);
    expect(standin.reports.at(-1)?.reports[U1]).toBeUndefined(); // a conflict: left out
    expect(log.find(/a second BMC reports a machine UUID that a known BMC with a lease holds/)).toHaveLength(1);

    await runOwners(args({ uuid: U1, reset: true }), output());
    await runReportCycle(deps(owners), leases);
    expect(standin.reports.at(-1)?.reports[U1]?.BMCIp).toBe('10.0.0.2');
    await owners.close();
    expect(ownersOnDisk()[U1]).toMatchObject({ ip: '10.0.0.2', mac: MAC_B });
  });
});
