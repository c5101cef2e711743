import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { latestStormComplete, stepSizes, stormBytes } from '../../bench/console-capture.js';
import { stormLine } from '../../src/sim/serial.js';

const storm = (index: number, lines: number): string[] => Array.from({ length: lines }, (_, i) => stormLine(`m${index}`, i + 1, lines));

describe('console-capture benchmark helpers', () => {
  it('steps are N/8, N/4, N/2, N without zeros or repeats', () => {
    expect(stepSizes(100)).toEqual([12, 25, 50, 100]);
    expect(stepSizes(4)).toEqual([1, 2, 4]);
    expect(stepSizes(1)).toEqual([1]);
  });

  it('counts the bytes one storm sends, its leading line end included', () => {
    expect(stormBytes(3, 5)).toBe(2 + storm(3, 5).join('').length);
  });

  it('a storm is complete when its latest run of lines is all there, in order, after earlier storms and other output', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 0, max: 2 }), fc.string({ maxLength: 40 }), (lines, earlier, noise) => {
        const text = [noise.replace(/\r|\n/g, ''), ...Array.from({ length: earlier }, () => storm(7, lines).join('')), '\r\n', storm(7, lines).join('')].join('');
        expect(latestStormComplete(text, 7, lines)).toBe(true);
        // another machine's lines do not count
        expect(latestStormComplete(text, 8, lines)).toBe(false);
      }),
    );
  });

  it('a lost, repeated, swapped or damaged line makes the storm incomplete', () => {
    fc.assert(
      fc.property(fc.integer({ min: 3, max: 60 }), fc.nat(), fc.constantFrom('drop', 'repeat', 'swap', 'damage'), (lines, at, how) => {
        const l = storm(2, lines);
        const i = 1 + (at % (lines - 2)); // not the first line: a missing line 1 would hide the whole storm
        if (how === 'drop') l.splice(i, 1);
        if (how === 'repeat') l.splice(i, 0, l[i]!);
        if (how === 'swap') [l[i], l[i + 1]] = [l[i + 1]!, l[i]!];
        if (how === 'damage') l[i] = l[i]!.replace('probing', 'probinG');
        expect(latestStormComplete('\r\n' + l.join(''), 2, lines)).toBe(false);
      }),
    );
  });
});
