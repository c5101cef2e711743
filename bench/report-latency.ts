/**
 * Report cycles over a fleet that answers like a real partition (the simulator's latency model,
 * simulator in its own process): Redfish p50 150 ms / p99 2 s per answer, IPMI p50 5 ms / p99
 * 50 ms, 2 % of the BMCs dead, 3 % slow (2–5 s per answer). Per cycle: wall time next to the
 * floor — the slowest live BMC's own read (connect to report) in the same cycle, i.e. its
 * critical path of dependent round trips as it ran; beside it the longest read of a live BMC
 * whatever its outcome (one cut at its deadline too, which the cycle waits for as well) — and, as
 * the reference, the same fleet read
 * with concurrency fixed at 20 (the Go metal-bmc's limit). Also peak RSS, CPU seconds per BMC,
 * heap after GC over the cycles (flat?), the most BMCs read at once, and the share of TLS
 * connections that resumed a session. The BMCs are read as `metal-bmc serve` reads them by default
 * on this machine (METAL_BMC_REPORT_WORKERS: report worker threads on 3 cores or more, the main
 * thread on two); two more cycles read them the other way (the second one counts, with its TLS
 * sessions resumed) for comparison. The CPU is split by thread.
 * The per-BMC deadline is 4 s here (the daemon's default is 20 s): the slow BMCs need 2–5 s per
 * answer and several answers, so with any deadline they either time out or set the cycle's length.
 * The simulator runs at this process's priority; BENCH_SIM_NICE=N runs it N nice steps below
 * (docs/performance.md, "Where the start phase waits").
 * Runs in a child process of its own, compiled (bench/bench-process.ts): the figures are
 * the daemon's code under plain node, not the runner's tsx. BENCH_CONSOLE_TSX=1 runs it under tsx.
 * Usage: npm run bench -- report-latency [N] (N simulated BMCs, default 1,000)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readLeasesOnce } from '../src/leases/watch.js';
import type { Lease } from '../src/leases/types.js';
import { createLogger } from '../src/log.js';
import { createMetalApiClient } from '../src/metalapi/client.js';
import { startMetalApiStandIn } from '../src/metalapi/standin.js';
import { availableParallelism } from 'node:os';
import { defaultReportWorkers } from '../src/config/config.js';
import { createGuidMemory } from '../src/outband/guid-memory.js';
import { createHedgeMemory } from '../src/outband/hedge-memory.js';
import { createRedfishSessionMemory } from '../src/outband/redfish-sessions.js';
import { connectOutband } from '../src/outband/connect.js';
import { createBmcTrust, openTrustStore, TRUST_FILE } from '../src/outband/trust.js';
import { sharedTlsStats } from '../src/redfish/tls-context.js';
import { runReportCycle, type CycleDeps } from '../src/report/cycle.js';
import { createLimitMemory } from '../src/report/adaptive-limit.js';
import { createReadOrder } from '../src/report/read-order.js';
import { createReportWorkerPool, type ReportWorkerPool } from '../src/report/worker-pool.js';
import { assignFates, mulberry32, parseLatencySpec } from '../src/sim/latency.js';
import { cpuByThread, cpuOver, procUsage, resetPeakRss, sampleCpu, startFleetProcess, threadCpuSeconds } from './fleet-process.js';
import { profileDir, startProfile } from './profile.js';
import { collectGarbage } from './report.js';
import { begin } from './results.js';
import { applyHeapGrowth, DEFAULT_HEAP_GROWTH_PCT } from '../src/heap-growth.js';
import { BARE_PATHS, bareReads } from './bare-reads.js';
import { modelCycles } from './cycle-model.js';
import { BMC_TIMEOUT_MS, LATENCY } from './latency-fleet.js';

/** the simulator's default seed: the benchmark knows which machines are dead or slow */
const SEED = 'metal-bmc';
const CYCLES = 3;
const MAX_CONCURRENCY = 1024;
/** the Go metal-bmc reads at most 20 BMCs at once */
const GO_CONCURRENCY = 20;
/**
 * the daemon's default METAL_BMC_REPORT_GUID_MAX_AGE (1h): longer than the whole benchmark, so the
 * first cycle reads every GUID and the later ones keep the confirmed ones; BENCH_GUID_MAX_AGE_MS=0
 * reads every GUID over IPMI every cycle (an IPMI session for every BMC), as before it
 */
const GUID_MAX_AGE_MS = Number(process.env.BENCH_GUID_MAX_AGE_MS ?? 3_600_000);
/**
 * the daemon's default METAL_BMC_REPORT_REDFISH_SESSION_MAX_AGE (1h): the first cycle logs in to
 * every BMC and the later ones resume those sessions (no login, no logout, no service root);
 * BENCH_REDFISH_SESSION_MAX_AGE_MS=0 logs in and out every read, as before it
 */
