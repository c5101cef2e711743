import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BEGIN, END, cell, renderTable, renderTables, replaceBetweenMarkers } from '../../bench/readme-table.js';
import { printTable, stats } from '../../bench/report.js';
import { checkFigure, Collector, formatFigure, formatNumber, formatRatio, parseRun, ratioOf, type BenchRun, type FigureInput, type Kind, type Side } from '../../bench/results.js';

const MACHINE = { cores: 2, cpuModel: 'AMD EPYC', totalMemoryMiB: 24105, platform: 'linux', arch: 'x64', kernel: '6.1.0', loadAverage: [0.5, 0.4, 0.3] };

function runOf(benchmarks: BenchRun['benchmarks']): BenchRun {
  return { schema: 1, date: '2026-12-02T16:00:00.000Z', node: 'v20.20.2', commit: 'e04e57a7132c62eaf34d2929e225bd596f020232', dirty: false, machine: MACHINE, args: [], benchmarks };
}

const positive = fc.double({ min: 1e-6, max: 1e9, noNaN: true, noDefaultInfinity: true });
const kind = fc.constantFrom<Kind>('measured', 'extrapolated', 'estimated');
const text = fc.string({ minLength: 1, maxLength: 40 }).filter((s) => s.trim() !== '');

const side: fc.Arbitrary<Side> = fc
  .record({
    name: text,
    value: fc.option(positive, { nil: null }),
    kind,
    basis: text,
    failures: fc.nat({ max: 1000 }),
    stat: fc.option(fc.constantFrom('p50', 'mean', 'total'), { nil: undefined }),
  })
  .map(({ name, value, kind: k, basis, failures, stat }) => ({
    name,
    value,
    kind: k,
    ...(k === 'measured' ? {} : { basis }),
    // a side without a value says how many items failed
    ...(value === null ? { failures: failures + 1 } : failures > 0 ? { failures } : {}),
    ...(stat ? { stat } : {}),
  }));

const figureInput: fc.Arbitrary<FigureInput> = fc
  .record({
    ours: side,
    unit: fc.constantFrom('ms', 's', 'MiB', 'BMCs/s', '% of a core', ''),
    reference: fc.option(side, { nil: undefined }),
    better: fc.constantFrom<'lower' | 'higher'>('lower', 'higher'),
    differs: fc.option(text, { nil: undefined }),
    detail: fc.boolean(),
  })
  .map(({ ours, unit, reference, better, differs, detail }) => ({
    ...ours,
    unit,
    ...(reference ? { reference, better } : {}),
    ...(differs ? { differs } : {}),
    ...(detail ? { detail } : {}),
  }));

