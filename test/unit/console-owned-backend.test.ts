/**
 * The backend of an instance that shares its partition (src/console/owned-backend.ts): it opens
 * the BMC only for machines it holds or nobody holds, relays or refuses the others, and ends its
 * BMC streams of machines it no longer may hold.
 */
import { PassThrough, type Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ownedBackend, type Holder } from '../../src/console/owned-backend.js';

function setup(relay?: (instance: string, id: string) => Promise<Duplex>) {
  const holders = new Map<string, Holder>();
  const opened: string[] = [];
  const b = ownedBackend({
    open: async (id) => {
      opened.push(id);
      return new PassThrough();
    },
    holder: (id) => holders.get(id) ?? { kind: 'free' },
    ...(relay ? { relay: (instance, id) => relay(instance, id) } : {}),
  });
  return { b, holders, opened };
}

const signal = new AbortController().signal;

describe('owned backend', () => {
  it('opens machines it holds or nobody holds', async () => {
    const { b, holders, opened } = setup();
    holders.set('m1', { kind: 'self' });
    await b.open('m1', { signal });
    await b.open('m2', { signal });
    expect(opened).toEqual(['m1', 'm2']);
  });

  it('refuses a machine another instance holds, naming it, and opens nothing', async () => {
    const { b, holders, opened } = setup();
    holders.set('m1', { kind: 'other', instance: 'mgmt02' });
    await expect(b.open('m1', { signal })).rejects.toMatchObject({ code: 'BUSY', message: expect.stringContaining('held by metal-bmc instance mgmt02') });
    holders.set('m2', { kind: 'unknown' });
    await expect(b.open('m2', { signal })).rejects.toMatchObject({ code: 'BUSY' });
    expect(opened).toEqual([]);
  });

  it('relays a machine another instance holds when it can', async () => {
    const relayed: string[] = [];
    const { b, holders, opened } = setup(async (instance, id) => (relayed.push(`${instance}/${id}`), new PassThrough()));
    holders.set('m1', { kind: 'other', instance: 'mgmt02' });
    await b.open('m1', { signal });
    expect(relayed).toEqual(['mgmt02/m1']);
    expect(opened).toEqual([]);
  });

  it('cuts the BMC streams of machines it lost, and only those', async () => {
    const { b, holders } = setup();
    holders.set('m1', { kind: 'self' });
    holders.set('m2', { kind: 'self' });
    const s1 = await b.open('m1', { signal });
    const s2 = await b.open('m2', { signal });
    const errors: Error[] = [];
    s1.on('error', (e: Error) => errors.push(e));
    expect(b.cut()).toBe(0);
    holders.set('m1', { kind: 'other', instance: 'mgmt02' });
    expect(b.cut()).toBe(1);
    await new Promise((resolve) => s1.once('close', resolve));
    expect(errors[0]).toMatchObject({ code: 'CLOSED', message: expect.stringContaining('mgmt02') });
    expect(s2.destroyed).toBe(false);
    // a closed stream is forgotten
    expect(b.cut()).toBe(0);
  });

  it('a view that lags (its watch stalled) opens nothing new but cuts no stream open on a free or relayed machine', async () => {
    const { b, holders, opened } = setup(async () => new PassThrough());
    holders.set('m1', { kind: 'free' });
    holders.set('m2', { kind: 'other', instance: 'mgmt02' });
    const local = await b.open('m1', { signal });
    const relayed = await b.open('m2', { signal });
    for (const id of ['m1', 'm2', 'm3']) holders.set(id, { kind: 'unknown', lagging: true });
    expect(b.cut()).toBe(0);
    expect([local.destroyed, relayed.destroyed]).toEqual([false, false]);
    await expect(b.open('m3', { signal })).rejects.toMatchObject({ code: 'BUSY' });
    expect(opened).toEqual(['m1']);
    // a lease not renewed is another matter: the streams end
    holders.set('m1', { kind: 'unknown' });
    local.on('error', () => undefined);
    expect(b.cut()).toBe(1);
  });

  it('cuts a relayed stream when its owner no longer holds the machine', async () => {
    const { b, holders } = setup(async () => new PassThrough());
    holders.set('m1', { kind: 'other', instance: 'mgmt02' });
    const s1 = await b.open('m1', { signal });
    s1.on('error', () => undefined);
    expect(b.cut()).toBe(0);
    holders.set('m1', { kind: 'self' });
    expect(b.cut()).toBe(1);
    expect(s1.destroyed).toBe(true);
  });
});