const REDFISH_SESSION_MAX_AGE_MS = Number(process.env.BENCH_REDFISH_SESSION_MAX_AGE_MS ?? 3_600_000);
/**
 * the daemon's default METAL_BMC_REDFISH_HEDGE_AFTER (1 s): a report read's GET without an answer
 * after it is sent once more (redfish/http.ts `RedfishHedge`); BENCH_HEDGE_AFTER_MS=0 sends every
 * request once, as before it
 */
const HEDGE_AFTER_MS = process.env.BENCH_HEDGE_AFTER_MS === undefined ? 1000 : wholeNumber('BENCH_HEDGE_AFTER_MS', process.env.BENCH_HEDGE_AFTER_MS, 600_000, 'ms');
/**
 * the cycle's switch for second Redfish connections (redfish/second-connection.ts: once every BMC
 * has started, a request waiting for a BMC's busy connection opens the second at once), as the
 * daemon does; BENCH_SECOND_CONNECTION_SWITCH=0 leaves the main thread's reads waiting 1 s as
 * before it, for a comparison (the report workers' cycles always follow it)
 */
const SECOND_CONNECTION_SWITCH = process.env.BENCH_SECOND_CONNECTION_SWITCH !== '0';
/** CPU per BMC per cycle measured before issue 15 (500 instant BMCs, one cycle, CPU profile) */
const CPU_MS_BEFORE = 9;
/**
 * the simulator at this process's priority, as in every run before; BENCH_SIM_NICE=N runs it N nice
 * steps below (fleet-process.ts `nice`), nearer BMCs that have cores of their own: it then takes
 * the cores this process leaves, and its answers come later where it waits for one, which raises
 * the floor as well (docs/performance.md, "Where the start phase waits")
 */
const SIM_NICE = process.env.BENCH_SIM_NICE === undefined ? 0 : wholeNumber('BENCH_SIM_NICE', process.env.BENCH_SIM_NICE, 19, 'nice steps');
/** report worker threads for the comparison: as `metal-bmc serve` starts them by default (config.ts), at least 2; BENCH_REPORT_WORKERS sets another number */
const WORKERS = process.env.BENCH_REPORT_WORKERS === undefined ? Math.max(2, defaultReportWorkers(availableParallelism())) : wholeNumber('BENCH_REPORT_WORKERS', process.env.BENCH_REPORT_WORKERS, 64, 'report workers');
/**
 * the way the cycles read (and the run's peak RSS measures): as `metal-bmc serve` reads by default
 * on this machine, workers or 0 for the main thread; BENCH_FIRST_WORKERS=N reads them in N workers
 * instead (or 0, the main thread), so that way's peak is its own, not what the other way left
 */
const FIRST_WORKERS_SET = process.env.BENCH_FIRST_WORKERS !== undefined;
const DEFAULT_WORKERS = FIRST_WORKERS_SET ? wholeNumber('BENCH_FIRST_WORKERS', process.env.BENCH_FIRST_WORKERS!, 64, 'report workers') : defaultReportWorkers(availableParallelism());

/** A setting of this benchmark from the environment: a whole number of `what` from 0 to `max`. */
function wholeNumber(name: string, text: string, max: number, what: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n > max) throw new Error(`${name} must be a whole number of ${what} from 0 to ${max}, got ${JSON.stringify(text)}`);
  return n;
}

