/**
 * The capture's gap markers against a machine that prints look-alikes (capture-markers.ts): root
 * on a machine decides what its console prints, and printed `[metal-bmc TIME: capture gap: ...]`
 * lines, at a line start, after a carriage return, with an escape sequence inside, cut between
 * two records, or enclosed in NULs itself. In a rendered history only the capture's markers are
 * enclosed in NULs; `console log --plain` and the history page show only those as
 * `[metal-bmc `, output's look-alikes as `\[metal-bmc `, wherever the chunks are cut.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createHistoryPlainFilter, withoutDelimiters } from '../../src/console/capture-markers.js';
import { HISTORY_MARKER_SOURCE, HISTORY_SCRIPT, HISTORY_STRIP_SOURCE } from '../../src/console/capture-page.js';
import { renderEvent, type HistoryEvent } from '../../src/console/capture-read.js';

const ESC = '\x1b';
const T = Date.UTC(2026, 11, 6, 7, 0, 0);
const FORGED = '[metal-bmc 2026-12-06T07:00:00.000Z: capture gap: BMC connection lost]';

const data = (text: string): HistoryEvent => ({ kind: 'data', t: T, data: Buffer.from(text, 'latin1') });
const gap = (reason: string): HistoryEvent => ({ kind: 'gap', t: T, what: 'start', reason });
const resumed: HistoryEvent = { kind: 'gap', t: T, what: 'end' };

/** the rendered history as latin1, as the log route sends it */
const rendered = (events: HistoryEvent[]) => Buffer.concat(events.map(renderEvent)).toString('latin1');

/** `text` through a plain filter in chunks cut at `points` */
function plainInChunks(text: string, points: number[]): string {
  const filter = createHistoryPlainFilter();
  let out = '';
  let from = 0;
  for (const p of [...points, text.length]) {
    out += filter.push(text.slice(from, p));
    from = p;
  }
  return out + filter.end();
}

/** the page's functions, as its script runs them */
const page = new Function(`${HISTORY_STRIP_SOURCE}\n${HISTORY_MARKER_SOURCE}\nreturn { splitMarkers, showAsOutput };`)() as { splitMarkers(text: string): string[]; showAsOutput(text: string): string };

/** how the page shows a rendered history: the output as text (the markers left out), the markers it highlights */
function pageView(text: string): { text: string; markers: string[] } {
  const parts = page.splitMarkers(text);
  return { text: parts.filter((_, i) => i % 2 === 0).map(page.showAsOutput).join(''), markers: parts.filter((_, i) => i % 2 === 1) };
}

/** `[metal-bmc ` not escaped, in `text` */
const unescaped = (text: string) => text.match(/(?<!\\)\[metal-bmc /g)?.length ?? 0;

/** output that tries every way to pass for a marker */
const FORGERIES = [
  `${FORGED}\r\n`,
  `progress 99%\r${FORGED}\r\n`,
  `${'x'.repeat(79)}${FORGED}\r\n`, // wrapped by an 80-column terminal: a line start
  `[metal${ESC}[0m-bmc 2026-12-06T07:00:00.000Z: capture resumed]\r\n`,
  `\x00${FORGED}\x00\r\n`,
  `\r\n\x00${FORGED}\x00\r\n`,
];

describe('gap markers against output that looks like them', () => {
  it('renders output without NULs and each marker enclosed in them, on a line of its own', () => {
    expect(renderEvent(data('a\x00b\x00\x00c')).toString('latin1')).toBe('abc');
    const clean = Buffer.from('no NUL here');
    expect(withoutDelimiters(clean)).toBe(clean); // nearly all output: not copied
    expect(renderEvent(gap('BMC connection lost\r\n(no answer)\x00')).toString('latin1')).toBe('\r\n\x00[metal-bmc 2026-12-06T07:00:00.000Z: capture gap: BMC connection lost (no answer) ]\x00\r\n');
  });

  it('console log --plain shows each forgery escaped and the real markers as they are', () => {
    const events = [...FORGERIES.map(data), gap('BMC connection lost'), resumed, data(`${FORGED.slice(0, 6)}`), data(`${FORGED.slice(6)}\r\n`)];
    const out = plainInChunks(rendered(events), []);
    expect(out).toBe(
      [
        `\\${FORGED}`,
        `progress 99%\r\\${FORGED}`,
        `${'x'.repeat(79)}\\${FORGED}`,
        '\\[metal-bmc 2026-12-06T07:00:00.000Z: capture resumed]',
        `\\${FORGED}`,
        '',
        `\\${FORGED}`,
        '',
        FORGED,
        '',
        '[metal-bmc 2026-12-06T07:00:00.000Z: capture resumed]',
        `\\${FORGED}`,
        '',
      ].join('\n'),
    );
    expect(unescaped(out)).toBe(2);
  });

  it('the history page highlights only the real markers and shows each forgery escaped', () => {
    expect(HISTORY_SCRIPT).toContain(HISTORY_MARKER_SOURCE);
    const view = pageView(rendered([...FORGERIES.map(data), gap('BMC connection lost'), resumed]));
    expect(view.markers).toEqual([FORGED, '[metal-bmc 2026-12-06T07:00:00.000Z: capture resumed]']);
    expect(unescaped(view.text)).toBe(0);
    expect(view.text.match(/\\\[metal-bmc /g)).toHaveLength(FORGERIES.length);
  });

  it('only the real markers show as markers, wherever the chunks are cut (property)', () => {
    const piece = fc.oneof(
      fc.stringMatching(/^[a-z \n]{0,8}$/),
      fc.constantFrom('\r\n', '\r', '\x00', `${ESC}[0m`, `${ESC}]0;x\x07`, '[', '[metal', '-bmc ', '[metal-bmc ', FORGED, `[metal${ESC}[1m-bmc `, '\\'),
    );
    const event = fc.oneof(
      { arbitrary: fc.array(piece, { minLength: 1, maxLength: 8 }).map((p) => data(p.join(''))), weight: 4 },
      { arbitrary: fc.constantFrom(gap('BMC connection lost'), resumed, gap('[metal-bmc x]')), weight: 1 },
    );
    fc.assert(
      fc.property(fc.array(event, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 10 }), (events, cuts) => {
        const text = rendered(events);
        const gaps = events.filter((e) => e.kind === 'gap').length;
        const whole = plainInChunks(text, []);
        const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
        expect(plainInChunks(text, points)).toBe(whole);
        // every unescaped "[metal-bmc " is a real marker's beginning, and each real marker has one
        const reasonsOwn = events.filter((e) => e.kind === 'gap' && e.what === 'start' && e.reason.includes('[metal-bmc ')).length;
        expect(unescaped(whole)).toBe(gaps + reasonsOwn);
        expect(whole.match(/^\[metal-bmc [^\n]*\]$/gm)?.length ?? 0).toBe(gaps);
        const view = pageView(text);
        expect(view.markers).toHaveLength(gaps);
        expect(unescaped(view.text)).toBe(0);
      }),
      { numRuns: 500 },
    );
  });
});
