import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { readCache } from '../../src/redfish/read-cache.js';
import { listMembers, MAX_MEMBERS } from '../../src/redfish/resources.js';

const SYSTEMS = '/redfish/v1/Systems';
const S1 = `${SYSTEMS}/1`;

/** A BMC as a table of paths; `expand` says how it answers a `$expand` query. */
type ExpandAnswer = 'inline' | 'ignored' | 'refused' | 'partial' | 'timeout' | 'closed' | 'decode' | 'error-body' | 'extended-info';

function bmc(expand: ExpandAnswer) {
  const asked: string[] = [];
  const member = { '@odata.id': S1, Id: '1', Manufacturer: 'Supermicro' };
  const table: Record<string, unknown> = { [SYSTEMS]: { Members: [{ '@odata.id': S1 }] }, [S1]: member };
  return {
    asked,
    async get<T>(path: string): Promise<T> {
      asked.push(path);
      if (path.includes('$expand')) {
        if (expand === 'refused') throw new BmcError('HTTP', `GET ${path}: HTTP 400`, { httpStatus: 400 });
        if (expand === 'timeout') throw new BmcError('TIMEOUT', `GET ${path}: timed out`);
        if (expand === 'closed') throw new BmcError('CLOSED', `GET ${path}: connection closed`);
        if (expand === 'decode') throw new BmcError('DECODE', `GET ${path}: not JSON`);
        if (expand === 'error-body') return { error: { code: 'Base.1.8.QueryNotSupported', message: 'expand' } } as T;
        if (expand === 'extended-info') return { Members: [{ ...member, '@Message.ExtendedInfo': [{ MessageId: 'Base.1.8.InternalError' }] }] } as T;
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

  it('reads the plain way when the expanded read fails in transport (a timeout, a dropped connection, bad JSON) or answers 2xx without Members, and says so to every later reader', async () => {
    for (const mode of ['timeout', 'closed', 'decode', 'error-body'] as const) {
      const b = bmc(mode);
      const r = readCache(b);
      expect(await r.members(SYSTEMS, EXPAND), mode).toEqual([S1]);
      expect(await r.members(SYSTEMS, EXPAND), mode).toEqual([S1]);
      expect(await r.get(S1), mode).toMatchObject({ Manufacturer: 'Supermicro' });
      expect(b.asked, mode).toEqual([`${SYSTEMS}?$expand=.($levels=1)`, SYSTEMS, S1]);
    }
  });

  it("only the caller's abort ends the read", async () => {
    const abort = new AbortController();
    abort.abort();
    const r = readCache({ get: () => Promise.reject(new BmcError('ABORTED', 'aborted')) });
    await expect(r.members(SYSTEMS, EXPAND, { signal: abort.signal })).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('an inline member carrying @Message.ExtendedInfo (DSP0266: the service could not expand it) is read on its own', async () => {
    const b = bmc('extended-info');
    const r = readCache(b);
    expect(await r.members(SYSTEMS, EXPAND)).toEqual([S1]);
    expect(await r.get(S1)).toEqual({ '@odata.id': S1, Id: '1', Manufacturer: 'Supermicro' });
    expect(b.asked).toEqual([`${SYSTEMS}?$expand=.($levels=1)`, S1]);
  });

  it('a member read on its own before the expanded collection came in keeps that read', async () => {
    const full = { '@odata.id': S1, Id: '1', Manufacturer: 'Supermicro', UUID: 'u-1' };
    const r = readCache({
      get: <T>(path: string) => Promise.resolve((path.includes('$expand') ? { Members: [{ '@odata.id': S1, Id: '1' }] } : full) as T),
    });
    expect(await r.get(S1)).toEqual(full);
    await r.members(SYSTEMS, EXPAND);
    expect(await r.get(S1)).toEqual(full);
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

describe('listMembers', () => {
  const PSUS = '/redfish/v1/Chassis/1/PowerSubsystem/PowerSupplies';
  const page = (members: string[], nextLink?: string) => ({ Members: members.map((m) => ({ '@odata.id': m })), ...(nextLink ? { 'Members@odata.nextLink': nextLink } : {}) });

  it('a BMC that ignores $skip and names the same page again: each member once, the walk ends', async () => {
    const asked: string[] = [];
    const get = <T>(path: string) => {
      asked.push(path);
      return Promise.resolve(page([`${PSUS}/1`, `${PSUS}/2`], `${PSUS}?$skip=2`) as T);
    };
    expect(await listMembers({ get }, PSUS)).toEqual([`${PSUS}/1`, `${PSUS}/2`]);
    expect(asked).toEqual([PSUS, `${PSUS}?$skip=2`]);
  });

  it('a collection of more than MAX_MEMBERS members is cut there', async () => {
    const all = Array.from({ length: MAX_MEMBERS * 3 }, (_, i) => `${PSUS}/${i}`);
    const get = <T>(path: string) => Promise.resolve((path === PSUS ? page(all.slice(0, MAX_MEMBERS * 2), `${PSUS}?page=2`) : page(all.slice(MAX_MEMBERS * 2))) as T);
    expect(await listMembers({ get }, PSUS)).toEqual(all.slice(0, MAX_MEMBERS));
  });

  it('any chain of pages, loops and repeats included: ends, each member once, in first-seen order, at most MAX_MEMBERS', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ members: fc.array(fc.integer({ min: 0, max: 30 }), { maxLength: 8 }), next: fc.option(fc.integer({ min: 0, max: 6 }), { nil: undefined }) }), { minLength: 1, maxLength: 7 }), async (pages) => {
        const at = (i: number) => (i === 0 ? PSUS : `${PSUS}?page=${i}`);
        const asked: string[] = [];
        const get = <T>(path: string) => {
          asked.push(path);
          const i = path === PSUS ? 0 : Number(path.split('=')[1]);
          const p = pages[i];
          return p === undefined ? Promise.reject(new BmcError('HTTP', `GET ${path}: HTTP 404`, { httpStatus: 404 })) : Promise.resolve(page(p.members.map((m) => `${PSUS}/${m}`), p.next === undefined ? undefined : at(p.next)) as T);
        };
        const listed = await listMembers({ get }, PSUS).catch(() => undefined);
        expect(new Set(asked).size).toBe(asked.length);
        if (listed === undefined) return;
        expect(new Set(listed).size).toBe(listed.length);
        const seen: string[] = [];
        for (const p of asked) for (const m of pages[p === PSUS ? 0 : Number(p.split('=')[1])]!.members) if (!seen.includes(`${PSUS}/${m}`)) seen.push(`${PSUS}/${m}`);
        expect(listed).toEqual(seen.slice(0, MAX_MEMBERS));
      }),
    );
  });
});
