/**
 * A latency model for the simulated fleet, so benchmarks and tests can reproduce a real
 * partition: per protocol a log-normal distribution of answer delays fitted to its p50 and p99
 * (`redfish=p50:150ms,p99:2s ipmi=p50:5ms,p99:50ms`), plus a share of the fleet that is slow
 * (every answer takes a uniform draw from `slow=3%:2s-5s`) and a share that is dead (`dead=2%`:
 * accepts, never answers). Deterministic from the seed: which machines are slow or dead is a
 * ranking of machines by a hash of (seed, index), exactly ⌈share·N⌉ of them; each machine draws
 * its delays from its own seeded PRNG (mulberry32), so one machine's draws do not depend on how
 * the requests of the others interleave.
 *
 * Each machine also keeps a bounded log of the start times of the requests it received
 * (`RequestLog`), so tests can show which requests of one client overlapped.
 */
import { createHash } from 'node:crypto';
import { BmcError } from '../errors.js';
import { parseGoDuration } from '../config/duration.js';

export type SimProtocol = 'redfish' | 'ipmi';

export interface LatencyDistribution {
  p50Ms: number;
  p99Ms: number;
}

export interface LatencyModel {
  redfish?: LatencyDistribution;
  ipmi?: LatencyDistribution;
  /** share of the fleet (0..1) whose every answer takes `slowMs` */
  slowShare?: number;
  /** uniform range of a slow machine's delay per answer, ms */
  slowMs?: readonly [number, number];
  /** share of the fleet (0..1) that never answers */
  deadShare?: number;
}

export type MachineFate = 'live' | 'slow' | 'dead';

/** z of the 99th percentile of the standard normal distribution */
const Z99 = 2.3263478740408408;
const DEFAULT_SLOW_MS: readonly [number, number] = [2000, 5000];

function fail(message: string): never {
  throw new BmcError('INVALID_ARGUMENT', `latency model: ${message}`);
}

function duration(text: string, what: string): number {
  let ms: number;
  try {
    ms = parseGoDuration(text);
  } catch (err) {
    return fail(`${what}: ${(err as Error).message}`);
  }
  if (!(ms >= 0)) fail(`${what} must not be negative, got ${text}`);
  return ms;
}

function share(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(%?)$/.exec(text);
  const value = m ? Number(m[1]) / (m[2] === '%' ? 100 : 1) : NaN;
  if (!(value >= 0 && value <= 1)) fail(`${what} must be a share 0..1 or a percentage, got ${JSON.stringify(text)}`);
  return value;
}

export function checkDistribution(d: LatencyDistribution, what: string): LatencyDistribution {
  if (!(Number.isFinite(d.p50Ms) && d.p50Ms >= 0 && Number.isFinite(d.p99Ms) && d.p99Ms >= d.p50Ms)) fail(`${what}: needs 0 <= p50 <= p99, got p50 ${d.p50Ms} ms, p99 ${d.p99Ms} ms`);
  return d;
}

export function checkModel(m: LatencyModel): LatencyModel {
  if (m.redfish) checkDistribution(m.redfish, 'redfish');
  if (m.ipmi) checkDistribution(m.ipmi, 'ipmi');
  for (const [name, v] of [['slowShare', m.slowShare], ['deadShare', m.deadShare]] as const) {
    if (v !== undefined && !(v >= 0 && v <= 1)) fail(`${name} must be 0..1, got ${v}`);
  }
  if ((m.slowShare ?? 0) + (m.deadShare ?? 0) > 1) fail('slowShare + deadShare exceed the fleet');
  if (m.slowMs && !(m.slowMs[0] >= 0 && m.slowMs[1] >= m.slowMs[0])) fail(`slowMs must be a range min <= max, got ${m.slowMs.join('-')}`);
  return m;
}

/**
 * `redfish=p50:150ms,p99:2s ipmi=p50:5ms,p99:50ms slow=3%:2s-5s dead=2%` (parts separated by
 * blanks, each optional; a distribution needs both percentiles).
 */
export function parseLatencySpec(spec: string): LatencyModel {
  const model: LatencyModel = {};
  for (const part of spec.trim().split(/\s+/).filter((p) => p !== '')) {
    const eq = part.indexOf('=');
    if (eq < 0) fail(`${JSON.stringify(part)} is not name=value`);
    const name = part.slice(0, eq);
    const value = part.slice(eq + 1);
    if (name === 'redfish' || name === 'ipmi') {
      const fields = new Map(value.split(',').map((f) => [f.split(':')[0], f.split(':')[1] ?? ''] as const));
      const p50 = fields.get('p50');
      const p99 = fields.get('p99');
      if (p50 === undefined || p99 === undefined || fields.size !== 2) fail(`${name} needs p50:DURATION,p99:DURATION, got ${JSON.stringify(value)}`);
      model[name] = checkDistribution({ p50Ms: duration(p50, `${name} p50`), p99Ms: duration(p99, `${name} p99`) }, name);
    } else if (name === 'slow') {
      const [s, range] = value.split(':');
      model.slowShare = share(s ?? '', 'slow');
      if (range !== undefined) {
        const [lo, hi] = range.split('-');
        model.slowMs = [duration(lo ?? '', 'slow min'), duration(hi ?? lo ?? '', 'slow max')];
      }
    } else if (name === 'dead') {
      model.deadShare = share(value, 'dead');
    } else {
      fail(`unknown part ${JSON.stringify(name)} (known: redfish, ipmi, slow, dead)`);
    }
  }
  return checkModel(model);
}

