/**
 * Serial console proxy under load: N concurrent WebSocket consoles (default 500) on the
 * simulated fleet, every machine's serial line streaming without pause at 115200 baud. Three
 * processes: the fleet (`metal-bmc sim`, bench/fleet-process.ts), the console service
 * (bench/console-server-process.ts: `startConsoleServers` with the daemon's backend over
 * `connectOutband(...).openConsole({takeOver: true})`, alone so its memory and CPU come from
 * /proc), and this one with the N `ws` clients (client certificates of a throw-away PKI).
 *
 * Reported (through bench/results.ts): consoles connected and streaming, bytes/s per console and
 * in total, the console process's resident memory and CPU (and, estimated from them, how many
 * consoles one core could keep at full line speed), and latency, two ways:
 *  - echo round trip: a probe types a short unique marker and waits for the serial line's echo,
 *    WS client -> console service -> SOL -> serial line (echo) -> SOL -> console service -> WS
 *    client; a round trip, so at most twice the one-way latency, on an idle fleet and while all
 *    stream;
 *  - one way: every streamed line starts with CLOCK_MONOTONIC of the moment the simulated serial
 *    line sent it (src/sim/serial.ts); its age on arrival here is the latency from serial byte to
 *    WebSocket client (same host, same clock).
 * Both include the simulated BMC's and this process's share of a busy machine. Reference in the
 * same run: the same measurements through `ipmitool -I lanplus -C 17 sol activate` (pipes as
 * stdin and stdout) on a few extra machines of the same fleet, streaming too. The console service
 * runs compiled (see benchChildEntry); the fleet and the clients run under tsx.
 *
 * Usage: npm run bench -- console-streaming [N] (N consoles, default 500).
 * BENCH_CONSOLE_PROTOCOL=auto connects as the daemon does by default (Redfish probe and vendor
 * detection first, the fleet then serves Redfish too); the default here is ipmi.
 * BENCH_CHILD_NODE_ARGS passes node options to the children (e.g. --cpu-prof).
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import type { ChildProcess } from 'node:child_process';
import { chassisControl } from '../src/ipmi/commands.js';
import { openSession } from '../src/ipmi/session.js';
import { createPki } from '../src/lab/pki.js';
import { mapLimit } from '../src/report/limit.js';
import type { ConsoleServerStats } from './console-server-process.js';
import { benchChildEntry, startConsoleServerProcess, type ConsoleServerProcess } from './console-server-run.js';
import { openWsConsole, probeLoop, PROBE_TIMEOUT_MS, sleep, startIpmitoolSol, within, type IpmitoolConsole, type WsConsole } from './console-terminal.js';
import { procUsage, startFleetProcess, type FleetProcess } from './fleet-process.js';
import { latency, spread } from './report.js';
import { begin, type Recorder } from './results.js';

/** machines beyond N, for the ipmitool reference (each BMC has one SOL payload) */
const REFERENCE_CONSOLES = 3;
/** consoles that run latency probes while all stream */
const PROBED_CONSOLES = 20;
/** consoles whose streamed lines are timed one way (serial line stamp -> arrival here) */
const STAMPED_CONSOLES = 50;
const IDLE_PROBE_SECONDS = 4;
const WARM_UP_SECONDS = 3;
const WINDOW_SECONDS = 15;
/** the whole run, everything included */
const RUN_DEADLINE_MS = 240_000;
/** what a streaming line emits: 115200 baud, 8N1 */
const LINE_BYTES_PER_SECOND = 11_520;

type Usage = ReturnType<typeof procUsage>;
type ProbeResult = Awaited<ReturnType<typeof probeLoop>>;
interface UsageSnapshot {
  server: Usage;
  fleet: ReturnType<FleetProcess['usage']>;
  self: NodeJS.CpuUsage;
}
interface SerialCounters {
  outputBytes: number;
  streaming: number;
  activeSol: number;
}

/** What every phase works on: the fleet, the console process, and the terminals of both sides. */
interface Run {
  n: number;
  fleet: FleetProcess;
  server: ConsoleServerProcess;
  serverPid: number;
  consoles: WsConsole[];
  references: IpmitoolConsole[];
}