export async function benchReportLatency(n = 1000, cycles = CYCLES): Promise<void> {
  const out = begin('report-latency', 'report cycles over BMCs that answer like a real partition (latency model in the simulator, its own process): cycle time next to the slowest live BMC and to concurrency fixed at 20', {
    bmcs: n,
    cycles,
    latency: LATENCY,
    bmcTimeoutMs: BMC_TIMEOUT_MS,
    maxConcurrency: MAX_CONCURRENCY,
    referenceConcurrency: GO_CONCURRENCY,
    reportWorkers: DEFAULT_WORKERS,
    comparisonWorkers: DEFAULT_WORKERS > 0 ? 0 : WORKERS,
    heapGrowthPct: DEFAULT_HEAP_GROWTH_PCT,
    simulatorNice: SIM_NICE,
    guidMaxAgeMs: GUID_MAX_AGE_MS,
    redfishSessionMaxAgeMs: REDFISH_SESSION_MAX_AGE_MS,
    hedgeAfterMs: HEDGE_AFTER_MS,
    secondConnectionSwitch: SECOND_CONNECTION_SWITCH,
  });
  // as `metal-bmc serve` does with its default METAL_BMC_HEAP_GROWTH
  applyHeapGrowth(DEFAULT_HEAP_GROWTH_PCT);
  const model = parseLatencySpec(LATENCY);
  const fates = assignFates(n, SEED, model);
  const dir = mkdtempSync(join(tmpdir(), 'bench-latency-'));
  const leaseFile = join(dir, 'dhcpd.leases');
  const fleet = await startFleetProcess({ count: n, leaseFile, latency: LATENCY, nice: SIM_NICE });
  const api = await startMetalApiStandIn({ hmacKey: 'bench-key' });
  try {
    const leases = await readLeasesOnce(leaseFile, {});
    const fateOf = new Map(fleet.addresses.map((a, i) => [a, fates[i]!]));
    /** per BMC address, ms from connect to its report, in the cycle running now */
    let readMs = new Map<string, number>();
    /** failures of live BMCs by error code, in the cycle running now */
    let liveFailures: Record<string, number> = {};
    /** BMCs read without an IPMI session in the cycle running now (their GUID remembered: outband/guid-memory.ts) */
    let withoutIpmi = 0;
    /** hedged GETs of the cycle running now, by outcome (the reads that gave a report) */
    let hedges = { won: 0, lost: 0, failed: 0 };
    /** every read of the cycle running now: when it started and ended (performance.now()), its BMC's fate, its outcome */
    let ends: Array<{ start: number; end: number; fate: string; outcome: string }> = [];
    // trust on first use, as the daemon does by default: the first cycle probes each certificate and
    // proves the BMC over IPMI before its login; later cycles connect pinned (resuming TLS sessions)
    const trustStore = openTrustStore({ file: join(dir, TRUST_FILE) });
    const trust = createBmcTrust({ store: trustStore });
    const settings = { user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: BMC_TIMEOUT_MS, ...(HEDGE_AFTER_MS > 0 ? { redfishHedgeAfterMs: HEDGE_AFTER_MS } : {}) };
    // as the daemon: the paths per BMC slow when last asked (the workers keep their own)
    const redfishHedgeMemory = createHedgeMemory();
    // as the daemon by default (METAL_BMC_REPORT_GUID_MAX_AGE): a BMC's confirmed IPMI GUID kept between cycles
    const guidMemory = GUID_MAX_AGE_MS > 0 ? createGuidMemory({ maxAgeMs: GUID_MAX_AGE_MS }) : undefined;
    // as the daemon by default: one keeper of Redfish sessions for the main thread's reads and the workers'
    const redfishSessions = REDFISH_SESSION_MAX_AGE_MS > 0 ? createRedfishSessionMemory({ maxAgeMs: REDFISH_SESSION_MAX_AGE_MS }) : undefined;
    /** the threads before the workers started: the ones after them are the workers (and, where they start first, libuv's pool threads) */
    let threadsBeforePool: Set<number> | undefined;
    // the workers start with the cycles that use them: idle ones would count in the other way's memory
    let pool: ReportWorkerPool | undefined;
    const startPool = (workers: number) => {
      threadsBeforePool = new Set(threadCpuSeconds().keys());
      return (pool = createReportWorkerPool({ workers, settings, logger: createLogger({ level: 'silent' }), trust, guidMaxAgeMs: GUID_MAX_AGE_MS, ...(redfishSessions ? { redfishSessions } : {}) }));
    };
    // every read, wherever it ran: its time from connect to report (the floor), a live BMC's failure by code
    const observer: CycleDeps['observer'] = {
      read(lease, outcome) {
        const now = performance.now();
        ends.push({ start: now - outcome.durationMs, end: now, fate: fateOf.get(lease.ip) ?? '?', outcome: outcome.ok ? 'ok' : ((outcome.error as { code?: string }).code ?? 'UNKNOWN') });
        if (outcome.ok && outcome.report.source === 'redfish') withoutIpmi++;
        if (outcome.ok && outcome.report.redfishHedges) for (const k of ['won', 'lost', 'failed'] as const) hedges[k] += outcome.report.redfishHedges[k];
        if (outcome.ok) readMs.set(lease.ip, outcome.durationMs);
        else if (fateOf.get(lease.ip) === 'live') {
          const code = (outcome.error as { code?: string }).code ?? 'UNKNOWN';
          liveFailures[code] = (liveFailures[code] ?? 0) + 1;
        }
      },
      reported() {},
    };
    const deps: CycleDeps = {
      partitionId: 'bench',
      // the main thread's reads (the comparison cycle); the workers connect the same way
      connect: (host, signal, onAnswer, secondConnection) => connectOutband({ ...settings, host, readAhead: true, onAnswer, trust: trust.forBmc({ ip: host }), ...(guidMemory ? { guidMemory } : {}), ...(redfishSessions ? { redfishSessions } : {}), redfishHedgeMemory, ...(secondConnection && SECOND_CONNECTION_SWITCH ? { redfishSecondConnection: secondConnection } : {}), signal }),
      ...(DEFAULT_WORKERS > 0 ? { reader: startPool(DEFAULT_WORKERS) } : {}),
      metalApi: createMetalApiClient({ baseUrl: api.url, hmacKey: 'bench-key', timeoutMs: 60_000 }),
      concurrency: MAX_CONCURRENCY,
      bmcTimeoutMs: BMC_TIMEOUT_MS,
      logger: createLogger({ level: 'silent' }),
      observer,
      // as the daemon's reporter: the BMCs slowest last cycle start first, the limit where the last cycle's settled
      readOrder: createReadOrder(),
      limitMemory: createLimitMemory(),
    };
    /** TLS connections so far, and how many resumed a session, in the workers and in this thread */
    const tlsStats = () => {
      const here = sharedTlsStats();
      return (pool?.stats() ?? []).reduce((t, w) => ({ connections: t.connections + w.tlsConnections, resumed: t.resumed + w.tlsResumed }), here);
    };
    const live = (l: Lease) => fateOf.get(l.ip) === 'live';
    const runCycle = async (d: CycleDeps) => {
      readMs = new Map();
      liveFailures = {};
      withoutIpmi = 0;
      hedges = { won: 0, lost: 0, failed: 0 };
      ends = [];
      const tlsBefore = tlsStats();
      const threadsBefore = threadCpuSeconds();
      const cpu = process.cpuUsage();
      const simCpu = fleet.usage().cpuSeconds;
      const startLimit = d.limitMemory?.start();
      const cpuReadings = sampleCpu(fleet.child.pid!);
      const t = performance.now();
      const r = await runReportCycle(d, leases);
      const readings = cpuReadings.stop();
      const simCpuSeconds = fleet.usage().cpuSeconds - simCpu;
      // the reads that ended last, the cycle's tail: when each started and ended (s into the cycle), its BMC's fate, its outcome
      const tail = ends.sort((a, b) => b.end - a.end).slice(0, 12).map((e) => `${((e.start - t) / 1000).toFixed(2)}+${((e.end - e.start) / 1000).toFixed(2)}s ${e.fate} ${e.outcome}`);
      const lastReadEnd = ends.length ? (ends[0]!.end - t) / 1000 : 0;
      // when the cycle started its last BMC
      const lastStartSeconds = ends.length ? (Math.max(...ends.map((e) => e.start)) - t) / 1000 : 0;
      // how busy the machine was while the cycle started its BMCs: the part of a cycle CPU decides
      const startPhase = cpuOver(readings, t + lastStartSeconds * 1000);
      // the cycle's time is until metal-api has the report (r.durationMs); the session logouts finish after it
      const wall = r.durationMs / 1000;
      const withLogouts = (performance.now() - t) / 1000;
      const used = process.cpuUsage(cpu);
      const byThread = cpuByThread(threadsBefore, threadsBeforePool);
      const tlsAfter = tlsStats();
      const floor = Math.max(0, ...leases.filter(live).map((l) => readMs.get(l.ip) ?? 0)) / 1000;
      // the longest read of a live BMC whatever its outcome: one cut at its deadline counts with the time the cycle waited for it
      const longestLive = Math.max(0, ...ends.filter((e) => e.fate === 'live').map((e) => e.end - e.start)) / 1000;
      const liveUnread = leases.filter((l) => live(l) && !readMs.has(l.ip)).length;
      return { startPhase, tail, lastReadEnd, r, startLimit, wall, withLogouts, withoutIpmi, hedges, failures: { ...liveFailures }, floor, longestLive, liveUnread, cpuSeconds: (used.user + used.system) / 1e6, systemSeconds: used.system / 1e6, byThread, simCpuSeconds, lastStartSeconds, tls: { connections: tlsAfter.connections - tlsBefore.connections, resumed: tlsAfter.resumed - tlsBefore.resumed } };
    };

    // what the process holds before any BMC is read (Node, tsx's loader, the code, the metal-api stand-in): part of the peak below
    collectGarbage();
    out.record({ name: 'RSS before the first cycle', value: process.memoryUsage().rss / 2 ** 20, unit: 'MiB', kind: 'measured', detail: true });
    const heaps: number[] = [];
    const results: Array<Awaited<ReturnType<typeof runCycle>>> = [];
    /** the process's peak RSS so far, the kernel's high-water mark carried over each cycle's reset of it */
    let runPeakRss = procUsage(process.pid).peakRssMiB;
    {
      for (let c = 1; c <= cycles; c++) {
        // each cycle's own peak: the first (first contact: certificate probes, IPMI proofs, full
        // handshakes) and the later ones (resumed) need not peak alike
        const perCycle = resetPeakRss();
        // BENCH_PROFILE_DIR: a CPU profile of the second cycle (TLS sessions resumed, as in steady state), a heap snapshot after it
        const profiler = c === 2 ? await startProfile(`report-latency-${n}-cycle-2`) : undefined;
        const x = await runCycle(deps);
        results.push(x);
        (api.reports as unknown[]).splice(0);
        (api.requests as unknown[]).splice(0);
        collectGarbage();
        await profiler?.stop();
        // this thread's heap and the workers', each after a full collection
        heaps.push((process.memoryUsage().heapUsed + ((await pool?.measureHeap()) ?? 0)) / 2 ** 20);
        const failures = x.r.failed ? { failures: x.r.failed } : {};
        out.record({ name: `cycle ${c}: wall time, ${leases.length} BMCs`, value: x.wall, unit: 's', kind: 'measured', ...failures, detail: true });
        out.record({ name: `cycle ${c}: wall time including the session logouts after the report`, value: x.withLogouts, unit: 's', kind: 'measured', detail: true });
        if (x.liveUnread) console.log(`  cycle ${c}: live BMCs not read, by error code: ${JSON.stringify(x.failures)}`);
        out.record({ name: `cycle ${c}: slowest live BMC's own read (the floor)`, value: x.floor, unit: 's', kind: 'measured', ...(x.liveUnread ? { failures: x.liveUnread } : {}), detail: true });
        out.record({ name: `cycle ${c}: longest read of a live BMC, one cut at its deadline included`, value: x.longestLive, unit: 's', kind: 'measured', detail: true });
        out.record({ name: `cycle ${c}: CPU per BMC`, value: (x.cpuSeconds * 1000) / leases.length, unit: 'ms', kind: 'measured', detail: true });
        // the kernel's share (system time, all threads): on loopback it includes the receiving side's TCP and UDP processing, which a NIC would take elsewhere
        out.record({ name: `cycle ${c}: CPU per BMC in the kernel (system time, all threads)`, value: (x.systemSeconds * 1000) / leases.length, unit: 'ms', kind: 'measured', detail: true });
        for (const [part, seconds] of [['the main thread', x.byThread.main], [`the ${DEFAULT_WORKERS} report workers`, x.byThread.workers], ["Node's helper threads (GC, I/O)", x.byThread.helpers]] as const) {
          out.record({ name: `cycle ${c}: CPU per BMC in ${part}`, value: (seconds * 1000) / leases.length, unit: 'ms', kind: 'measured', detail: true });
        }
        // the cycle's two parts: starting every BMC (as fast as the loop's CPU allows), then the reads of the last ones started
        out.record({ name: `cycle ${c}: last BMC started after`, value: x.lastStartSeconds, unit: 's', kind: 'measured', detail: true });
        out.record({ name: `cycle ${c}: the simulator's CPU (its own process, the other core)`, value: x.simCpuSeconds, unit: 's', kind: 'measured', detail: true });
        if (x.startPhase) {
          // /proc/stat over the start phase (sampled every 100 ms, to the last reading before the last start): whether the cores, not the limiter, set its length
          const p = x.startPhase;
          out.record({ name: `cycle ${c}: the machine's ${availableParallelism()} cores busy while the BMCs were started (first ${p.seconds.toFixed(1)} s)`, value: p.machinePct, unit: '%', kind: 'measured', detail: true });
          console.log(`  cycle ${c}: in those ${p.seconds.toFixed(2)} s, cores used: this process ${p.ownCores.toFixed(2)} (its main thread ${p.mainCores.toFixed(2)}), the simulator ${p.otherCores.toFixed(2)}`);
        }
        out.record({ name: `cycle ${c}: last read ended after`, value: x.lastReadEnd, unit: 's', kind: 'measured', detail: true });
        console.log(`  cycle ${c}: the reads that ended last (start+duration, fate, outcome): ${x.tail.join(', ')}`);
        console.log(`  cycle ${c}: limit from ${x.startLimit ?? 'its default'}, then every 200 ms: ${x.r.limitSamples.join(' ')}`);
        // the limiter's view at each sample: busy share of the loop (%), its mean delay (ms), BMCs in flight, BMCs queued
        console.log(`  cycle ${c}: busy%/delay ms/in flight/queued every 200 ms: ${x.r.limitSeen.map((s) => `${s.busyPct}/${s.lagMs}/${s.running}/${s.queued}`).join(' ')}`);
        out.record({ name: `cycle ${c}: most BMCs read at once`, value: x.r.peakConcurrency, unit: '', kind: 'measured', detail: true });
        out.record({ name: `cycle ${c}: BMCs past their deadline for the event loop's stall (read in the time given back, or missed)`, value: x.r.late, unit: '', kind: 'measured', detail: true });
        out.record({ name: `cycle ${c}: BMCs read without an IPMI session (their confirmed GUID kept from an earlier cycle)`, value: x.withoutIpmi, unit: '', kind: 'measured', detail: true });
        out.record({ name: `cycle ${c}: hedged Redfish GETs (won, lost, failed: ${x.hedges.won}, ${x.hedges.lost}, ${x.hedges.failed})`, value: x.hedges.won + x.hedges.lost + x.hedges.failed, unit: '', kind: 'measured', detail: true });
        out.record({ name: `cycle ${c}: TLS connections per BMC`, value: x.tls.connections / leases.length, unit: '', kind: 'measured', detail: true });
        out.record({ name: `cycle ${c}: TLS connections that resumed a session`, value: x.tls.connections ? (100 * x.tls.resumed) / x.tls.connections : 0, unit: '%', kind: 'measured', detail: true });
        out.record({ name: `cycle ${c}: heap after GC`, value: heaps.at(-1)!, unit: 'MiB', kind: 'measured', detail: true });
        const cyclePeak = procUsage(process.pid).peakRssMiB;
        runPeakRss = Math.max(runPeakRss, cyclePeak);
        // with BENCH_PROFILE_DIR, cycle 2's includes writing its profile and heap snapshot: not comparable with the others
        if (perCycle) out.record({ name: `cycle ${c}: peak RSS in this cycle (and its garbage collection${profiler && profileDir() !== undefined ? ', profile and heap snapshot' : ''} after it)`, value: cyclePeak, unit: 'MiB', kind: 'measured', detail: true });
      }
    }
    // the kernel's high-water mark (VmHWM), read before the reference cycle: it misses no peak
    // between samples, and a sampling timer's CPU (~0.1 ms per BMC at 50 ms) no longer counts as the daemon's
    const peakRss = runPeakRss;
    readMs = new Map();
    // the reference reads in lease order, as the Go daemon does
    const { readOrder: _ordered, limitMemory: _limit, ...leaseOrder } = deps;
    const reference = await runCycle({ ...leaseOrder, concurrency: GO_CONCURRENCY, fixedConcurrency: true });
    // the same reads the other way (in the main thread, or in workers): twice, the second one with
    // its TLS sessions resumed as the first way's are
    const { reader: _reader, ...withoutReader } = deps;
    const otherDeps: CycleDeps = DEFAULT_WORKERS > 0 ? withoutReader : { ...deps, reader: startPool(WORKERS) };
    const otherPerCycle = resetPeakRss();
    await runCycle(otherDeps);
    const other = await runCycle(otherDeps);
    const way = (workers: number) => (workers > 0 ? `in ${workers} report worker threads` : 'in the main thread');
    const otherWay = way(DEFAULT_WORKERS > 0 ? 0 : WORKERS);
    const best = results.reduce((a, b) => (b.wall < a.wall ? b : a));
    const last = results.at(-1)!;
    out.record({
      name: `fastest of ${cycles} cycles, ${leases.length} BMCs`,
      value: best.wall,
      unit: 's',
      kind: 'measured',
      ...(best.r.failed ? { failures: best.r.failed } : {}),
      reference: { name: `the same fleet, ${GO_CONCURRENCY} BMCs at once (the Go daemon's limit)`, value: reference.wall, kind: 'measured', ...(reference.r.failed ? { failures: reference.r.failed } : {}) },
      better: 'lower',
    });
    out.record({
      name: `cycle with the reads ${way(DEFAULT_WORKERS)} (${FIRST_WORKERS_SET ? 'BENCH_FIRST_WORKERS' : `the default on ${availableParallelism()} cores`}), fastest`,
      value: best.wall,
      unit: 's',
      kind: 'measured',
      ...(best.r.failed ? { failures: best.r.failed } : {}),
      reference: { name: `the reads ${otherWay}, second such cycle`, value: other.wall, kind: 'measured', ...(other.r.failed ? { failures: other.r.failed } : {}) },
      better: 'lower',
    });
    out.record({ name: `the reads ${otherWay}: slowest live BMC's own read (its floor)`, value: other.floor, unit: 's', kind: 'measured', detail: true });
    out.record({ name: `the reads ${otherWay}: CPU per BMC`, value: (other.cpuSeconds * 1000) / leases.length, unit: 'ms', kind: 'measured', detail: true });
    for (const [part, seconds] of [['the main thread', other.byThread.main], ['report workers', other.byThread.workers], ["Node's helper threads (GC, I/O)", other.byThread.helpers]] as const) {
      out.record({ name: `the reads ${otherWay}: CPU per BMC in ${part}`, value: (seconds * 1000) / leases.length, unit: 'ms', kind: 'measured', detail: true });
    }
    // the process's high-water mark over the other way's two cycles, on top of what the first way's left resident
    out.record({ name: `the reads ${otherWay}: peak RSS (the process's, ${otherPerCycle ? 'over those two cycles, with what the first way and the 20-at-once reference left resident' : 'all of the run so far'})`, value: procUsage(process.pid).peakRssMiB, unit: 'MiB', kind: 'measured', detail: true });
    out.record({
      name: `cycle time / slowest live BMC's own read, fastest cycle (goal < 1.5)`,
      value: best.floor > 0 ? best.wall / best.floor : null,
      unit: 'x',
      kind: 'measured',
    });
    out.record({ name: `slowest live BMC's own read in that cycle (the floor)`, value: best.floor, unit: 's', kind: 'measured' });
    out.record({
      name: `CPU per BMC per cycle, last cycle`,
      value: (last.cpuSeconds * 1000) / leases.length,
      unit: 'ms',
      kind: 'measured',
      reference: { name: `the same fleet, ${GO_CONCURRENCY} BMCs at once`, value: (reference.cpuSeconds * 1000) / leases.length, kind: 'measured' },
      better: 'lower',
      differs: `issue 15 measured ${CPU_MS_BEFORE} ms per BMC before this change (500 instant BMCs, another run); not a reference of this run`,
    });
    // the reference clients below run alone: the other way's workers are done (their threads and heaps would count against them)
    await pool?.close();
    pool = undefined;
    // on the same fleet, as many at once as the fastest cycle's most
    const targets = leases.map((l) => ({ host: l.ip, port: fleet.redfishPort, user: fleet.user, password: fleet.password }));
    const referenceReads = (reader: 'bare' | 'transport') => bareReads(targets, { concurrency: Math.max(1, best.r.peakConcurrency), deadlineMs: BMC_TIMEOUT_MS, simCpuSeconds: () => fleet.usage().cpuSeconds, reader });
    // the least a client does per BMC (bench/bare-reads.ts)
    const bare = await referenceReads('bare');
    // the step between: the same three GETs through the Redfish client's HTTP layer (our HTTP/1.1 connections, bounds, JSON decoder)
    const viaTransport = await referenceReads('transport');
    /** the last cycle's CPU per BMC, ours and the simulator's */
    const lastCpuMs = (last.cpuSeconds * 1000) / leases.length;
    const lastSimCpuMs = (last.simCpuSeconds * 1000) / leases.length;
    const bareName = `a bare client on the same fleet (bench/bare-reads.ts: per BMC one resumed TLS connection, ${BARE_PATHS.length} GETs, bodies parsed, nothing else)`;
    const connectionsPerBmc = last.tls.connections / leases.length;
    out.record({
      name: 'CPU per BMC per cycle, last cycle, next to the least a client does',
      value: lastCpuMs,
      unit: 'ms',
      kind: 'measured',
      reference: { name: bareName, value: bare.cpuMsPerBmc, kind: 'measured', ...(bare.outcomes.failed ? { failures: bare.outcomes.failed } : {}) },
      better: 'lower',
      differs: `the reference does less than a read: ${BARE_PATHS.length} requests over one connection per BMC, where the report's reads send 2-5 (README "Round trips per BMC") over ${connectionsPerBmc.toFixed(2)} (this run), read IPMI where they must, and build, check and post a report`,
    });
    out.record({
      name: "the simulator's CPU per BMC serving the last cycle, next to serving the bare client",
      value: lastSimCpuMs,
      unit: 'ms',
      kind: 'measured',
      reference: { name: bareName, value: bare.simCpuMsPerBmc, kind: 'measured' },
      better: 'lower',
      differs: 'the same difference in the work asked of the simulator',
    });
    out.record({
      name: `CPU per BMC, the bare client's ${BARE_PATHS.length} GETs through the Redfish client's HTTP layer (src/redfish/http.ts: our HTTP/1.1 connections, deadlines, size bounds, the JSON decoder)`,
      value: viaTransport.cpuMsPerBmc,
      unit: 'ms',
      kind: 'measured',
      ...(viaTransport.outcomes.failed ? { failures: viaTransport.outcomes.failed } : {}),
      reference: { name: bareName, value: bare.cpuMsPerBmc, kind: 'measured', ...(bare.outcomes.failed ? { failures: bare.outcomes.failed } : {}) },
      better: 'lower',
    });
    out.record({
      name: 'CPU per BMC per cycle, last cycle, next to the same three GETs through its HTTP layer',
      value: lastCpuMs,
      unit: 'ms',
      kind: 'measured',
      reference: { name: "the bare client's GETs through the Redfish client's HTTP layer", value: viaTransport.cpuMsPerBmc, kind: 'measured' },
      better: 'lower',
      differs: `the reference does less than a read: what the read adds beyond the HTTP layer (the Redfish session, the layout, IPMI where it must, trust checks, the report) and its own requests, 2-5 over ${connectionsPerBmc.toFixed(2)} connections per BMC`,
    });
    out.record({ name: "the simulator's CPU per BMC serving the bare client's GETs through the HTTP layer", value: viaTransport.simCpuMsPerBmc, unit: 'ms', kind: 'measured', detail: true });
    for (const [who, run] of [['the bare client', bare], ["the bare client's GETs through the HTTP layer", viaTransport]] as const) {
      out.record({ name: `${who}: BMCs read (all ${BARE_PATHS.length} answers)`, value: run.outcomes.read, unit: '', kind: 'measured', detail: true });
      out.record({ name: `${who}: BMCs cut at the ${BMC_TIMEOUT_MS} ms deadline`, value: run.outcomes.cut, unit: '', kind: 'measured', detail: true });
      out.record({ name: `${who}: BMCs failed`, value: run.outcomes.failed, unit: '', kind: 'measured', detail: true });
      out.record({ name: `${who}: TLS connections that resumed a session, per BMC`, value: run.resumed / leases.length, unit: '', kind: 'measured', detail: true });
      out.record({ name: `${who}: wall time of the measured pass`, value: run.wallSeconds, unit: 's', kind: 'measured', detail: true });
    }
    // what the start phase would be if the two processes' CPU alone set it, on this machine's cores:
    // for our reads (checked against the measured last start) and for the bare client's; and the
    // model's cycle at that start phase (bench/cycle-model.ts)
    const cores = availableParallelism();
    const cpuStartPhase = (ourMs: number, simMs: number) => ((ourMs + simMs) * leases.length) / 1000 / cores;
    const oursStart = cpuStartPhase(lastCpuMs, lastSimCpuMs);
    const bareStart = cpuStartPhase(bare.cpuMsPerBmc, bare.simCpuMsPerBmc);
    const basis = (whose: string) => `(${whose} CPU per BMC + the simulator's serving it) x ${leases.length} BMCs / ${cores} cores, measured CPU, derived time; a process on one event loop may need longer (the simulator's CPU alone is most of it)`;
    // the check of the estimate: the last cycle's measured last start, recorded above as "cycle N: last BMC started after"
    out.record({ name: `start phase the two processes' CPU allows, our reads (last cycle, whose last BMC started after ${last.lastStartSeconds.toFixed(2)} s)`, value: oursStart, unit: 's', kind: 'estimated', basis: basis("our reads'"), detail: true });
    out.record({ name: "start phase the two processes' CPU allows, the bare client", value: bareStart, unit: 's', kind: 'estimated', basis: basis("the bare client's") });
    const liveBmcs = leases.filter(live).length;
    const modelled = modelCycles(bareStart, 400, mulberry32(15), liveBmcs);
    out.record({
      name: "modelled cycle at the bare client's start phase, median of 400 (bench/cycle-model.ts)",
      value: modelled.cycle.p50,
      unit: 's',
      kind: 'estimated',
      basis: `the latency model's reads of ${liveBmcs} live BMCs started evenly over ${bareStart.toFixed(2)} s, without the loop's queueing, the slow and the dead BMCs; under 5 s in ${Math.round(modelled.under5s)} % of the modelled cycles, under 1.5x their floor in ${Math.round(modelled.under1_5x)} %`,
    });
    out.record({ name: `peak RSS over ${cycles} cycles`, value: peakRss, unit: 'MiB', kind: 'measured' });
    out.record({ name: `heap after GC, first -> last cycle`, value: heaps.at(-1)! - heaps[0]!, unit: 'MiB', stat: 'growth', kind: 'measured' });
    await trustStore.close();
  } finally {
    await api.close();
    await fleet.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchReportLatency(Number(process.argv[2] ?? 1000), Number(process.argv[3] ?? CYCLES));
}
