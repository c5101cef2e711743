/**
 * Results of a benchmark run. Every figure a benchmark prints is recorded here first and printed
 * from the record, so the console output and the JSON file (`npm run bench -- --json FILE`) carry
 * the same data, and `npm run bench:table -- FILE` regenerates the README's table from that file.
 *
 * A figure is `measured` in this run, or `extrapolated` / `estimated` with the basis it was
 * derived from. A figure compared with a reference names how the work on the two sides differs
 * (`differs`) unless it is the same work, and counts failed items apart from its value.
 */
import { execFileSync } from 'node:child_process';
import { arch, cpus, loadavg, platform, release, totalmem } from 'node:os';

export type Kind = 'measured' | 'extrapolated' | 'estimated';
export const KINDS: readonly Kind[] = ['measured', 'extrapolated', 'estimated'];

/** Distribution of the samples behind a value (same unit as the value). */
export interface Spread {
  n: number;
  mean: number;
  p50: number;
  p99: number;
  min: number;
  max: number;
}

/** One side of a comparison: our figure, or the reference measured (or derived) in the same run. */
export interface Side {
  name: string;
  /** null when there is no value: every sample failed */
  value: number | null;
  kind: Kind;
  /** how a figure that was not measured was derived; required unless `kind` is measured */
  basis?: string;
  /** which statistic `value` is: 'p50', 'mean', 'total', ... */
  stat?: string;
  spread?: Spread;
  /** items that failed; not counted in `value` */
  failures?: number;
}

export interface Figure extends Side {
  bench: string;
  unit: string;
  reference?: Side;
  /** which direction is better; needed for a ratio */
  better?: 'lower' | 'higher';
  /** how many times better ours is than the reference (> 1: ours is better); derived, never typed in */
  ratio?: number;
  /** how the work on the two sides differs, when it does */
  differs?: string;
  /** printed and written to JSON, left out of the README table */
  detail?: boolean;
}

export type FigureInput = Omit<Figure, 'bench' | 'ratio'>;

export type Parameters = Record<string, string | number | boolean>;

export interface BenchResult {
  bench: string;
  title: string;
  parameters: Parameters;
  /** wall time of the whole benchmark, set by the runner */
  seconds?: number;
  /** why the benchmark stopped early */
  error?: string;
  figures: Figure[];
}

export interface Machine {
  cores: number;
  cpuModel: string;
  totalMemoryMiB: number;
  platform: string;
  arch: string;
  kernel: string;
  /** 1, 5 and 15 minute load averages when the run started: a busy machine skews every figure */
  loadAverage: number[];
}

export interface BenchRun {
  schema: 1;
  /** ISO 8601, when the run started */
  date: string;
  node: string;
  commit: string;
  /** the work tree had uncommitted changes */
  dirty: boolean;
  machine: Machine;
  /** the runner's arguments (benchmark selection and N) */
  args: string[];
  benchmarks: BenchResult[];
}

/** Throws a precise error when a figure breaks the rules; returns it with its ratio derived. */
export function checkFigure(bench: string, input: FigureInput): Figure {
  const where = `benchmark ${bench}, figure ${JSON.stringify(input.name)}`;
  const checkSide = (side: Side, label: string) => {
    if (typeof side.name !== 'string' || side.name.trim() === '') throw new Error(`${where}: ${label} has no name`);
    if (side.value !== null && !Number.isFinite(side.value)) throw new Error(`${where}: ${label} value ${side.value} is not a finite number`);
    if (!KINDS.includes(side.kind)) throw new Error(`${where}: ${label} kind ${JSON.stringify(side.kind)} is not one of ${KINDS.join(', ')}`);
    if (side.kind !== 'measured' && !side.basis?.trim()) throw new Error(`${where}: ${label} is ${side.kind} but names no basis`);
    if (side.failures !== undefined && !(Number.isInteger(side.failures) && side.failures >= 0)) throw new Error(`${where}: ${label} failures ${side.failures} is not a count`);
    if (side.value === null && !side.failures) throw new Error(`${where}: ${label} has no value and no failures to explain it`);
    if (side.spread) {
      const s = side.spread;
      if (!(Number.isInteger(s.n) && s.n > 0)) throw new Error(`${where}: ${label} spread has n ${s.n}`);
      for (const k of ['mean', 'p50', 'p99', 'min', 'max'] as const) if (!Number.isFinite(s[k])) throw new Error(`${where}: ${label} spread ${k} is ${s[k]}`);
    }
  };
  checkSide(input, 'our side');
  if (typeof input.unit !== 'string') throw new Error(`${where}: no unit`);
  // only the known fields: a ratio, for one, is derived here and never taken from the input
  const figure: Figure = {
    bench,
    ...sideOnly(input),
    unit: input.unit,
    ...(input.better !== undefined ? { better: input.better } : {}),
    ...(input.differs !== undefined ? { differs: input.differs } : {}),
    ...(input.detail !== undefined ? { detail: input.detail } : {}),
  };
  if (input.reference) {
    checkSide(input.reference, 'reference');
    figure.reference = sideOnly(input.reference);
    if (!input.better) throw new Error(`${where}: a reference needs \`better\` ('lower' or 'higher') to give a ratio`);
    const ratio = ratioOf(input.value, input.reference.value, input.better);
    if (ratio !== undefined) figure.ratio = ratio;
  }
  return figure;
}