/** `count` terminals spread evenly over `consoles` */
function spreadOver<T>(consoles: readonly T[], count: number): T[] {
  const k = Math.min(count, consoles.length);
  return Array.from({ length: k }, (_, i) => consoles[Math.floor((i * consoles.length) / k)]!);
}

/** 0. A quarter of the simulated machines start powered off, and a machine that is off prints nothing: power them on. Returns the cipher suite `auto` negotiates. */
async function prepareFleet(fleet: FleetProcess): Promise<number> {
  const off = ((await fleet.control('GET', '/machines')) as Array<{ address: string; power: string }>).filter((m) => m.power !== 'on');
  await mapLimit(off, 32, async ({ address }) => {
    const session = await openSession({ host: address, port: fleet.ipmiPort, user: fleet.user, password: fleet.password, cipherSuite: 17 });
    await chassisControl(session, 'up').finally(() => session.close());
  });
  await sleep(500); // their boot logs (about 700 bytes, 60 ms at 115200 baud)
  const probeSession = await openSession({ host: fleet.addresses[0]!, port: fleet.ipmiPort, user: fleet.user, password: fleet.password, cipherSuite: 'auto' });
  const negotiatedSuite = probeSession.cipherSuite;
  await probeSession.close();
  return negotiatedSuite;
}

interface Opened {
  failures: string[];
  openSeconds: number;
  connectedStats: ConsoleServerStats;
  connected: Usage;
}

/** 1. N consoles, all opened at once (each is open when the login prompt arrived), and the ipmitool references. */
async function openConsoles(run: Run, tls: { ca: Buffer; cert: Buffer; key: Buffer }): Promise<Opened> {
  const { n, fleet, server, consoles, references } = run;
  const openStart = performance.now();
  const failures: string[] = [];
  await mapLimit(fleet.addresses.slice(0, n), n, async (address, i) => {
    try {
      consoles.push(await openWsConsole(`wss://127.0.0.1:${server.wsPort}/v1/machine/${address}/console`, tls, `w${i}`));
    } catch (err) {
      failures.push((err as Error).message);
    }
  });
  const openSeconds = (performance.now() - openStart) / 1000;
  for (const address of fleet.addresses.slice(n)) references.push(startIpmitoolSol(fleet, address, `r${references.length}`));
  await within('ipmitool sol activate', 20_000, Promise.all(references.map((r) => r.term.prompt()))).catch((err: Error) => {
    throw new Error(`${err.message}: ${references.map((r) => `${r.term.bytes} bytes; ${r.stderr().trim()}`).join(' | ')}`);
  });
  await sleep(1000);
  return { failures, openSeconds, connectedStats: await server.stats(), connected: procUsage(run.serverPid) };
}

/** 2 and 3's probes: ours on the sampled consoles and the references', in parallel, until `untilMs`. */
async function probeBoth(run: Run, sample: WsConsole[], untilMs: number): Promise<{ ours: ProbeResult; ref: ProbeResult }> {
  const [ours, ref] = await Promise.all([
    probeLoop(
      sample.map((c) => c.term),
      untilMs,
    ),
    probeLoop(
      run.references.map((r) => r.term),
      untilMs,
    ),
  ]);
  return { ours, ref };
}

interface Streamed {
  load: { ours: ProbeResult; ref: ProbeResult };
  seconds: number;
  oneWayOurs: number[];
  oneWayRef: number[];
  u0: UsageSnapshot;
  u1: UsageSnapshot;
  serialAtStart: SerialCounters;
  serialAtEnd: SerialCounters;
  loadStats: ConsoleServerStats;
  rates: number[];
  refRates: number[];
  messages: number;
  streamedConsoles: number;
  droppedDuringLoad: WsConsole[];
}