describe('checkFigure', () => {
  it('refuses a figure that is extrapolated or estimated without a basis', () => {
    expect(() => checkFigure('b', { name: 'ipmi_sim for 1,000 BMCs', value: 5.9, unit: 'GiB', kind: 'extrapolated' })).toThrow(/"ipmi_sim for 1,000 BMCs".*extrapolated but names no basis/);
    expect(() => checkFigure('b', { name: 'x', value: 1, unit: 's', kind: 'measured', reference: { name: 'ref', value: 2, kind: 'estimated', basis: ' ' }, better: 'lower' })).toThrow(/reference is estimated but names no basis/);
  });

  it('refuses values that are not numbers, and a missing value without failures', () => {
    expect(() => checkFigure('b', { name: 'x', value: NaN, unit: 'ms', kind: 'measured' })).toThrow(/not a finite number/);
    expect(() => checkFigure('b', { name: 'x', value: Infinity, unit: 'ms', kind: 'measured' })).toThrow(/not a finite number/);
    expect(() => checkFigure('b', { name: 'x', value: null, unit: 'ms', kind: 'measured' })).toThrow(/no value and no failures/);
    expect(() => checkFigure('b', { name: 'x', value: 1, unit: 'ms', kind: 'measured', failures: 1.5 })).toThrow(/not a count/);
    expect(checkFigure('b', { name: 'x', value: null, unit: 'ms', kind: 'measured', failures: 3 }).value).toBeNull();
  });

  it('needs a direction to compare with a reference, and derives the ratio itself', () => {
    expect(() => checkFigure('b', { name: 'x', value: 1, unit: 'ms', kind: 'measured', reference: { name: 'ref', value: 2, kind: 'measured' } })).toThrow(/needs `better`/);
    const f = checkFigure('b', { name: 'x', value: 0.5, unit: 'ms', kind: 'measured', reference: { name: 'ipmitool', value: 40, kind: 'measured' }, better: 'lower' });
    expect(f.ratio).toBe(80);
    expect(formatRatio(f)).toBe('80x faster');
    const slower = checkFigure('b', { name: 'x', value: 0.87, unit: 'ms', kind: 'measured', reference: { name: 'ipmitool', value: 0.65, kind: 'measured' }, better: 'lower' });
    expect(formatRatio(slower)).toBe('1.3x slower');
    const memory = checkFigure('b', { name: 'x', value: 160, unit: 'KiB', kind: 'measured', reference: { name: 'ipmi_sim', value: 6000, kind: 'measured' }, better: 'lower' });
    expect(formatRatio(memory)).toBe('38x less');
    const same = checkFigure('b', { name: 'x', value: 11_742, unit: 'B/s', kind: 'measured', reference: { name: 'ipmitool', value: 11_565, kind: 'measured' }, better: 'higher' });
    expect(formatRatio(same)).toBe('about equal');
  });

  it('takes no ratio from the input', () => {
    const typedIn = { name: 'x', value: 1, unit: 'ms', kind: 'measured' as const, ratio: 278 };
    expect(checkFigure('b', typedIn).ratio).toBeUndefined();
    expect(checkFigure('b', { ...typedIn, reference: { name: 'r', value: 3, kind: 'measured' }, better: 'lower' }).ratio).toBe(3);
  });

  it('keeps only the fields of a side in the reference (a figure-shaped object passed as reference)', () => {
    const reference = { name: 'ref', value: 2, kind: 'measured' as const, stat: 'p50', unit: 'ms', detail: true };
    const f = checkFigure('b', { name: 'x', value: 1, unit: 'ms', kind: 'measured', reference, better: 'lower' });
    expect(f.reference).toEqual({ name: 'ref', value: 2, kind: 'measured', stat: 'p50' });
  });

  it('ratio: > 1 exactly when ours is better, and the two directions are reciprocal', () => {
    fc.assert(
      fc.property(positive, positive, (ours, ref) => {
        const lower = ratioOf(ours, ref, 'lower')!;
        const higher = ratioOf(ours, ref, 'higher')!;
        expect(lower * higher).toBeCloseTo(1, 9);
        if (ours < ref) expect(lower).toBeGreaterThan(1);
        if (ours > ref) expect(higher).toBeGreaterThan(1);
        const f = checkFigure('b', { name: 'x', value: ours, unit: 'ms', kind: 'measured', reference: { name: 'r', value: ref, kind: 'measured' }, better: 'lower' });
        expect(formatRatio(f)).toMatch(Math.max(ours / ref, ref / ours) < 1.05 ? /^about equal$/ : ours < ref ? /faster$/ : /slower$/);
      }),
    );
    expect(ratioOf(null, 1, 'lower')).toBeUndefined();
    expect(ratioOf(0, 1, 'higher')).toBeUndefined();
  });
});

describe('formatNumber', () => {
  it.each([
    [0, '0'],
    [30, '30'],
    [0.15234, '0.152'],
    [1.5234, '1.52'],
    [15.234, '15.2'],
    [152.34, '152'],
    [15700.4, '15,700'],
    [-2.5, '-2.50'],
  ])('%d -> %s', (v, s) => expect(formatNumber(v)).toBe(s));
});

