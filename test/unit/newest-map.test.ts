import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { setNewest } from '../../src/net/newest-map.js';

describe('setNewest', () => {
  it('keeps the `max` keys set most recently, each with its last value, oldest first', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 12 }), fc.integer()), { maxLength: 100 }), fc.integer({ min: 1, max: 6 }), (sets, max) => {
        const map = new Map<number, number>();
        const model: Array<[number, number]> = [];
        for (const [k, v] of sets) {
          setNewest(map, k, v, max);
          const at = model.findIndex(([mk]) => mk === k);
          if (at >= 0) model.splice(at, 1);
          model.push([k, v]);
        }
        expect([...map]).toEqual(model.slice(-max));
      }),
    );
  });
});