/** Only the fields of a side (a reference built from a figure-shaped object carries no unit). */
function sideOnly(s: Side): Side {
  return {
    name: s.name,
    value: s.value,
    kind: s.kind,
    ...(s.basis !== undefined ? { basis: s.basis } : {}),
    ...(s.stat !== undefined ? { stat: s.stat } : {}),
    ...(s.spread !== undefined ? { spread: s.spread } : {}),
    ...(s.failures !== undefined ? { failures: s.failures } : {}),
  };
}

/** How many times better `ours` is than `reference`; undefined when either is missing or not positive. */
export function ratioOf(ours: number | null, reference: number | null, better: 'lower' | 'higher'): number | undefined {
  if (ours === null || reference === null || !(ours > 0) || !(reference > 0)) return undefined;
  return better === 'lower' ? reference / ours : ours / reference;
}

/** The kind of a ratio: as weak as its weaker side. */
export function ratioKind(f: Figure): Kind {
  const kinds = [f.kind, f.reference?.kind ?? 'measured'];
  return kinds.includes('estimated') ? 'estimated' : kinds.includes('extrapolated') ? 'extrapolated' : 'measured';
}

const TIME_UNITS = new Set(['ns', 'µs', 'ms', 's', 'min']);
const MEMORY_UNITS = new Set(['B', 'KiB', 'MiB', 'GiB']);

/** Words for "better" and "worse" by unit. */
function ratioWords(unit: string, better: 'lower' | 'higher'): [string, string] {
  if (TIME_UNITS.has(unit) || unit.endsWith('/s')) return ['faster', 'slower'];
  if (MEMORY_UNITS.has(unit)) return better === 'lower' ? ['less', 'more'] : ['more', 'less'];
  return better === 'lower' ? ['lower', 'higher'] : ['higher', 'lower'];
}

export function formatRatio(f: Figure): string | undefined {
  if (f.ratio === undefined || !f.better) return undefined;
  const [good, bad] = ratioWords(f.unit, f.better);
  const times = (x: number) => (x >= 10 ? x.toFixed(0) : x.toFixed(1));
  const factor = f.ratio >= 1 ? f.ratio : 1 / f.ratio;
  if (factor < 1.05) return 'about equal';
  return f.ratio >= 1 ? `${times(factor)}x ${good}` : `${times(factor)}x ${bad}`;
}

/** Three significant digits or so: 0.152, 1.52, 15.2, 152, 15,200; counts as they are. */
export function formatNumber(v: number): string {
  const a = Math.abs(v);
  if (Number.isInteger(v) || a >= 1000) return Math.round(v).toLocaleString('en-US');
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return Number(v.toPrecision(3)).toString();
}

const withUnit = (v: number, unit: string) => (unit === '' ? formatNumber(v) : `${formatNumber(v)} ${unit}`);

/** "0.152 ms mean (p50 0.14, p99 0.3, n 200); 2 failed, not counted"; a p50 shows the mean beside it */
export function formatSide(side: Side, unit: string): string {
  const stat = side.stat;
  let text = side.value === null ? 'no value' : withUnit(side.value, unit) + (stat ? ` ${stat}` : '');
  const s = side.spread;
  if (s) text += ` (${stat === 'p50' ? `mean ${formatNumber(s.mean)}` : `p50 ${formatNumber(s.p50)}`}, p99 ${formatNumber(s.p99)}, n ${s.n})`;
  if (side.failures) text += `; ${side.failures} failed, not counted`;
  return text;
}

/** "measured", or "extrapolated: <basis>" */
export function formatKind(side: Side): string {
  return side.kind === 'measured' ? 'measured' : `${side.kind}: ${side.basis}`;
}