describe('Collector', () => {
  it('prints each figure from the record it stores, so console and JSON carry the same data', () => {
    const printed: string[] = [];
    const c = new Collector((line) => printed.push(line));
    const out = c.begin('ipmi-power-status', 'power status', { n: 20 });
    const stored = out.record({ name: 'cached session', value: 0.15, stat: 'p50', unit: 'ms', kind: 'measured', reference: { name: 'ipmitool', value: 40, kind: 'measured' }, better: 'lower' });
    expect(c.results).toEqual([{ bench: 'ipmi-power-status', title: 'power status', parameters: { n: 20 }, figures: [stored] }]);
    expect(printed).toEqual(['', '== ipmi-power-status: power status', '   parameters: n=20', ...formatFigure(stored)]);
    expect(printed.join('\n')).toContain('0.15 ms p50');
    expect(printed.join('\n')).toContain('267x faster');
  });

  it('labels what was not measured with its basis in the printed line', () => {
    const printed: string[] = [];
    const out = new Collector((line) => printed.push(line)).begin('sim-footprint', 't');
    out.record({ name: 'ipmi_sim for 1000 BMCs', value: 5.9, unit: 'GiB', kind: 'extrapolated', basis: "one ipmi_sim's RSS x 1000" });
    expect(printed.at(-1)).toBe("  ipmi_sim for 1000 BMCs: 5.90 GiB [extrapolated: one ipmi_sim's RSS x 1000]");
  });

  it('current() begins the benchmark the runner expects when the benchmark did not begin one', () => {
    const c = new Collector(() => undefined);
    c.expect('cli-startup');
    const out = c.current('whole-process start');
    out.record({ name: 'node -e 0', value: 60, stat: 'mean', unit: 'ms', kind: 'measured' });
    expect(c.results.map((r) => r.bench)).toEqual(['cli-startup']);
  });

  it('printTable (the older helper) records through the shared collector', async () => {
    const { collector } = await import('../../bench/results.js');
    collector.expect('legacy');
    printTable('legacy table', [
      { name: 'ours', s: stats([1, 2, 3]) },
      { name: 'theirs', s: stats([10, 20, 30]) },
    ], 'theirs');
    const [result] = collector.of('legacy');
    expect(result?.figures.map((f) => [f.name, f.value, f.reference?.name, f.ratio])).toEqual([
      ['ours', 2, 'theirs', 10],
      ['theirs', 20, undefined, undefined],
    ]);
    expect(() => printTable('empty', [{ name: 'none', s: stats([]) }], 'none')).toThrow(/has no samples/);
  });
});

describe('parseRun', () => {
  it('reads back what a run wrote, figure for figure', () => {
    fc.assert(
      fc.property(fc.array(figureInput, { maxLength: 8 }), fc.option(fc.double({ min: 0, max: 1e5, noNaN: true }), { nil: undefined }), (inputs, seconds) => {
        const figures = inputs.map((f) => checkFigure('bench-x', f));
        const run = runOf([{ bench: 'bench-x', title: 'a | title', parameters: { n: 3, mode: 'quick', flag: true }, ...(seconds === undefined ? {} : { seconds }), figures }]);
        expect(parseRun(JSON.parse(JSON.stringify(run)))).toEqual(run);
      }),
    );
  });

  it('derives the ratio again instead of trusting the file', () => {
    const f = checkFigure('b', { name: 'x', value: 2, unit: 'ms', kind: 'measured', reference: { name: 'r', value: 4, kind: 'measured' }, better: 'lower' });
    const json = JSON.parse(JSON.stringify(runOf([{ bench: 'b', title: 't', parameters: {}, figures: [{ ...f, ratio: 99 }] }]))) as unknown;
    expect(parseRun(json).benchmarks[0]!.figures[0]!.ratio).toBe(2);
  });

  it.each([
    ['a wrong schema', (r: Record<string, unknown>) => (r.schema = 2), /schema/],
    ['a missing machine', (r: Record<string, unknown>) => delete r.machine, /machine/],
    ['a figure of an unknown kind', (r: Record<string, unknown>) => (((r.benchmarks as Array<{ figures: Array<Record<string, unknown>> }>)[0]!.figures[0]!.kind = 'guessed')), /benchmarks\[0\]\.figures\[0\]\.kind/],
    ['an extrapolated figure without its basis', (r: Record<string, unknown>) => {
      const f = (r.benchmarks as Array<{ figures: Array<Record<string, unknown>> }>)[0]!.figures[0]!;
      f.kind = 'extrapolated';
      delete f.basis;
    }, /names no basis/],
    ['a parameter that is an object', (r: Record<string, unknown>) => (((r.benchmarks as Array<{ parameters: Record<string, unknown> }>)[0]!.parameters.n = {})), /parameters\.n/],
  ])('refuses %s, naming the field', (_what, spoil, message) => {
    const run = JSON.parse(JSON.stringify(runOf([{ bench: 'b', title: 't', parameters: { n: 1 }, figures: [checkFigure('b', { name: 'x', value: 1, unit: 'ms', kind: 'measured' })] }]))) as Record<string, unknown>;
    spoil(run);
    expect(() => parseRun(run)).toThrow(message);
  });
});

/** Splits a markdown table row on the separators that are not escaped. */
function columns(row: string): string[] {
  return row.split(/(?<!\\)\|/).slice(1, -1);
}

