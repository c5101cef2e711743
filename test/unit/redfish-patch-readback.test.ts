/**
 * What a read-back after a 2xx PATCH holds against it (patch-readback.ts): only values shown
 * otherwise, never one the resource does not show; the BMC's words scrubbed and bounded in the
 * error; nothing read when the answer shows the values or is a 202.
 */
import { describe, expect, it } from 'vitest';
import { NotAppliedError } from '../../src/redfish/patch-answer.js';
import { bootOrderValue, confirmApplied, ledValues, sameValue, type ReadBackClient } from '../../src/redfish/patch-readback.js';
import type { RedfishReply } from '../../src/redfish/session.js';

const PATH = '/redfish/v1/Systems/1';
const reply = (status: number, body?: unknown): RedfishReply => ({ status, headers: {}, body });

/** A client whose GET answers `body`, counting reads; its scrub hides `secret`. */
function readBack(body: unknown, secret = 'hunter22'): ReadBackClient & { reads: number } {
  const c = {
    reads: 0,
    scrub: (t: string) => t.split(secret).join('[redacted]'),
    getReply: async () => {
      c.reads += 1;
      return reply(200, body);
    },
  };
  return c;
}

const override = [sameValue('Boot', 'BootSourceOverrideTarget', 'Pxe'), sameValue('Boot', 'BootSourceOverrideEnabled', 'Continuous')];

describe('confirmApplied', () => {
  it('a property the read-back does not show is not held against the PATCH', async () => {
    const client = readBack({ Boot: { BootSourceOverrideTarget: 'Pxe' } });
    await expect(confirmApplied(client, PATH, reply(204), override)).resolves.toBeUndefined();
    expect(client.reads).toBe(1);
  });

  it('a value shown otherwise: NotAppliedError, the BMC\'s value scrubbed and cut short in the text', async () => {
    const client = readBack({ Boot: { BootSourceOverrideTarget: `hunter22${'x'.repeat(500)}`, BootSourceOverrideEnabled: 'Continuous' } });
    const err = await confirmApplied(client, PATH, reply(204), override).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotAppliedError);
    expect((err as NotAppliedError).properties).toEqual(['Boot/BootSourceOverrideTarget']);
    expect((err as Error).message).toContain('read back "[redacted]xxx');
    expect((err as Error).message).not.toContain('hunter22');
    expect((err as Error).message.length).toBeLessThan(400);
  });

  it('a BMC that applies the PATCH a moment after its 204: the second read-back, a settle time later, shows the values and the PATCH stands', async () => {
    const bodies = [{ Boot: { BootSourceOverrideTarget: 'None', BootSourceOverrideEnabled: 'Disabled' } }, { Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Continuous' } }];
    const client = { ...readBack({}), reads: 0 };
    client.getReply = async () => reply(200, bodies[client.reads++]);
    await expect(confirmApplied(client, PATH, reply(204), override, { settleMs: 1 })).resolves.toBeUndefined();
    expect(client.reads).toBe(2);
  });

  it('shown otherwise twice: NotAppliedError after the second read, not before', async () => {
    const client = readBack({ Boot: { BootSourceOverrideTarget: 'None', BootSourceOverrideEnabled: 'Continuous' } });
    await expect(confirmApplied(client, PATH, reply(204), override, { settleMs: 1 })).rejects.toBeInstanceOf(NotAppliedError);
    expect(client.reads).toBe(2);
  });

  it('no read when the answer shows the values sent, or is a 202', async () => {
    const client = readBack({});
    await confirmApplied(client, PATH, reply(200, { Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Continuous' } }), override);
    await confirmApplied(client, PATH, reply(202), override);
    expect(client.reads).toBe(0);
  });

  it('the ETag of the read-back is handed on', async () => {
    const client = { ...readBack({}), getReply: async () => ({ status: 200, headers: { etag: 'W/"2"' }, body: {} }) };
    const seen: string[] = [];
    await confirmApplied(client, PATH, reply(204), override, { onRead: (t) => seen.push(t) });
    expect(seen).toEqual(['W/"2"']);
  });
});

describe('the values compared', () => {
  it('BootOrder: the order sent first, decorated entries as their reference, other options after it', () => {
    const v = bootOrderValue(['Boot0002', 'Boot0001']);
    expect(v.matches(['Boot0002', 'Boot0001'])).toBe(true);
    expect(v.matches(['Boot0002: UEFI PXEv4', 'Boot0001: disk', 'Boot0003'])).toBe(true);
    expect(v.matches(['Boot0001', 'Boot0002'])).toBe(false);
    expect(v.matches(['Boot00021', 'Boot0001'])).toBe(false);
    expect(v.matches(['Boot0002'])).toBe(false);
    expect(v.matches('Boot0002')).toBe(false);
  });

  it('the LED: Lit and Blinking are on, Off is off; LocationIndicatorActive as sent', () => {
    const [lit] = ledValues({ IndicatorLED: 'Lit' });
    expect(['Lit', 'Blinking', 'Off'].map((s) => lit!.matches(s))).toEqual([true, true, false]);
    const [off] = ledValues({ IndicatorLED: 'Off' });
    expect(['Lit', 'Blinking', 'Off'].map((s) => off!.matches(s))).toEqual([false, false, true]);
    const [active] = ledValues({ LocationIndicatorActive: true });
    expect([active!.property, active!.matches(true), active!.matches(false)]).toEqual(['LocationIndicatorActive', true, false]);
  });
});
