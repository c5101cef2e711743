import { describe, expect, it } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { readCache } from '../../src/redfish/read-cache.js';

const SYSTEMS = '/redfish/v1/Systems';
const S1 = `${SYSTEMS}/1`;

/** A BMC as a table of paths; `expand` says how it answers a `$expand` query. */
function bmc(expand: 'inline' | 'ignored' | 'refused' | 'partial') {
  const asked: string[] = [];
  const member = { '@odata.id': S1, Id: '1', Manufacturer: 'Supermicro' };
  const table: Record<string, unknown> = { [SYSTEMS]: { Members: [{ '@odata.id': S1 }] }, [S1]: member };
  return {
    asked,
    async get<T>(path: string): Promise<T> {
      asked.push(path);
      if (path.includes('$expand')) {
        if (expand === 'refused') throw new BmcError('HTTP', `GET ${path}: HTTP 400`, { httpStatus: 400 });
        if (expand === 'inline') return { Members: [member] } as T;
        if (expand === 'partial') return { Members: [{ '@odata.id': S1, Manufacturer: 'AMI' }] } as T;
        return table[SYSTEMS] as T;
      }
      if (!(path in table)) throw new BmcError('HTTP', `GET ${path}: HTTP 404`, { httpStatus: 404 });
      return table[path] as T;
    },
  };
}

const EXPAND = { operator: '.' as const, levels: true };

describe('readCache', () => {
  it('reads a collection with its members inline where $expand works: one request for both', async () => {
    const b = bmc('inline');
    const r = readCache(b);
    expect(await r.members(SYSTEMS, EXPAND)).toEqual([S1]);
    expect(await r.get(S1)).toMatchObject({ Manufacturer: 'Supermicro' });
    expect(b.asked).toEqual([`${SYSTEMS}?$expand=.($levels=1)`]);
    expect(r.requested).toEqual(b.asked);
  });

  it('falls back to the plain collection when $expand is refused, and reads members on their own when ignored or incomplete', async () => {
    for (const mode of ['refused', 'ignored', 'partial'] as const) {
      const b = bmc(mode);
      const r = readCache(b);
      expect(await r.members(SYSTEMS, EXPAND)).toEqual([S1]);
      expect(await r.get(S1)).toMatchObject({ Manufacturer: 'Supermicro' });
      expect(b.asked.filter((p) => p === S1)).toHaveLength(1);
    }
    expect(bmc('refused').asked).toEqual([]);
  });

  it('never asks twice for a path, even when readers overlap, and keeps a failure', async () => {
    const b = bmc('ignored');
    const r = readCache(b);
    r.prefetch(S1);
    await Promise.all([r.get(S1), r.get(S1), r.members(SYSTEMS, undefined), r.members(SYSTEMS, undefined)]);
    await expect(r.get('/nope')).rejects.toThrow(/404/);
    await expect(r.get('/nope')).rejects.toThrow(/404/);
    expect(b.asked.sort()).toEqual(['/nope', SYSTEMS, S1].sort());
  });
});