/** 3. Every serial line streams; after a warm-up, a measured window with probes throughout. */
async function streamWindow(run: Run, sample: WsConsole[]): Promise<Streamed> {
  const { fleet, server, consoles, references } = run;
  await fleet.control('POST', '/serial', { select: 'all', stream: true });
  await sleep(WARM_UP_SECONDS * 1000);
  const aliveAtStart = consoles.filter((c) => !c.closedEarly);
  const bytesAtStart = consoles.map((c) => c.term.bytes);
  const messagesAtStart = consoles.map((c) => c.messages);
  const refBytesAtStart = references.map((r) => r.term.bytes);
  const serialAtStart = (await fleet.control('GET', '/serial')) as SerialCounters;
  const stamped = spreadOver(consoles, STAMPED_CONSOLES).map((c) => c.term);
  for (const term of [...stamped, ...references.map((r) => r.term)]) term.stamps = [];
  const u0 = { server: procUsage(run.serverPid), fleet: fleet.usage(), self: process.cpuUsage() };
  const t0 = performance.now();
  const load = await probeBoth(run, sample, t0 + WINDOW_SECONDS * 1000);
  const seconds = (performance.now() - t0) / 1000;
  const oneWayOurs = stamped.flatMap((t) => t.stamps!);
  const oneWayRef = references.flatMap((r) => r.term.stamps!);
  for (const term of [...stamped, ...references.map((r) => r.term)]) term.stamps = undefined;
  const u1 = { server: procUsage(run.serverPid), fleet: fleet.usage(), self: process.cpuUsage(u0.self) };
  const serialAtEnd = (await fleet.control('GET', '/serial')) as SerialCounters;
  const loadStats = await server.stats();
  const rates = consoles.map((c, i) => (c.term.bytes - bytesAtStart[i]!) / seconds);
  const refRates = references.map((r, i) => (r.term.bytes - refBytesAtStart[i]!) / seconds);
  const messages = consoles.reduce((a, c, i) => a + c.messages - messagesAtStart[i]!, 0);
  const streamedConsoles = consoles.filter((c, i) => !c.closedEarly && rates[i]! > 0).length;
  const droppedDuringLoad = aliveAtStart.filter((c) => c.closedEarly);
  await fleet.control('POST', '/serial', { select: 'all', stream: false });
  return { load, seconds, oneWayOurs, oneWayRef, u0, u1, serialAtStart, serialAtEnd, loadStats, rates, refRates, messages, streamedConsoles, droppedDuringLoad };
}

interface Closed {
  closeSeconds: number;
  leftSessions: number;
  activeSol: number;
  refExit: Array<number | null> | undefined;
  closedStats: ConsoleServerStats;
  afterClose: Usage;
  serverCloseMs: number | undefined;
}

/** 4. Close everything: clients leave, the hub deactivates every SOL payload; then the console service closes gracefully. */
async function closeAll(run: Run): Promise<Closed> {
  const { fleet, server, consoles, references } = run;
  const closeStart = performance.now();
  for (const c of consoles) c.ws.close();
  await within(
    'clients closing',
    15_000,
    Promise.all(consoles.map((c) => c.closed)),
  ).catch(() => consoles.forEach((c) => c.ws.terminate()));
  for (const r of references) r.child.stdin?.write('\r~.');
  const refExit = await within('ipmitool ~.', 10_000, Promise.all(references.map((r) => r.exited))).catch(() => {
    references.forEach((r) => r.child.kill('SIGKILL'));
    return undefined;
  });
  let leftSessions = (await server.stats()).sessions;
  let activeSol = ((await fleet.control('GET', '/serial')) as { activeSol: number }).activeSol;
  for (let i = 0; i < 100 && (leftSessions > 0 || activeSol > 0); i++) {
    await sleep(100);
    leftSessions = (await server.stats()).sessions;
    activeSol = ((await fleet.control('GET', '/serial')) as { activeSol: number }).activeSol;
  }
  const closeSeconds = (performance.now() - closeStart) / 1000;
  await sleep(2000); // closed sockets and SOL streams let go of their buffers within a second or so
  const closedStats = await server.stats(true);
  const afterClose = procUsage(run.serverPid);
  const serverCloseMs = await server.close();
  return { closeSeconds, leftSessions, activeSol, refExit, closedStats, afterClose, serverCloseMs };
}

interface Phases {
  started: number;
  negotiatedSuite: number;
  base: Usage;
  baseStats: ConsoleServerStats;
  opened: Opened;
  idle: { ours: ProbeResult; ref: ProbeResult };
  streamed: Streamed;
  closed: Closed;
}