/** The console lines of one figure. */
export function formatFigure(f: Figure): string[] {
  const lines = [`  ${f.name}: ${formatSide(f, f.unit)}${f.kind === 'measured' ? '' : ` [${formatKind(f)}]`}`];
  if (f.reference) {
    const r = f.reference;
    const ratio = formatRatio(f);
    lines.push(`      vs ${r.name}: ${formatSide(r, f.unit)}${r.kind === 'measured' ? '' : ` [${formatKind(r)}]`}${ratio ? ` -> ${ratio}${ratioKind(f) === 'measured' ? '' : ` (${ratioKind(f)})`}` : ''}`);
  }
  if (f.differs) lines.push(`      work differs: ${f.differs}`);
  return lines;
}

export function formatHeader(r: Pick<BenchResult, 'bench' | 'title' | 'parameters'>): string[] {
  const params = Object.entries(r.parameters).map(([k, v]) => `${k}=${v}`);
  return [``, `== ${r.bench}: ${r.title}`, ...(params.length ? [`   parameters: ${params.join(' ')}`] : [])];
}

/** Records the figures of one benchmark and prints each as it comes. */
export class Recorder {
  constructor(
    readonly result: BenchResult,
    private readonly print: (line: string) => void,
  ) {}

  record(input: FigureInput): Figure {
    const figure = checkFigure(this.result.bench, input);
    this.result.figures.push(figure);
    for (const line of formatFigure(figure)) this.print(line);
    return figure;
  }

  /** A printed line that is not a figure (what was set up, what to read into a result). Put no numbers in it that are not parameters. */
  note(text: string): void {
    this.print(`  (${text})`);
  }
}

/** All benchmarks of one run. */
export class Collector {
  readonly results: BenchResult[] = [];
  private expected: string | undefined;
  private last: Recorder | undefined;

  constructor(private readonly print: (line: string) => void = (line) => console.log(line)) {}

  begin(bench: string, title: string, parameters: Parameters = {}): Recorder {
    const result: BenchResult = { bench, title, parameters, figures: [] };
    this.results.push(result);
    this.last = new Recorder(result, this.print);
    this.expected = undefined;
    for (const line of formatHeader(result)) this.print(line);
    return this.last;
  }

  /** The runner names the benchmark it is about to run, for benchmarks that record without `begin`. */
  expect(bench: string): void {
    this.expected = bench;
    this.last = undefined;
  }

  /** The recorder of the running benchmark; begins one titled `title` when it has not begun. */
  current(title: string): Recorder {
    return this.last ?? this.begin(this.expected ?? title, title);
  }

  /** Results recorded under `bench` in this run. */
  of(bench: string): BenchResult[] {
    return this.results.filter((r) => r.bench === bench);
  }
}

export const collector = new Collector();

/** Starts a benchmark's section of the run: its name (as registered in bench/run.ts), a title and its parameters. */
export function begin(bench: string, title: string, parameters: Parameters = {}): Recorder {
  return collector.begin(bench, title, parameters);
}

