/**
 * Taking in a change of a large lease file, as the lease watcher does, for ISC dhcpd and for Kea:
 * N MACs (default 2,000) with 12 renewals each (an hour of renewals every 5 min between dhcpd's
 * hourly rewrites or Kea's hourly lease file cleanups, rendered with renderIscLeases and
 * renderKeaLeases; Kea's with the last cleanup's result, one row per MAC, as `.2` beside it), then
 * one renewal appended at a time. Ours: the watcher's reader reading only what was appended
 * (src/leases/follow.ts with isc-follow.ts or kea-follow.ts) and the selection of the active
 * leases; the reference, same run, same files: a full read, parse and selection, as every change
 * cost before. Both as wall time per change and as main-thread busy time per change (the event
 * loop's active time over the change: what delays SOL consoles, report deadlines and commands).
 * Usage: npm run bench -- lease-read [N] (N MACs)
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { KEA_HEADER, renderIscLeases, renderKeaLeases, type IscLeaseInput, type KeaLeaseInput } from '../src/leases/render.js';
import { activeLeases } from '../src/leases/select.js';
import { createLeaseReader } from '../src/leases/watch.js';
import { latency, type Timed } from './report.js';
import { begin, type Recorder } from './results.js';

const RENEWALS = 12;
const RENEWAL_S = 300;
const FULL_READS = 8;
const TAIL_READS = 200;

const START = Date.UTC(2026, 0, 1);

function renewal(mac: number, round: number): IscLeaseInput {
  const starts = new Date(START + (round * RENEWAL_S + (mac % RENEWAL_S)) * 1000);
  return {
    ip: `10.${1 + ((mac >> 16) & 0xff)}.${(mac >> 8) & 0xff}.${mac & 0xff}`,
    mac: [0x0c, 0xc4, 0x7a, (mac >> 16) & 0xff, (mac >> 8) & 0xff, mac & 0xff].map((b) => b.toString(16).padStart(2, '0')).join(':'),
    starts,
    ends: new Date(starts.getTime() + 600_000),
    bindingState: 'active',
    nextBindingState: 'free',
    uid: `\x01${String.fromCharCode(0x0c, 0xc4, 0x7a, (mac >> 16) & 0xff, (mac >> 8) & 0xff, mac & 0xff)}`,
    vars: { 'vendor-class-identifier': 'udhcp 1.23.1' },
    hostname: `bmc-${mac}`,
  };
}

/** Wall ms and the event loop's active ms of each of `n` sequential calls; `prepare` (dhcpd's write) is not counted. */
async function measure(n: number, fn: (i: number) => Promise<unknown>, prepare?: (i: number) => void): Promise<{ wall: Timed; busy: Timed }> {
  const wall: Timed = { samples: [], failures: 0 };
  const busy: Timed = { samples: [], failures: 0 };
  for (let i = 0; i < n; i++) {
    prepare?.(i);
    const elu = performance.eventLoopUtilization();
    const t = performance.now();
    await fn(i);
    wall.samples.push(performance.now() - t);
    busy.samples.push(performance.eventLoopUtilization(elu).active);
  }
  return { wall, busy };
}

/** One MAC's renewal as a Kea row: the same lease as `renewal` (Kea's expire is its cltt + valid_lifetime). */
function keaRenewal(mac: number, round: number): KeaLeaseInput {
  const isc = renewal(mac, round);
  return { ip: isc.ip, mac: isc.mac, clientId: `01:${isc.mac as string}`, validLifetime: 600, expire: isc.ends as Date, subnetId: 1, hostname: isc.hostname as string, state: 0 };
}

/**
 * The reference (a new reader each time: a full read, parse and selection of the files) next to
 * one reader following the file, which takes in each of `appended` written to it in turn; recorded
 * under `prefix`.
 */
