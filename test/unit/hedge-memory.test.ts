/** The slow Redfish paths per BMC kept between report reads (src/outband/hedge-memory.ts). */
import { describe, expect, it } from 'vitest';
import { createHedgeMemory } from '../../src/outband/hedge-memory.js';

describe('hedge memory', () => {
  it('gives each BMC one set, the same one read after read', () => {
    const memory = createHedgeMemory();
    const a = memory.slowPathsOf('10.0.0.1:443');
    a.add('/redfish/v1/Chassis/1/Power');
    expect(memory.slowPathsOf('10.0.0.1:443')).toBe(a);
    expect(memory.slowPathsOf('10.0.0.2:443').size).toBe(0);
  });

  it('keeps the BMCs met most recently, at most maxBmcs', () => {
    const memory = createHedgeMemory(2);
    memory.slowPathsOf('a').add('/redfish/v1/Systems/1');
    memory.slowPathsOf('b').add('/redfish/v1/Systems/1');
    memory.slowPathsOf('a'); // met again: now the newest
    memory.slowPathsOf('c');
    expect(memory.slowPathsOf('a').size).toBe(1);
    expect(memory.slowPathsOf('b').size).toBe(0); // forgotten, a new empty set
  });
});
