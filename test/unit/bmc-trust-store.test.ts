/** The BMC trust file: bounded, written atomically and once per burst of changes, re-read when another process changed it, never fatal when damaged. */
import fc from 'fast-check';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { BmcError, isBmcError } from '../../src/errors.js';
import { createBmcTrust, firstContactBar, openTrustStore, trustKey, usesTrustOnFirstUse } from '../../src/outband/trust.js';
import { createTrustMetrics, registerStateFileMetrics } from '../../src/report/metrics.js';
import { runTrust } from '../../src/cli/bmc-trust.js';
import { loadConfig } from '../../src/config/config.js';
import { runCli } from '../helpers/cli.js';
import { captureLog } from '../helpers/log.js';
import { makeUnreadable } from '../helpers/unreadable-file.js';

const dirs: string[] = [];
const fileIn = () => {
  const dir = mkdtempSync(join(tmpdir(), 'trust-store-'));
  dirs.push(dir);
  return join(dir, 'sub', 'bmc-trust.json');
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const fp = (c: string) => c.repeat(64);

describe('BMC trust store', () => {
  it('applies to self-signed certificates only: METAL_BMC_REDFISH_CA_FILE or REDFISH_INSECURE=false verify instead', () => {
    const base = { METAL_BMC_PARTITION_ID: 'p', METAL_BMC_METAL_API_URL: 'https://metal-api', METAL_BMC_METAL_API_HMAC_KEY: 'k' };
    const caFile = join(mkdtempSync(join(tmpdir(), 'trust-ca-')), 'ca.pem');
    dirs.push(dirname(caFile));
    writeFileSync(caFile, '-----BEGIN CERTIFICATE-----\n');
    expect(usesTrustOnFirstUse(loadConfig(base).redfish)).toBe(true);
    expect(usesTrustOnFirstUse(loadConfig({ ...base, METAL_BMC_REDFISH_CA_FILE: caFile }).redfish)).toBe(false);
    expect(usesTrustOnFirstUse(loadConfig({ ...base, METAL_BMC_REDFISH_INSECURE: 'false' }).redfish)).toBe(false);
  });

  it('keys by MAC (lower case) or by IP', () => {
    expect(trustKey({ ip: '10.0.0.1', mac: 'AA:BB:CC:00:00:01' })).toBe('mac:aa:bb:cc:00:00:01');
    expect(trustKey({ ip: '10.0.0.1' })).toBe('ip:10.0.0.1');
  });

  it('writes a 0600 file, keeps at most maxEntries (least recently seen go first)', async () => {
    const file = fileIn();
    let t = 0;
    const store = openTrustStore({ file, maxEntries: 3, now: () => new Date(Date.UTC(2026, 0, 1, 0, 0, t++)) });
    for (const k of ['a', 'b', 'c', 'd']) store.update(`ip:${k}`, { redfishSha256: fp('a') });
    expect(store.list().map(([k]) => k).sort()).toEqual(['ip:b', 'ip:c', 'ip:d']);
    await store.close();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(Object.keys((JSON.parse(readFileSync(file, 'utf8')) as { bmcs: object }).bmcs)).toHaveLength(3);
  });

  it('sees a reset made by another process (the CLI) at the next lookup', async () => {
    const file = fileIn();
    const daemon = openTrustStore({ file });
    daemon.update('mac:aa', { redfishSha256: fp('b') });
    await daemon.flush();
    const cli = openTrustStore({ file });
    expect(cli.reset('mac:aa')).toBe(true);
    await cli.close();
    // the clock of the file system may not tick between two writes in one millisecond
    utimesSync(file, new Date(), new Date(Date.now() + 5000));
    expect(daemon.get('mac:aa')).toBeUndefined();
  });

  it('writes a burst of changes once, after the burst, without blocking the caller; close writes what is pending', async () => {
    const file = fileIn();
    const store = openTrustStore({ file, writeDelayMs: 60_000 });
    for (let i = 0; i < 100; i++) store.update(`ip:10.0.0.${i}`, { redfishSha256: fp('d'), ip: `10.0.0.${i}` });
    // nothing on disk yet: 100 first contacts are one write, not 100
    expect(() => statSync(file)).toThrow();
    expect(store.get('ip:10.0.0.7')?.ip).toBe('10.0.0.7');
    await store.close();
    const written = (JSON.parse(readFileSync(file, 'utf8')) as { bmcs: Record<string, { ip: string }> }).bmcs;
    expect(Object.keys(written)).toHaveLength(100);
    expect(written['ip:10.0.0.99']?.ip).toBe('10.0.0.99');
  });

  it('a change not yet written survives a re-read of a file another process changed; the other process\'s change is seen too', async () => {
    const file = fileIn();
    const daemon = openTrustStore({ file, writeDelayMs: 60_000 });
    daemon.update('mac:aa', { redfishSha256: fp('a') });
    await daemon.flush();
    daemon.update('mac:bb', { redfishSha256: fp('b') }); // pending
    const cli = openTrustStore({ file });
    expect(cli.reset('mac:aa')).toBe(true);
    await cli.close();
    utimesSync(file, new Date(), new Date(Date.now() + 5000));
    expect(daemon.get('mac:aa')).toBeUndefined();
    expect(daemon.get('mac:bb')?.redfishSha256).toBe(fp('b'));
    await daemon.close();
    const written = (JSON.parse(readFileSync(file, 'utf8')) as { bmcs: Record<string, unknown> }).bmcs;
    expect(Object.keys(written)).toEqual(['mac:bb']);
  });

  it("the daemon's write does not undo a reset the CLI wrote after the daemon last read the file", async () => {
    const file = fileIn();
    const daemon = openTrustStore({ file, writeDelayMs: 60_000 });
    daemon.update('mac:aa', { redfishSha256: fp('a') });
    await daemon.flush();
    daemon.update('mac:bb', { redfishSha256: fp('b') }); // pending; the daemon reads the file no more before its write
    const cli = openTrustStore({ file });
    expect(cli.reset('mac:aa')).toBe(true);
    await cli.close();
    await daemon.flush();
    expect(Object.keys((JSON.parse(readFileSync(file, 'utf8')) as { bmcs: object }).bmcs)).toEqual(['mac:bb']);
    expect(daemon.get('mac:aa')).toBeUndefined();
  });

  it("bmc trust --reset is not undone by the daemon's unwritten change of the same BMC's address; a first contact after the reset is written", async () => {
    const file = fileIn();
    const daemon = openTrustStore({ file, writeDelayMs: 60_000 });
    daemon.update('mac:aa:bb:cc:00:00:01', { redfishSha256: fp('a'), ip: '10.0.0.5', proof: 'ipmi' });
    daemon.update('mac:aa:bb:cc:00:00:02', { redfishSha256: fp('b'), ip: '10.0.0.7', proof: 'ipmi' });
    await daemon.flush();
    // both BMCs are met at another address: noted, written with the next burst
    daemon.update('mac:aa:bb:cc:00:00:01', { ip: '10.0.0.6' });
    daemon.update('mac:aa:bb:cc:00:00:02', { ip: '10.0.0.8' });
    const reset = await runCli(['bmc', 'trust', '--mac', 'AA:BB:CC:00:00:01', '--reset', '--state-dir', dirname(file)]);
    expect(reset.stdout).toContain('record removed');
    await daemon.flush();
    const written = (JSON.parse(readFileSync(file, 'utf8')) as { bmcs: Record<string, { ip: string; redfishSha256: string }> }).bmcs;
    expect(Object.keys(written)).toEqual(['mac:aa:bb:cc:00:00:02']);
    expect(written['mac:aa:bb:cc:00:00:02']).toMatchObject({ ip: '10.0.0.8', redfishSha256: fp('b') });
    expect(daemon.get('mac:aa:bb:cc:00:00:01')).toBeUndefined();
    // the next contact is a first contact: its record is written
    daemon.update('mac:aa:bb:cc:00:00:01', { redfishSha256: fp('c'), ip: '10.0.0.6', proof: 'ipmi' });
    await daemon.close();
    expect((JSON.parse(readFileSync(file, 'utf8')) as { bmcs: Record<string, { redfishSha256: string }> }).bmcs['mac:aa:bb:cc:00:00:01']?.redfishSha256).toBe(fp('c'));
  }, 30_000);

  it('bmc trust --reset while a pinned login runs leaves no record behind: an address alone never makes one, in memory or in the file', async () => {
    const file = fileIn();
    const key = 'mac:aa:bb:cc:00:00:03';
    const daemon = openTrustStore({ file, writeDelayMs: 0 });
    daemon.update(key, { redfishSha256: fp('a'), ip: '10.0.0.5', proof: 'ipmi' });
    await daemon.flush();
    const gate = createBmcTrust({ store: daemon }).forBmc({ ip: '10.0.0.9', mac: 'aa:bb:cc:00:00:03' });
    await gate.openRedfish({ host: '10.0.0.9', port: 443, timeoutMs: 1000, proofTimeoutMs: 1000 }, async () => {
      // the operator's reset lands while the login to the pinned certificate is under way
      const cli = openTrustStore({ file });
      expect(cli.reset(key)).toBe(true);
      await cli.close();
    });
    await daemon.flush();
    expect(daemon.get(key)).toBeUndefined();
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ version: 1, bmcs: {} });
    // the same through the store alone (a report worker's address change comes this way)
    expect(daemon.update(key, { ip: '10.0.0.9' })).toBeUndefined();
    expect(daemon.get(key)).toBeUndefined();
    await daemon.close();
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ version: 1, bmcs: {} });
  });

  it("the CLI's reset does not drop a record the daemon wrote after the CLI read the file", async () => {
    const file = fileIn();
    const daemon = openTrustStore({ file, writeDelayMs: 60_000 });
    daemon.update('mac:aa', { redfishSha256: fp('a') });
    await daemon.flush();
    const cli = openTrustStore({ file, writeDelayMs: 60_000 });
    expect(cli.reset('mac:aa')).toBe(true); // read now, written at close
    daemon.update('mac:cc', { redfishSha256: fp('c') }); // a first contact meanwhile
    await daemon.flush();
    await cli.close();
    expect(Object.keys((JSON.parse(readFileSync(file, 'utf8')) as { bmcs: object }).bmcs)).toEqual(['mac:cc']);
  });

  it('a write waits for the lock another process holds; past its timeout the change stays pending, and the CLI says it was not written', async () => {
    const file = fileIn();
    const daemon = openTrustStore({ file, writeDelayMs: 60_000 });
    daemon.update('mac:aa', { redfishSha256: fp('a') });
    daemon.update('mac:aa:bb:cc:00:00:01', { redfishSha256: fp('b') });
    await daemon.flush();
    writeFileSync(`${file}.lock`, `${process.ppid} ${Date.now()} 0123456789abcdef\n`); // held by a live process (the runner)
    const log = captureLog();
    const cli = openTrustStore({ file, logger: log.logger, lockTimeoutMs: 100 });
    cli.reset('mac:aa');
    await cli.close();
    expect(cli.unwritten()).toEqual({ changes: 1, error: expect.stringMatching(/bmc-trust\.json\.lock is held by process \d+/) });
    expect(Object.keys((JSON.parse(readFileSync(file, 'utf8')) as { bmcs: object }).bmcs)).toEqual(['mac:aa', 'mac:aa:bb:cc:00:00:01']);
    // the CLI waits its 5 s for the lock
    const err = await runTrust({ mac: 'AA:BB:CC:00:00:01', reset: true, list: false, stateDir: dirname(file) }, { write: () => true }).then(() => undefined, (e: unknown) => e);
    expect(String(err)).toMatch(/the change was not written to .*bmc-trust\.json: .*is held by process/);
    rmSync(`${file}.lock`);
    cli.update('mac:dd', { redfishSha256: fp('d') });
    await cli.flush();
    expect(cli.unwritten()).toBeUndefined();
    expect(Object.keys((JSON.parse(readFileSync(file, 'utf8')) as { bmcs: object }).bmcs)).toEqual(['mac:aa:bb:cc:00:00:01', 'mac:dd']);
  }, 15_000);

  it('a write that fails is logged, keeps the records in memory and is done again with the next change', async () => {
    const log = captureLog();
    const file = fileIn();
    mkdirSync(dirname(dirname(file)), { recursive: true });
    writeFileSync(dirname(file), ''); // a file where the state folder should be: no write gets through
    const store = openTrustStore({ file, logger: log.logger, writeDelayMs: 60_000 });
    store.update('ip:x', { redfishSha256: fp('e') });
    await store.flush();
    expect(log.find('cannot write the BMC trust file; records are kept in memory')).toHaveLength(1);
    expect(store.get('ip:x')?.redfishSha256).toBe(fp('e'));
    rmSync(dirname(file));
    store.update('ip:y', { redfishSha256: fp('f') });
    await store.close();
    expect(Object.keys((JSON.parse(readFileSync(file, 'utf8')) as { bmcs: object }).bmcs).sort()).toEqual(['ip:x', 'ip:y']);
  });

  it('an unreadable file (a power loss, a bad edit) is kept aside, not written over: its records can be put back', async () => {
    const log = captureLog();
    const file = fileIn();
    mkdirSync(dirname(file), { recursive: true });
    const before = JSON.stringify({ version: 1, bmcs: { 'ip:old': { redfishSha256: fp('a'), firstSeen: '2026-01-01T00:00:00Z', lastSeen: '2026-01-01T00:00:00Z' } } });
    writeFileSync(file, before.slice(0, -7)); // cut short
    const store = openTrustStore({ file, logger: log.logger });
    expect(store.get('ip:old')).toBeUndefined();
    store.update('ip:new', { redfishSha256: fp('b') });
    await store.close();
    const [line] = log.find(/^cannot read the BMC trust file; it is kept aside/);
    expect(line).toMatchObject({ level: 50, file, keptAs: expect.stringMatching(/\.unreadable-\d+$/) });
    expect(readFileSync(line!.keptAs as string, 'utf8')).toBe(before.slice(0, -7));
    expect(Object.keys((JSON.parse(readFileSync(file, 'utf8')) as { bmcs: object }).bmcs)).toEqual(['ip:new']);
  });

  it('a file kept aside shows in the state file gauge until the operator put it back or removed it', async () => {
    const file = fileIn();
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, '{"version": 1, "bmcs": {'); // a bad edit while the daemon was stopped
    const store = openTrustStore({ file, logger: captureLog().logger });
    const registry = new Registry();
    registerStateFileMetrics(registry, { 'bmc-trust.json': store });
    const keptAside = async () => /metal_bmc_state_file_problem\{file="bmc-trust\.json",problem="kept-aside"\} (\d)/.exec(await registry.metrics())?.[1];
    // read at the start: kept aside at once
    expect(await keptAside()).toBe('1');
    expect(store.get('ip:x')).toBeUndefined();
    const copy = store.keptAside();
    expect(copy).toMatch(/\.unreadable-\d+$/);
    rmSync(copy!);
    expect(await keptAside()).toBe('0');
    expect(store.keptAside()).toBeUndefined();
    await store.close();
  });

  it('a file the daemon cannot read (root\'s after `sudo bmc trust --reset`) is not written over: changes wait in memory, one line and the gauge tell it, and once readable the reset holds and the waiting change is written', async () => {
    const log = captureLog();
    const file = fileIn();
    const registry = new Registry();
    const daemon = openTrustStore({ file, logger: log.logger, writeDelayMs: 0 });
    registerStateFileMetrics(registry, { 'bmc-trust.json': daemon });
    const gauge = async () => (await registry.getSingleMetricAsString('metal_bmc_state_file_problem')).split('\n').filter((l) => !l.startsWith('#'));
    daemon.update('mac:aa', { redfishSha256: fp('a') });
    daemon.update('mac:bb', { redfishSha256: fp('b') });
    await daemon.flush();
    // the operator's reset, as root: the file it writes is one the daemon's user cannot read
    const cli = openTrustStore({ file });
    expect(cli.reset('mac:aa')).toBe(true);
    await cli.close();
    const afterReset = readFileSync(file, 'utf8');
    await makeUnreadable(file);

    expect(daemon.get('mac:bb')?.redfishSha256).toBe(fp('b')); // memory, as before
    daemon.update('mac:cc', { redfishSha256: fp('c') });
    await daemon.flush();
    expect(daemon.get('mac:cc')?.redfishSha256).toBe(fp('c'));
    expect(statSync(file).isSocket()).toBe(true); // not renamed over
    expect(daemon.unwritten()).toEqual({ changes: 1, error: `cannot read ${file} (ENXIO); not written over` });
    expect(daemon.unreadable()?.code).toBe('ENXIO');
    expect(await gauge()).toEqual(['metal_bmc_state_file_problem{file="bmc-trust.json",problem="unreadable"} 1', 'metal_bmc_state_file_problem{file="bmc-trust.json",problem="unwritten"} 1', 'metal_bmc_state_file_problem{file="bmc-trust.json",problem="kept-aside"} 0']);
    const lines = log.find(/^cannot read the BMC trust file \(ENXIO\); it is not written over until it can be read/);
    expect(lines).toHaveLength(1); // once for the episode, however often it is read
    expect(lines[0]).toMatchObject({ level: 50, file, code: 'ENXIO' });
    expect(log.find('cannot write the BMC trust file; records are kept in memory')).toHaveLength(0);

    // readable again (chown, or the file put back): the reset is in force, and what waited is written
    rmSync(file);
    writeFileSync(file, afterReset);
    expect(daemon.get('mac:aa')).toBeUndefined();
    expect(log.find('the BMC trust file can be read again')).toMatchObject([{ level: 30, file, ended: 'ENXIO' }]);
    await daemon.flush();
    expect(Object.keys((JSON.parse(readFileSync(file, 'utf8')) as { bmcs: object }).bmcs).sort()).toEqual(['mac:bb', 'mac:cc']);
    expect(daemon.unwritten()).toBeUndefined();
    expect(await gauge()).toEqual(['metal_bmc_state_file_problem{file="bmc-trust.json",problem="unreadable"} 0', 'metal_bmc_state_file_problem{file="bmc-trust.json",problem="unwritten"} 0', 'metal_bmc_state_file_problem{file="bmc-trust.json",problem="kept-aside"} 0']);
    await daemon.close();
  });

  it('a start on a file it cannot read keeps every pin in it: the first write does not replace them with the one first contact since; bmc trust says it cannot read it', async () => {
    const file = fileIn();
    const before = openTrustStore({ file });
    before.update('mac:aa', { redfishSha256: fp('a') });
    await before.close();
    const pins = readFileSync(file, 'utf8');
    await makeUnreadable(file);
    const restarted = openTrustStore({ file, writeDelayMs: 0 });
    restarted.update('mac:new', { redfishSha256: fp('d') });
    await restarted.close();
    expect(statSync(file).isSocket()).toBe(true);
    const err = await runTrust({ list: true, reset: false, stateDir: dirname(file) }, { write: () => true }).then(() => undefined, (e: unknown) => e);
    expect((err as Error).message).toBe(`cannot read ${file} (ENXIO): ENXIO: no such device or address, open '${file}'; nothing changed`);
    rmSync(file);
    writeFileSync(file, pins);
    expect(openTrustStore({ file }).get('mac:aa')?.redfishSha256).toBe(fp('a'));
  });

  it('while a trust file that did not parse is kept aside, a first contact is refused too; put back fixed, its pin is used; the copy removed, first contacts go on', async () => {
    const file = fileIn();
    const before = openTrustStore({ file });
    before.update('mac:aa:bb:cc:00:00:07', { redfishSha256: fp('a'), proof: 'ipmi' });
    await before.close();
    const pins = readFileSync(file, 'utf8');
    writeFileSync(file, pins.slice(0, -3)); // a bad edit while the daemon was stopped
    const restarted = openTrustStore({ file, writeDelayMs: 0 });
    const log = captureLog();
    const registry = new Registry();
    const trust = createBmcTrust({ store: restarted, logger: log.logger, metrics: createTrustMetrics(registry) });
    const copy = restarted.keptAside()!;
    expect(copy).toMatch(/\.unreadable-\d+$/);
    const opened: unknown[] = [];
    const proved: unknown[] = [];
    const ctx = { host: '10.0.0.7', port: 443, timeoutMs: 1000, proofTimeoutMs: 1000, prove: async () => void proved.push(1) };
    const gate = trust.forBmc({ ip: '10.0.0.7', mac: 'aa:bb:cc:00:00:07' });
    const err = await gate.openRedfish(ctx, async (tls) => void opened.push(tls)).then(() => undefined, (e: unknown) => e);
    expect(isBmcError(err, 'UNTRUSTED')).toBe(true);
    expect((err as Error).message).toBe(`BMC 10.0.0.7 (mac:aa:bb:cc:00:00:07): no record in memory and the trust file ${file} did not parse; it is kept aside as ${copy}: a first contact is refused, no credentials sent, until the copy is put back fixed or removed (which accepts first contacts again)`);
    expect(opened).toEqual([]);
    expect(proved).toEqual([]);
    expect(await registry.getSingleMetricAsString('metal_bmc_trust_refused_total')).toMatch(/check="unreadable-file"} 1$/m);
    expect(log.find(/^first contact with a BMC while the trust file that did not parse is kept aside/)).toMatchObject([{ level: 50, bmc: '10.0.0.7', code: 'KEPT_ASIDE', keptAs: copy }]);

    // put back fixed: the file's pin is used, not probed as a first contact
    rmSync(copy);
    writeFileSync(file, pins);
    await gate.openRedfish(ctx, async (tls) => void opened.push(tls.pinnedSha256));
    expect(opened).toEqual([fp('a')]);
    expect(firstContactBar(restarted)).toBeUndefined();
    await restarted.close();

    // a copy removed without putting it back: the loss is accepted, first contacts go on
    writeFileSync(file, '{');
    const again = openTrustStore({ file, writeDelayMs: 0 });
    expect(firstContactBar(again)).toMatchObject({ code: 'KEPT_ASIDE' });
    const keptBefore = again.keptAside()!;
    await again.close();
    // a restart (a deploy, NATS lost) before the operator acted: the copy on disk still bars first contacts
    const afterRestart = openTrustStore({ file, writeDelayMs: 0 });
    expect(afterRestart.keptAside()).toBe(keptBefore);
    expect(firstContactBar(afterRestart)).toMatchObject({ code: 'KEPT_ASIDE', error: keptBefore });
    rmSync(keptBefore);
    expect(firstContactBar(afterRestart)).toBeUndefined();
    await afterRestart.close();
  });

  it('while the file cannot be read, a first contact is refused before anything is sent (the file may pin the BMC), once logged per BMC and counted; once readable, the pin in the file is used', async () => {
    const file = fileIn();
    const before = openTrustStore({ file });
    before.update('mac:aa:bb:cc:00:00:07', { redfishSha256: fp('a'), proof: 'ipmi' });
    before.update('mac:aa:bb:cc:00:00:08', { redfishSha256: fp('b'), proof: 'ipmi' });
    await before.close();
    const pins = readFileSync(file, 'utf8');
    // read before the file became unreadable: kept in memory, so that BMC keeps working
    const store = openTrustStore({ file, writeDelayMs: 0 });
    expect(store.get('mac:aa:bb:cc:00:00:08')?.redfishSha256).toBe(fp('b'));
    await makeUnreadable(file);
    const restarted = openTrustStore({ file, writeDelayMs: 0 });
    const log = captureLog();
    const registry = new Registry();
    const trust = createBmcTrust({ store: restarted, logger: log.logger, metrics: createTrustMetrics(registry) });
    const opened: unknown[] = [];
    const proved: unknown[] = [];
    const ctx = { host: '10.0.0.7', port: 443, timeoutMs: 1000, proofTimeoutMs: 1000, prove: async () => void proved.push(1) };
    const gate = trust.forBmc({ ip: '10.0.0.7', mac: 'aa:bb:cc:00:00:07' });
    for (let i = 0; i < 2; i++) {
      const err = await gate.openRedfish(ctx, async (tls) => void opened.push(tls)).then(() => undefined, (e: unknown) => e);
      expect(isBmcError(err, 'UNTRUSTED')).toBe(true);
      expect((err as Error).message).toBe(`BMC 10.0.0.7 (mac:aa:bb:cc:00:00:07): no record in memory and the trust file ${file} cannot be read (ENXIO); a first contact is refused, no credentials sent, until it can be read`);
    }
    await expect(gate.sshHostKeyCheck({ host: '10.0.0.7', proofTimeoutMs: 1000, prove: ctx.prove })).rejects.toThrow(/cannot be read \(ENXIO\)/);
    expect(opened).toEqual([]);
    expect(proved).toEqual([]);
    expect(await registry.getSingleMetricAsString('metal_bmc_trust_refused_total')).toMatch(/check="unreadable-file"} 3$/m);
    expect(log.find(/^first contact with a BMC while the trust file cannot be read/)).toMatchObject([{ level: 50, bmc: '10.0.0.7', file, code: 'ENXIO' }]);
    expect(restarted.get('mac:aa:bb:cc:00:00:07')).toBeUndefined();
    // the store that read the file before keeps its BMC working
    const known: Array<string | undefined> = [];
    await createBmcTrust({ store }).forBmc({ ip: '10.0.0.8', mac: 'aa:bb:cc:00:00:08' }).openRedfish({ ...ctx, host: '10.0.0.8' }, async (tls) => void known.push(tls.pinnedSha256));
    expect(known).toEqual([fp('b')]);

    // readable again: the file's pin is used, not probed as a first contact
    rmSync(file);
    writeFileSync(file, pins);
    await gate.openRedfish(ctx, async (tls) => void opened.push(tls.pinnedSha256));
    expect(opened).toEqual([fp('a')]);
    expect(proved).toEqual([]);
    await restarted.close();
    await store.close();
  });

  it('a first contact recorded while the file could not be read does not replace the pin the file holds once it can be read again', async () => {
    const file = fileIn();
    const before = openTrustStore({ file });
    before.update('mac:aa', { redfishSha256: fp('a'), proof: 'ipmi', ip: '10.0.0.1' });
    await before.close();
    const pins = readFileSync(file, 'utf8');
    await makeUnreadable(file);
    const store = openTrustStore({ file, writeDelayMs: 0 });
    store.update('mac:aa', { redfishSha256: fp('b'), proof: 'none', ip: '10.0.0.2' });
    await store.flush();
    rmSync(file);
    writeFileSync(file, pins);
    expect(store.get('mac:aa')).toMatchObject({ redfishSha256: fp('a'), proof: 'ipmi', ip: '10.0.0.2' });
    await store.close();
    expect((JSON.parse(readFileSync(file, 'utf8')) as { bmcs: Record<string, object> }).bmcs['mac:aa']).toMatchObject({ redfishSha256: fp('a'), proof: 'ipmi', ip: '10.0.0.2' });
  });

  it("a hand-pinned fingerprint in openssl's form (AB:CD:...) is taken and pinned as 64 lower-case hex digits", async () => {
    const file = fileIn();
    mkdirSync(dirname(file), { recursive: true });
    const colon = Array.from({ length: 32 }, () => 'AB').join(':');
    writeFileSync(file, JSON.stringify({ version: 1, bmcs: { 'mac:aa:bb:cc:00:00:01': { redfishSha256: colon, firstSeen: '2026-01-01T00:00:00Z', lastSeen: '2026-01-01T00:00:00Z' } } }));
    const log = captureLog();
    const store = openTrustStore({ file, logger: log.logger });
    expect(store.get('mac:aa:bb:cc:00:00:01')?.redfishSha256).toBe('ab'.repeat(32));
    expect(store.problems()).toEqual([]);
    const pins: Array<string | undefined> = [];
    const gate = createBmcTrust({ store }).forBmc({ ip: '10.0.0.5', mac: 'aa:bb:cc:00:00:01' });
    await gate.openRedfish({ host: '10.0.0.5', port: 443, timeoutMs: 1000, proofTimeoutMs: 1000 }, async (tls) => void pins.push(tls.pinnedSha256));
    expect(pins).toEqual(['ab'.repeat(32)]); // pinned, not probed as a first contact
    await store.close();
    expect(log.lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });

  it('where proof is required, a pin without a proof field (a hand pin) stays a pin: another SSH key is refused although IPMI proves, a silent IPMI is refused, the pinned key is accepted and recorded as proven', async () => {
    const file = fileIn();
    mkdirSync(dirname(file), { recursive: true });
    const key = 'mac:aa:bb:cc:00:00:04';
    const colon = Array.from({ length: 32 }, () => 'AB').join(':');
    writeFileSync(file, JSON.stringify({ version: 1, bmcs: { [key]: { sshSha256: colon, ip: '10.0.0.5', firstSeen: '2026-01-01T00:00:00Z', lastSeen: '2026-01-01T00:00:00Z' } } }));
    const store = openTrustStore({ file, writeDelayMs: 0 });
    const registry = new Registry();
    const gate = createBmcTrust({ store, requireProof: true, metrics: createTrustMetrics(registry) }).forBmc({ ip: '10.0.0.5', mac: 'aa:bb:cc:00:00:04' });
    // an IPMI relay to the real BMC passes RAKP 2; the SSH side is the impostor's
    const relayed = await gate.sshHostKeyCheck({ host: '10.0.0.5', proofTimeoutMs: 1000, prove: async () => undefined });
    expect(relayed(fp('c'))).toBe(false);
    await store.flush();
    expect(store.get(key)).toEqual({ sshSha256: 'ab'.repeat(32), ip: '10.0.0.5', firstSeen: '2026-01-01T00:00:00Z', lastSeen: '2026-01-01T00:00:00Z' });
    expect(await registry.getSingleMetricAsString('metal_bmc_trust_refused_total')).toMatch(/check="ssh"} 1$/m);
    // no proof at all: refused before any connection
    const silent = await gate.sshHostKeyCheck({ host: '10.0.0.5', proofTimeoutMs: 1000, prove: async () => Promise.reject(new BmcError('TIMEOUT', 'no answer')) }).catch((e: unknown) => e);
    expect(isBmcError(silent, 'UNTRUSTED')).toBe(true);
    // the pinned key, proven: accepted, and the pin is now proven
    const real = await gate.sshHostKeyCheck({ host: '10.0.0.5', proofTimeoutMs: 1000, prove: async () => undefined });
    expect(real('ab'.repeat(32))).toBe(true);
    await store.close();
    expect((JSON.parse(readFileSync(file, 'utf8')) as { bmcs: Record<string, object> }).bmcs[key]).toMatchObject({ sshSha256: 'ab'.repeat(32), proof: 'ipmi' });
  });

  it('a record that cannot be used is logged (key and field, not the value), its BMC refused and counted, and it survives the next write as it was until reset', async () => {
    const file = fileIn();
    mkdirSync(dirname(file), { recursive: true });
    const bad = { redfishSha256: fp('c'), sshSha256: 'SHA256:not-hex', firstSeen: '2026-01-01T00:00:00Z', lastSeen: '2026-01-01T00:00:00Z' };
    writeFileSync(file, JSON.stringify({ version: 1, bmcs: { 'mac:aa:bb:cc:00:00:02': bad, 'mac:aa:bb:cc:00:00:03': { redfishSha256: fp('d'), firstSeen: '2026-01-01T00:00:00Z', lastSeen: '2026-01-01T00:00:00Z' } } }));
    const log = captureLog();
    const registry = new Registry();
    const store = openTrustStore({ file, logger: log.logger, writeDelayMs: 60_000 });
    expect(store.get('mac:aa:bb:cc:00:00:02')).toBeUndefined();
    expect(store.problem('mac:aa:bb:cc:00:00:02')).toMatch(/^sshSha256 is not a SHA-256 fingerprint/);
    const lines = log.find(/^a BMC trust record cannot be used/);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 50, trustKey: 'mac:aa:bb:cc:00:00:02', problem: expect.stringContaining('sshSha256') });
    expect(JSON.stringify(lines[0])).not.toContain('not-hex');

    // the BMC is not met as a first contact: refused before anything is opened
    const opened: unknown[] = [];
    const trust = createBmcTrust({ store, logger: log.logger, metrics: createTrustMetrics(registry), resetHint: true });
    const err = await trust
      .forBmc({ ip: '10.0.0.6', mac: 'aa:bb:cc:00:00:02' })
      .openRedfish({ host: '10.0.0.6', port: 443, timeoutMs: 1000, proofTimeoutMs: 1000 }, async (tls) => void opened.push(tls))
      .then(() => undefined, (e: unknown) => e);
    expect(isBmcError(err, 'UNTRUSTED')).toBe(true);
    expect((err as Error).message).toMatch(/cannot be used \(sshSha256 is not a SHA-256 fingerprint.*metal-bmc bmc trust --mac aa:bb:cc:00:00:02 --reset/);
    expect(opened).toEqual([]);
    expect(await registry.getSingleMetricAsString('metal_bmc_trust_refused_total')).toMatch(/check="record"} 1$/m);
    await expect(trust.forBmc({ ip: '10.0.0.6', mac: 'aa:bb:cc:00:00:02' }).sshHostKeyCheck({ host: '10.0.0.6', proofTimeoutMs: 1000 })).rejects.toThrow(/cannot be used/);

    // another change is written: the entry stays as the operator wrote it
    store.update('mac:aa:bb:cc:00:00:04', { redfishSha256: fp('e') });
    await store.flush();
    const written = (JSON.parse(readFileSync(file, 'utf8')) as { bmcs: Record<string, unknown> }).bmcs;
    expect(written['mac:aa:bb:cc:00:00:02']).toEqual(bad);
    expect(Object.keys(written).sort()).toEqual(['mac:aa:bb:cc:00:00:02', 'mac:aa:bb:cc:00:00:03', 'mac:aa:bb:cc:00:00:04']);

    // bmc trust shows it, and --reset removes it
    let shown = '';
    expect(await runTrust({ list: true, reset: false, stateDir: dirname(file) }, { write: (t: string) => ((shown += t), true) })).toBe(0);
    expect(shown).toContain('mac:aa:bb:cc:00:00:02  UNUSABLE: sshSha256 is not a SHA-256 fingerprint');
    expect(await runTrust({ mac: 'AA:BB:CC:00:00:02', list: false, reset: true, stateDir: dirname(file) }, { write: () => true })).toBe(0);
    utimesSync(file, new Date(), new Date(Date.now() + 5000));
    expect(store.problem('mac:aa:bb:cc:00:00:02')).toBeUndefined();
    await store.close();
    expect(Object.keys((JSON.parse(readFileSync(file, 'utf8')) as { bmcs: object }).bmcs).sort()).toEqual(['mac:aa:bb:cc:00:00:03', 'mac:aa:bb:cc:00:00:04']);
  });

  it('a damaged file is logged and never fatal; records with malformed fingerprints are ignored (property)', async () => {
    const log = captureLog();
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string(), fc.json(), fc.record({ version: fc.constant(1), bmcs: fc.dictionary(fc.string(), fc.anything()) }).map((v) => JSON.stringify(v))), async (text) => {
        const file = fileIn();
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, text);
        const store = openTrustStore({ file, logger: log.logger });
        for (const [, r] of store.list()) {
          for (const f of [r.redfishSha256, r.sshSha256]) if (f !== undefined) expect(f).toMatch(/^[0-9a-f]{64}$/);
        }
        store.update('ip:x', { redfishSha256: fp('c') });
        expect(store.get('ip:x')?.redfishSha256).toBe(fp('c'));
        await store.close();
      }),
      { numRuns: 50 },
    );
  });
});