/** The machine, runtime and commit of a run starting now, with no benchmarks yet. */
export function newRun(args: string[], cwd: string): BenchRun {
  const git = (gitArgs: string[]) => {
    try {
      return execFileSync('git', gitArgs, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return undefined;
    }
  };
  const cores = cpus();
  return {
    schema: 1,
    date: new Date().toISOString(),
    node: process.version,
    commit: git(['rev-parse', 'HEAD']) ?? 'unknown',
    dirty: (git(['status', '--porcelain', '--untracked-files=no']) ?? '') !== '',
    machine: {
      cores: cores.length,
      cpuModel: cores[0]?.model.trim() ?? 'unknown',
      totalMemoryMiB: Math.round(totalmem() / 2 ** 20),
      platform: platform(),
      arch: arch(),
      kernel: release(),
      loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
    },
    args,
    benchmarks: [],
  };
}

// ---- reading a results file back -------------------------------------------------------------

function fail(path: string, what: string): never {
  throw new Error(`bench results: ${path} ${what}`);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function str(o: Record<string, unknown>, key: string, path: string): string {
  const v = o[key];
  if (typeof v !== 'string') fail(`${path}.${key}`, 'is not a string');
  return v;
}

function num(o: Record<string, unknown>, key: string, path: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(`${path}.${key}`, 'is not a number');
  return v;
}

function optional<T>(o: Record<string, unknown>, key: string, read: () => T): { [k: string]: T } {
  return o[key] === undefined ? {} : { [key]: read() };
}

function parseSpread(v: unknown, path: string): Spread {
  if (!isObject(v)) fail(path, 'is not an object');
  return { n: num(v, 'n', path), mean: num(v, 'mean', path), p50: num(v, 'p50', path), p99: num(v, 'p99', path), min: num(v, 'min', path), max: num(v, 'max', path) };
}

function parseSide(v: Record<string, unknown>, path: string): Side {
  const kind = str(v, 'kind', path) as Kind;
  if (!KINDS.includes(kind)) fail(`${path}.kind`, `is ${JSON.stringify(kind)}, not one of ${KINDS.join(', ')}`);
  if (v.value !== null) num(v, 'value', path);
  return {
    name: str(v, 'name', path),
    value: v.value as number | null,
    kind,
    ...optional(v, 'basis', () => str(v, 'basis', path)),
    ...optional(v, 'stat', () => str(v, 'stat', path)),
    ...optional(v, 'spread', () => parseSpread(v.spread, `${path}.spread`)),
    ...optional(v, 'failures', () => num(v, 'failures', path)),
  };
}

function parseFigure(v: unknown, path: string): Figure {
  if (!isObject(v)) fail(path, 'is not an object');
  const better = v.better;
  if (better !== undefined && better !== 'lower' && better !== 'higher') fail(`${path}.better`, "is neither 'lower' nor 'higher'");
  const input: FigureInput = {
    ...parseSide(v, path),
    unit: str(v, 'unit', path),
    ...optional(v, 'reference', () => (isObject(v.reference) ? parseSide(v.reference, `${path}.reference`) : fail(`${path}.reference`, 'is not an object'))),
    ...(better ? { better } : {}),
    ...optional(v, 'differs', () => str(v, 'differs', path)),
    ...optional(v, 'detail', () => (typeof v.detail === 'boolean' ? v.detail : fail(`${path}.detail`, 'is not a boolean'))),
  };
  // the same rules as when it was recorded; the ratio is derived again, not trusted
  try {
    return checkFigure(str(v, 'bench', path), input);
  } catch (err) {
    return fail(path, (err as Error).message);
  }
}

function parseParameters(v: unknown, path: string): Parameters {
  if (!isObject(v)) fail(path, 'is not an object');
  for (const [k, x] of Object.entries(v)) if (!['string', 'number', 'boolean'].includes(typeof x)) fail(`${path}.${k}`, 'is not a string, number or boolean');
  return v as Parameters;
}

function parseBench(v: unknown, path: string): BenchResult {
  if (!isObject(v)) fail(path, 'is not an object');
  if (!Array.isArray(v.figures)) fail(`${path}.figures`, 'is not a list');
  return {
    bench: str(v, 'bench', path),
    title: str(v, 'title', path),
    parameters: parseParameters(v.parameters, `${path}.parameters`),
    ...optional(v, 'seconds', () => num(v, 'seconds', path)),
    ...optional(v, 'error', () => str(v, 'error', path)),
    figures: v.figures.map((f, i) => parseFigure(f, `${path}.figures[${i}]`)),
  };
}

/** Validates a parsed results file; throws naming the first field that is wrong. */
export function parseRun(v: unknown): BenchRun {
  if (!isObject(v)) fail('(top level)', 'is not an object');
  if (v.schema !== 1) fail('schema', `is ${JSON.stringify(v.schema)}, expected 1`);
  const m = v.machine;
  if (!isObject(m)) fail('machine', 'is not an object');
  if (!Array.isArray(m.loadAverage) || !m.loadAverage.every((x) => typeof x === 'number')) fail('machine.loadAverage', 'is not a list of numbers');
  if (!Array.isArray(v.args) || !v.args.every((x) => typeof x === 'string')) fail('args', 'is not a list of strings');
  if (!Array.isArray(v.benchmarks)) fail('benchmarks', 'is not a list');
  if (typeof v.dirty !== 'boolean') fail('dirty', 'is not a boolean');
  return {
    schema: 1,
    date: str(v, 'date', 'run'),
    node: str(v, 'node', 'run'),
    commit: str(v, 'commit', 'run'),
    dirty: v.dirty,
    machine: {
      cores: num(m, 'cores', 'machine'),
      cpuModel: str(m, 'cpuModel', 'machine'),
      totalMemoryMiB: num(m, 'totalMemoryMiB', 'machine'),
      platform: str(m, 'platform', 'machine'),
      arch: str(m, 'arch', 'machine'),
      kernel: str(m, 'kernel', 'machine'),
      loadAverage: m.loadAverage as number[],
    },
    args: v.args as string[],
    benchmarks: v.benchmarks.map((b, i) => parseBench(b, `benchmarks[${i}]`)),
  };
}