/** 5. Every figure, each beside its reference where there is one. */
function recordResults(out: Recorder, run: Run, p: Phases): void {
  const { n, consoles, references } = run;
  const { started, negotiatedSuite, base, baseStats } = p;
  const { failures, openSeconds, connectedStats, connected } = p.opened;
  const { seconds, oneWayOurs, oneWayRef, u0, u1, serialAtStart, serialAtEnd, loadStats, rates, refRates, messages, streamedConsoles, droppedDuringLoad } = p.streamed;
  const { closeSeconds, leftSessions, activeSol, refExit, closedStats, afterClose, serverCloseMs } = p.closed;
  const [idleOurs, idleRef, loadOurs, loadRef] = [p.idle.ours, p.idle.ref, p.streamed.load.ours, p.streamed.load.ref];
  const total = rates.reduce((a, b) => a + b, 0);
  const emitted = (serialAtEnd.outputBytes - serialAtStart.outputBytes) / seconds;
  const machines = n + REFERENCE_CONSOLES;
  const rateSpread = spread(rates);
  const meanRate = rateSpread?.mean ?? 0;
  const serverCpu = (u1.server.cpuSeconds - u0.server.cpuSeconds) / seconds;
  const measured = 'measured' as const;
  const path = `ours through the console process (${consoles.length} consoles in one) and a TLS WebSocket; ipmitool straight from SOL to a pipe, a process per console`;
  const probeSide = (name: string, p: { samples: number[]; timeouts: number }) => latency(name, { samples: p.samples, failures: p.timeouts });

  out.record({ name: 'IPMI cipher suite that auto negotiates with this fleet (same openSession as the console process)', value: negotiatedSuite, unit: '', kind: measured, detail: true });
  out.record({ name: 'consoles connected, all opened at once', value: consoles.length, unit: `of ${n}`, kind: measured, ...(failures.length ? { failures: failures.length } : {}) });
  out.record({ name: 'time to open them all', value: openSeconds, unit: 's', kind: measured, detail: true });
  out.record({ ...latency('WebSocket open to login prompt', { samples: consoles.map((c) => c.openMs), failures: failures.length }), unit: 'ms', detail: true });
  out.record({ name: `consoles that received output during the ${WINDOW_SECONDS} s window`, value: streamedConsoles, unit: `of ${n}`, kind: measured, ...(droppedDuringLoad.length ? { failures: droppedDuringLoad.length } : {}) });
  out.record({
    name: 'received per console while every line streams',
    value: meanRate,
    unit: 'B/s',
    stat: 'mean',
    ...(rateSpread ? { spread: rateSpread } : {}),
    kind: measured,
    reference: { name: `ipmitool sol activate on ${references.length} more machines of the fleet`, value: refRates.reduce((a, b) => a + b, 0) / Math.max(1, refRates.length), stat: 'mean', kind: measured },
    better: 'higher',
    differs: path,
  });
  out.record({ name: `received per console, share of the ${LINE_BYTES_PER_SECOND} B/s line speed`, value: (meanRate / LINE_BYTES_PER_SECOND) * 100, unit: '%', stat: 'mean', kind: measured });
  out.record({ name: `received in total over ${consoles.length} consoles`, value: total / 1e6, unit: 'MB/s', kind: measured, detail: true });
  out.record({ name: `emitted by the serial lines of all ${machines} machines`, value: emitted / 1e6, unit: 'MB/s', kind: measured, detail: true });
  out.record({ name: "share of their lines' output our consoles received", value: (total / ((emitted * n) / machines)) * 100, unit: '%', kind: measured, detail: true });
  if (messages > 0) out.record({ name: 'bytes per WebSocket message while streaming', value: (total * seconds) / messages, unit: 'B', stat: 'mean', kind: measured, detail: true });
  out.record({ name: 'console process RSS, started', value: base.rssMiB, unit: 'MiB', kind: measured, detail: true });
  out.record({ name: `console process RSS, ${connectedStats.sessions} consoles open`, value: connected.rssMiB, unit: 'MiB', kind: measured, detail: true });
  out.record({ name: 'console process RSS while streaming', value: u1.server.rssMiB, unit: 'MiB', kind: measured });
  out.record({ name: 'console process peak RSS', value: u1.server.peakRssMiB, unit: 'MiB', kind: measured, detail: true });
  out.record({ name: 'console process RSS 2 s after all closed', value: afterClose.rssMiB, unit: 'MiB', kind: measured, detail: true });
  out.record({ name: 'RSS per streaming console above the started process', value: ((u1.server.rssMiB - base.rssMiB) * 1024) / Math.max(1, loadStats.sessions), unit: 'KiB', kind: measured });
  out.record({ name: 'console process V8 heap, started (after a full GC)', value: baseStats.heapUsedMiB, unit: 'MiB', kind: measured, detail: true });
  out.record({ name: 'console process V8 heap while streaming', value: loadStats.heapUsedMiB, unit: 'MiB', kind: measured, detail: true });
  out.record({ name: 'console process V8 heap 2 s after all closed (after a full GC)', value: closedStats.heapUsedMiB, unit: 'MiB', kind: measured, detail: true });
  out.record({ name: 'console process Buffers, started', value: baseStats.arrayBuffersMiB, unit: 'MiB', kind: measured, detail: true });
  out.record({ name: 'console process Buffers while streaming', value: loadStats.arrayBuffersMiB, unit: 'MiB', kind: measured, detail: true });
  out.record({ name: 'console process Buffers 2 s after all closed', value: closedStats.arrayBuffersMiB, unit: 'MiB', kind: measured, detail: true });
  out.record({ name: `console process CPU while streaming (${cpus().length} cores in all)`, value: serverCpu * 100, unit: '% of a core', kind: measured });
  out.record({ name: 'simulated fleet CPU while streaming', value: ((u1.fleet.cpuSeconds - u0.fleet.cpuSeconds) / seconds) * 100, unit: '% of a core', kind: measured, detail: true });
  out.record({ name: 'WebSocket clients and probes (this process) CPU while streaming', value: ((u1.self.user + u1.self.system) / 1e6 / seconds) * 100, unit: '% of a core', kind: measured, detail: true });
  if (serverCpu > 0 && total > 0) {
    out.record({ name: 'console process CPU per MB/s delivered', value: (serverCpu * 100) / (total / 1e6), unit: '% of a core', kind: measured, detail: true });
    out.record({
      name: 'consoles one core could keep at full line speed',
      value: total / serverCpu / LINE_BYTES_PER_SECOND,
      unit: 'consoles',
      kind: 'estimated',
      basis: `bytes/s delivered / console process CPU share / ${LINE_BYTES_PER_SECOND} B/s, from this run; assumes CPU grows in proportion to bytes delivered, at this run's WebSocket message sizes`,
    });
  }
  out.record({ ...probeSide('echo round trip, idle fleet', idleOurs), unit: 'ms', reference: probeSide('ipmitool sol activate', idleRef), better: 'lower', differs: `${path}; a probe without echo within ${PROBE_TIMEOUT_MS / 1000} s counts as failed` });
  out.record({ ...probeSide('echo round trip while every line streams', loadOurs), unit: 'ms', reference: probeSide('ipmitool sol activate', loadRef), better: 'lower', differs: `${path}; a probe without echo within ${PROBE_TIMEOUT_MS / 1000} s counts as failed` });
  out.record({ ...latency('one way, serial line stamp -> client, while every line streams', { samples: oneWayOurs, failures: 0 }), unit: 'ms', reference: latency('ipmitool sol activate', { samples: oneWayRef, failures: 0 }), better: 'lower', differs: path });
  out.record({ name: 'close: until every client left and every SOL payload was deactivated', value: closeSeconds, unit: 's', kind: measured, detail: true });
  out.record({ name: 'close: hub sessions left', value: leftSessions, unit: '', kind: measured, detail: true });
  out.record({ name: 'close: active SOL payloads left on the fleet', value: activeSol, unit: '', kind: measured, detail: true });
  if (serverCloseMs !== undefined) out.record({ name: 'close: console service graceful close', value: serverCloseMs, unit: 'ms', kind: measured, detail: true });
  else out.note('console service graceful close timed out');
  out.note(`ipmitool exit codes after ~.: ${refExit ? refExit.join(', ') : 'killed'}`);
  if (failures.length) out.note(`first console that failed to open: ${failures[0]}`);
  if (droppedDuringLoad.length) out.note(`first console closed during the window: ${droppedDuringLoad[0]!.closeInfo}`);
  if (meanRate < 0.95 * LINE_BYTES_PER_SECOND) {
    out.note('our consoles received less than the line speed: output queues in each BMC\'s SOL buffer (the simulator keeps 64 KiB per payload, src/sim/sol-server.ts, then drops the oldest), so latencies under load measure that backlog');
  }
  out.record({ name: 'whole benchmark run', value: (performance.now() - started) / 1000, unit: 's', kind: measured, detail: true });
}