async function compare(out: Recorder, prefix: string, path: string, n: number, appended: readonly string[]): Promise<void> {
  const now = new Date(START + RENEWALS * RENEWAL_S * 1000);
  const select = (parsed: Parameters<typeof activeLeases>[0]) => {
    if (activeLeases(parsed, { now }).length !== n) throw new Error('wrong number of active leases');
  };

  const reference = await measure(FULL_READS, async () => {
    const read = await createLeaseReader(path, 'auto').read();
    if (read.mode !== 'full') throw new Error(`reference read was ${read.mode}`);
    select(read.parsed);
  });

  const reader = createLeaseReader(path, 'auto');
  await reader.read();
  let bytes = 0;
  const ours = await measure(
    appended.length,
    async (i) => {
      const read = await reader.read();
      if (read.mode !== 'tail') throw new Error(`read ${i} was ${read.mode}`);
      bytes += read.bytes;
      select(read.parsed);
    },
    (i) => appendFileSync(path, appended[i] as string),
  );

  const differs = 'ours reads what was appended (and the 4 KiB before it); the reference reads the whole file';
  out.record({ ...latency(`${prefix}take in a change: tail read + parse + selection`, ours.wall), unit: 'ms', reference: latency('full read + parse + selection', reference.wall), better: 'lower', differs });
  out.record({ ...latency(`${prefix}main-thread busy time per change, tail read`, ours.busy), unit: 'ms', reference: latency('main-thread busy time per change, full read', reference.busy), better: 'lower', differs });
  out.record({ name: `${prefix}bytes read per change, tail read`, value: Math.round(bytes / appended.length), kind: 'measured', unit: 'B', detail: true });
}

const mib = (bytes: number): number => Math.round((bytes / 2 ** 20) * 100) / 100;

export async function benchLeaseRead(n = 2000): Promise<void> {
  const out = begin('lease-read', `a change of an ISC lease file, and of a Kea lease file, of ${n} MACs x ${RENEWALS} renewals: one appended renewal taken in`, { macs: n, renewals: RENEWALS, fullReads: FULL_READS, tailReads: TAIL_READS });
  const dir = await mkdtemp(join(tmpdir(), 'metal-bmc-bench-leases-'));
  try {
    const path = join(dir, 'dhcpd.leases');
    const leases: IscLeaseInput[] = [];
    for (let round = 0; round < RENEWALS; round++) for (let mac = 0; mac < n; mac++) leases.push(renewal(mac, round));
    const text = renderIscLeases(leases);
    writeFileSync(path, text);
    const empty = renderIscLeases([]).length;
    await compare(out, '', path, n, Array.from({ length: TAIL_READS }, (_, i) => renderIscLeases([renewal(i % n, RENEWALS)]).slice(empty)));
    out.record({ name: 'lease file size', value: mib(Buffer.byteLength(text)), kind: 'measured', unit: 'MiB', detail: true });

    // Kea: the lease file of an hour's rows, and the last cleanup's result (.2) beside it
    const keaPath = join(dir, 'kea-leases4.csv');
    const rows: KeaLeaseInput[] = [];
    for (let round = 0; round < RENEWALS; round++) for (let mac = 0; mac < n; mac++) rows.push(keaRenewal(mac, round));
    const keaText = renderKeaLeases(rows);
    writeFileSync(keaPath, keaText);
    writeFileSync(`${keaPath}.2`, renderKeaLeases(Array.from({ length: n }, (_, mac) => keaRenewal(mac, 0))));
    const header = KEA_HEADER.length + 1;
    await compare(out, 'Kea: ', keaPath, n, Array.from({ length: TAIL_READS }, (_, i) => renderKeaLeases([keaRenewal(i % n, RENEWALS)]).slice(header)));
    out.record({ name: 'Kea: lease file size', value: mib(Buffer.byteLength(keaText)), kind: 'measured', unit: 'MiB', detail: true });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchLeaseRead(Number(process.argv[2] ?? 2000));
}
