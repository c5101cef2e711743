/** chassisIdentify (src/ipmi/commands.ts): the bytes it sends, and its fallback for BMCs without Force Identify On. */
import { describe, expect, it } from 'vitest';
import { chassisIdentify } from '../../src/ipmi/commands.js';
import { BmcError } from '../../src/errors.js';
import { describeCompletionCode, NetFn } from '../../src/ipmi/message.js';
import type { IpmiSession } from '../../src/ipmi/session.js';

/** A session recording every Chassis Identify request; `answer` gives the completion code of the nth (1-based). */
function bmc(answer: (n: number, data: number[]) => number = () => 0) {
  const sent: number[][] = [];
  const respond = (netFn: number, cmd: number, data: Buffer | undefined) => {
    expect([netFn, cmd]).toEqual([NetFn.chassis, 0x04]);
    const bytes = [...(data ?? [])];
    sent.push(bytes);
    return { completionCode: answer(sent.length, bytes), data: Buffer.alloc(0) };
  };
  const session = {
    remote: '10.0.0.1:623',
    request: async (netFn: number, cmd: number, data?: Buffer) => respond(netFn, cmd, data),
    command: async (what: string, netFn: number, cmd: number, data?: Buffer) => {
      const r = respond(netFn, cmd, data);
      // as the real session's command() refuses a completion code
      if (r.completionCode !== 0) throw new BmcError('COMPLETION_CODE', `${what} on BMC 10.0.0.1:623: ${describeCompletionCode(r.completionCode)}`, { completionCode: r.completionCode });
      return r.data;
    },
  };
  return { session: session as unknown as IpmiSession, sent };
}

describe('chassisIdentify', () => {
  it('off says interval 0 and force off (as go-hal: a BMC may keep a forced on while byte 2 is absent), one request', async () => {
    const b = bmc();
    await chassisIdentify(b.session, false);
    expect(b.sent).toEqual([[0, 0]]);
  });

  it.each([0xc7, 0xcc, 0xc9, 0xd6])('off falls back to the one-byte form when byte 2 is refused (0x%s)', async (code) => {
    const b = bmc((_n, data) => (data.length > 1 ? code : 0));
    await chassisIdentify(b.session, false);
    expect(b.sent).toEqual([[0, 0], [0]]);
  });

  it('on forces the LED on: interval 0 and Force Identify On, one request', async () => {
    const b = bmc();
    await chassisIdentify(b.session, true);
    expect(b.sent).toEqual([[0, 1]]);
  });

  it.each([
    ['0xC7 request data length invalid (Intel SE7501WV2)', 0xc7],
    ['0xCC invalid data field', 0xcc],
  ] as const)('on falls back to the longest interval (255 s) when the forced form is refused with %s', async (_name, code) => {
    const b = bmc((_n, data) => (data.length > 1 ? code : 0));
    await chassisIdentify(b.session, true);
    expect(b.sent).toEqual([[0, 1], [255]]);
  });

  it('any other refusal of on is the error itself, without a second request', async () => {
    const b = bmc(() => 0xc1);
    await expect(chassisIdentify(b.session, true)).rejects.toMatchObject({ code: 'COMPLETION_CODE', completionCode: 0xc1, message: 'Chassis Identify (on) on BMC 10.0.0.1:623: invalid or unsupported command' });
    expect(b.sent).toEqual([[0, 1]]);
  });

  it('a refusal of the fallback too is an error naming on', async () => {
    const b = bmc(() => 0xc7);
    await expect(chassisIdentify(b.session, true)).rejects.toMatchObject({ code: 'COMPLETION_CODE', completionCode: 0xc7, message: 'Chassis Identify (on) on BMC 10.0.0.1:623: request data length invalid' });
    expect(b.sent).toEqual([[0, 1], [255]]);
  });
});