function hash32(seed: string, index: number, what: string): number {
  return createHash('sha256').update(`${seed}/${index}/${what}`).digest().readUInt32BE(0);
}

/** mulberry32: a small, fast PRNG with a 32-bit state; uniform in [0, 1). */
export function mulberry32(state: number): () => number {
  let a = state >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Which machines of a fleet of `n` are dead and which slow: exactly ⌈share·n⌉ each, by a seeded ranking. */
export function assignFates(n: number, seed: string, model: Pick<LatencyModel, 'slowShare' | 'deadShare'>): MachineFate[] {
  const dead = Math.ceil((model.deadShare ?? 0) * n - 1e-9);
  const slow = Math.min(n - dead, Math.ceil((model.slowShare ?? 0) * n - 1e-9));
  const ranked = Array.from({ length: n }, (_, i) => i).sort((a, b) => hash32(seed, a, 'fate') - hash32(seed, b, 'fate') || a - b);
  const fates = new Array<MachineFate>(n).fill('live');
  ranked.forEach((machine, rank) => {
    if (rank < dead) fates[machine] = 'dead';
    else if (rank < dead + slow) fates[machine] = 'slow';
  });
  return fates;
}

/** The delay of one answer drawn from the log-normal with this p50 and p99. */
export function logNormalMs(d: LatencyDistribution, random: () => number): number {
  if (d.p50Ms === 0) return 0;
  const sigma = (Math.log(Math.max(d.p99Ms, d.p50Ms)) - Math.log(d.p50Ms)) / Z99;
  // Box-Muller; 1 - u keeps the logarithm finite
  const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return d.p50Ms * Math.exp(sigma * z);
}

/** One request as the simulated BMC saw it arrive. */
export interface RequestRecord {
  protocol: SimProtocol;
  /** HTTP method and path for Redfish; "datagram" for IPMI */
  what: string;
  /** performance.now() of the simulator process when the request arrived */
  atMs: number;
}

/** The last `max` requests of one machine. */
export class RequestLog {
  readonly records: RequestRecord[] = [];
  constructor(private readonly max = 512) {}
  add(record: RequestRecord): void {
    if (this.records.length >= this.max) this.records.shift();
    this.records.push(record);
  }
}

/** A machine's latency: its fate, its PRNG, and the delay of each next answer. */
export class MachineLatency {
  private readonly random: () => number;
  constructor(
    readonly fate: MachineFate,
    private readonly model: LatencyModel,
    seed: string,
    index: number,
  ) {
    this.random = mulberry32(hash32(seed, index, 'latency'));
  }

  /** ms before the next answer over `protocol`, or 'never' for a dead machine */
  nextDelay(protocol: SimProtocol): number | 'never' {
    if (this.fate === 'dead') return 'never';
    if (this.fate === 'slow') {
      const [lo, hi] = this.model.slowMs ?? DEFAULT_SLOW_MS;
      return lo + (hi - lo) * this.random();
    }
    const d = this.model[protocol];
    return d ? logNormalMs(d, this.random) : 0;
  }
}

/** Per machine: its latency (when a model is set) and its request log (when recording). */
export interface SimTiming {
  latency?: MachineLatency;
  log?: RequestLog;
}

/** Notes a request's arrival in the machine's log, when it keeps one. */
export function recordRequest(timing: SimTiming | undefined, protocol: SimProtocol, what: string): void {
  timing?.log?.add({ protocol, what, atMs: performance.now() });
}

/** ms before the machine answers over `protocol` (0 without a model), or 'never'. */
export function answerDelay(timing: SimTiming | undefined, protocol: SimProtocol): number | 'never' {
  return timing?.latency?.nextDelay(protocol) ?? 0;
}

/** A model for every machine of a fleet (or none: `undefined` clears it). */
export function timingsFor(n: number, seed: string, model: LatencyModel | undefined, record: boolean, previous: readonly (SimTiming | undefined)[] = []): SimTiming[] {
  const fates = model ? assignFates(n, seed, model) : [];
  return Array.from({ length: n }, (_, i) => ({
    ...(model ? { latency: new MachineLatency(fates[i]!, model, seed, i) } : {}),
    ...(record ? { log: previous[i]?.log ?? new RequestLog() } : {}),
  }));
}