export async function benchConsoleStreaming(n = 500): Promise<void> {
  const protocol = process.env.BENCH_CONSOLE_PROTOCOL ?? 'ipmi';
  const out = begin('console-streaming', `serial console proxy: WebSocket consoles on the simulated fleet, every serial line streaming at 115200 baud (${LINE_BYTES_PER_SECOND} B/s)`, {
    consoles: n,
    protocol,
    ipmitoolConsoles: REFERENCE_CONSOLES,
    probedConsoles: Math.min(PROBED_CONSOLES, n),
    stampedConsoles: Math.min(STAMPED_CONSOLES, n),
    idleProbeSeconds: IDLE_PROBE_SECONDS,
    warmUpSeconds: WARM_UP_SECONDS,
    windowSeconds: WINDOW_SECONDS,
  });
  const children: ChildProcess[] = [];
  const killAll = () => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL'));
  const interrupted = () => {
    killAll();
    process.exit(130);
  };
  process.once('exit', killAll);
  process.once('SIGINT', interrupted);
  const watchdog = setTimeout(() => {
    console.error(`console-streaming: the run took longer than ${RUN_DEADLINE_MS / 1000} s; stopping every child`);
    killAll();
    process.exit(1);
  }, RUN_DEADLINE_MS);
  watchdog.unref();

  const started = performance.now();
  const [pki, entry] = await Promise.all([createPki(), benchChildEntry()]);
  const fleet = await startFleetProcess({ count: n + REFERENCE_CONSOLES, second: 14, redfish: protocol !== 'ipmi' });
  children.push(fleet.child);
  let server: ConsoleServerProcess | undefined;
  const consoles: WsConsole[] = [];
  const references: IpmitoolConsole[] = [];
  try {
    const negotiatedSuite = await prepareFleet(fleet);
    out.note(`console process: startConsoleServers + metalApiConsoleBackend -> connectOutband(protocol ${protocol}).openConsole({takeOver: true}) over IPMI SOL, ${entry.how}; WebSocket clients with client certificates`);
    server = await startConsoleServerProcess(fleet, pki, protocol, entry);
    children.push(server.child);
    const run: Run = { n, fleet, server, serverPid: server.child.pid!, consoles, references };
    await sleep(1000);
    const baseStats = await server.stats(true);
    const base = procUsage(run.serverPid);
    const tls = { ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) };

    const opened = await openConsoles(run, tls);
    const sample = spreadOver(consoles, PROBED_CONSOLES);
    const idle = await probeBoth(run, sample, performance.now() + IDLE_PROBE_SECONDS * 1000); // 2. round trips on an idle fleet (nothing streams)
    const streamed = await streamWindow(run, sample);
    const closed = await closeAll(run);
    recordResults(out, run, { started, negotiatedSuite, base, baseStats, opened, idle, streamed, closed });
  } finally {
    for (const c of consoles) c.ws.terminate();
    for (const r of references) if (r.child.exitCode === null) r.child.kill('SIGKILL');
    await server?.close();
    await fleet.stop();
    pki.remove();
    clearTimeout(watchdog);
    process.off('exit', killAll);
    process.off('SIGINT', interrupted);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchConsoleStreaming(Number(process.argv[2] ?? 500));
}