describe('renderTable', () => {
  it('has one row per figure that is not a detail, six columns each, whatever the names hold', () => {
    fc.assert(
      fc.property(fc.array(fc.array(figureInput, { maxLength: 5 }), { minLength: 1, maxLength: 4 }), (benches) => {
        const run = runOf(benches.map((inputs, i) => ({ bench: `b${i}`, title: 't', parameters: { n: i }, seconds: 1.5, figures: inputs.map((f) => checkFigure(`b${i}`, f)) })));
        const lines = renderTable(run, 'run.json').split('\n');
        const rows = lines.filter((l) => l.startsWith('| `b'));
        const figures = run.benchmarks.flatMap((b) => b.figures);
        expect(rows).toHaveLength(figures.filter((f) => !f.detail).length + run.benchmarks.length);
        for (const row of rows.slice(0, rows.length - run.benchmarks.length)) expect(columns(row)).toHaveLength(6);
        expect(lines.every((l) => !l.includes('\r'))).toBe(true);
      }),
    );
  });

  it('shows what was not measured, how it was derived, and the weaker kind on the ratio', () => {
    const f = checkFigure('report-cycle', {
      name: 'fastest cycle',
      value: 8.2,
      unit: 's',
      kind: 'measured',
      reference: { name: 'ipmitool for 1000 BMCs', value: 82, kind: 'extrapolated', basis: '100 BMCs measured, x 10' },
      better: 'lower',
      differs: 'ours also posts the report',
    });
    const table = renderTable(runOf([{ bench: 'report-cycle', title: 't', parameters: { bmcs: 1000 }, seconds: 61.5, figures: [f] }]), 'run.json');
    const row = table.split('\n').find((l) => l.startsWith('| `report-cycle` | fastest'))!;
    expect(columns(row).map((c) => c.trim())).toEqual([
      '`report-cycle`',
      'fastest cycle (work differs: ours also posts the report)',
      '8.20 s',
      'ipmitool for 1000 BMCs: 82 s',
      '10x faster (extrapolated)',
      'reference extrapolated: 100 BMCs measured, x 10',
    ]);
    expect(table).toContain('| `report-cycle` | bmcs=1000 | 61.5 s | ok |');
    expect(table).toContain('2 x AMD EPYC');
  });

  it('several runs: a benchmark run again later is shown from the later run only, each run with its header', () => {
    const f = (bench: string, value: number) => checkFigure(bench, { name: 'fastest cycle', value, unit: 's', kind: 'measured', better: 'lower' });
    const old = runOf([
      { bench: 'report-cycle', title: 't', parameters: {}, seconds: 1, figures: [f('report-cycle', 9)] },
      { bench: 'sim-footprint', title: 't', parameters: {}, seconds: 1, figures: [f('sim-footprint', 7)] },
    ]);
    const fresh = runOf([{ bench: 'report-cycle', title: 't', parameters: {}, seconds: 1, figures: [f('report-cycle', 5)] }]);
    const text = renderTables([
      { run: old, source: 'old.json' },
      { run: fresh, source: 'new.json' },
    ]);
    const rows = text.split('\n').filter((l) => l.startsWith('| `report-cycle` | fastest'));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toContain('| 5 s |');
    expect(text).toContain('| `sim-footprint` | fastest cycle | 7 s |');
    expect(text.match(/Run of /g)).toHaveLength(2);
    expect(text.indexOf('old.json')).toBeLessThan(text.indexOf('new.json'));
  });

  it('cell() keeps a cell on one line and escapes separators', () => {
    expect(cell('a|b\nc\\d')).toBe('a\\|b c\\\\d');
  });
});

describe('replaceBetweenMarkers', () => {
  const outside = fc.string({ maxLength: 60 }).filter((s) => !s.includes(BEGIN) && !s.includes(END));

  it('replaces only the part between the markers, and doing it twice changes nothing', () => {
    fc.assert(
      fc.property(outside, fc.string({ maxLength: 60 }), outside, fc.string({ maxLength: 60 }), (before, old, after, body) => {
        fc.pre(!old.includes(BEGIN) && !old.includes(END) && !body.includes(BEGIN) && !body.includes(END));
        const once = replaceBetweenMarkers(`${before}${BEGIN}${old}${END}${after}`, body);
        expect(once).toBe(`${before}${BEGIN}\n${body}\n${END}${after}`);
        expect(replaceBetweenMarkers(once, body)).toBe(once);
      }),
    );
  });

  it.each([
    ['no markers', 'text'],
    ['only the begin marker', `a ${BEGIN} b`],
    ['two begin markers', `${BEGIN} ${BEGIN} ${END}`],
    ['the markers in the wrong order', `${END} x ${BEGIN}`],
  ])('refuses a README with %s', (_what, text) => {
    expect(() => replaceBetweenMarkers(text, 'table')).toThrow(/bench:(begin|end)/);
  });
});
