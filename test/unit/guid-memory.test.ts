import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createGuidMemory } from '../../src/outband/guid-memory.js';

const guid = (byte: number) => Buffer.alloc(16, byte);
const decided = (byte: number) => ({ guid: guid(byte), uuid: `00000000-0000-4000-8000-0000000000${byte.toString(16).padStart(2, '0')}` });

describe('GUID memory', () => {
  it('gives back a spare GUID until its age, counted from when it was read; the decision stays', () => {
    let now = 1000;
    const m = createGuidMemory({ maxAgeMs: 500, now: () => now });
    expect(m.get('10.0.0.1')).toBeUndefined();
    m.remember('10.0.0.1', decided(1), {});
    now = 1499;
    expect(m.get('10.0.0.1')).toEqual(guid(1));
    now = 1500;
    expect(m.get('10.0.0.1')).toBeUndefined();
    // what a read over IPMI alone is checked against has no age
    now = 1_000_000_000;
    expect(m.decided('10.0.0.1')).toEqual(decided(1));
    expect(m.size).toBe(1);
  });

  it('a decision without a spare (the report needs more from IPMI) confirms, but stands in for no session', () => {
    const m = createGuidMemory({ maxAgeMs: 60_000 });
    m.remember('a', decided(3));
    expect(m.get('a')).toBeUndefined();
    expect(m.identity('a')).toBeUndefined();
    expect(m.decided('a')).toEqual(decided(3));
    // with a max age of 0 (METAL_BMC_REPORT_GUID_MAX_AGE=0) no spare serves, the decision does
    const never = createGuidMemory({ maxAgeMs: 0 });
    never.remember('a', decided(3), {});
    expect(never.get('a')).toBeUndefined();
    expect(never.decided('a')).toEqual(decided(3));
  });

  it('keeps an identity with its spare GUID, of the same age, replaced or dropped with it', () => {
    let now = 0;
    const m = createGuidMemory({ maxAgeMs: 500, now: () => now });
    const fru = { board_mfg: 'Supermicro', board_part_number: 'X11DPT-B' };
    const identity = { bmcVersion: '1.74', fru, managerFirmware: '01.74.13' };
    m.remember('a', decided(1), { identity });
    fru.board_mfg = 'changed';
    expect(m.identity('a')).toEqual({ ...identity, fru: { board_mfg: 'Supermicro', board_part_number: 'X11DPT-B' } });
    // a GUID alone (the vendor needs nothing else from IPMI now) drops the identity
    m.remember('a', decided(1), {});
    expect(m.identity('a')).toBeUndefined();
    m.remember('a', decided(1), { identity });
    m.forget('a');
    expect(m.identity('a')).toBeUndefined();
    expect(m.decided('a')).toBeUndefined();
    m.remember('b', decided(2), { identity });
    now = 499;
    expect(m.identity('b')?.bmcVersion).toBe('1.74');
    now = 500;
    expect(m.identity('b')).toBeUndefined();
    expect(m.get('b')).toBeUndefined();
  });

  it('keeps its own copy, forgets on request, and ignores what is not a GUID', () => {
    const m = createGuidMemory({ maxAgeMs: 60_000 });
    const g = decided(2);
    m.remember('a', g, {});
    g.guid.fill(9);
    expect(m.get('a')).toEqual(guid(2));
    expect(m.decided('a')?.guid).toEqual(guid(2));
    m.forget('a');
    expect(m.get('a')).toBeUndefined();
    m.remember('b', { guid: Buffer.alloc(15), uuid: decided(1).uuid }, {});
    expect(m.get('b')).toBeUndefined();
    expect(m.decided('b')).toBeUndefined();
  });

  it('holds at most maxEntries, the ones remembered longest ago go first', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 200 }), fc.integer({ min: 1, max: 8 }), (hosts, max) => {
        const m = createGuidMemory({ maxAgeMs: 60_000, maxEntries: max });
        const order: number[] = [];
        for (const h of hosts) {
          m.remember(`h${h}`, decided(h), {});
          const at = order.indexOf(h);
          if (at >= 0) order.splice(at, 1);
          order.push(h);
        }
        const kept = order.slice(-max);
        expect(m.size).toBe(kept.length);
        for (const h of kept) expect(m.get(`h${h}`)).toEqual(guid(h));
      }),
    );
  });
});
