/** readFruData (src/ipmi/commands.ts) against BMCs that answer Read FRU Data the way real ones do. */
import { describe, expect, it } from 'vitest';
import { readFruData } from '../../src/ipmi/commands.js';
import { encodeFru, parseFru } from '../../src/ipmi/fru.js';
import type { IpmiSession } from '../../src/ipmi/session.js';

const IMAGE = encodeFru({
  chassis: { type: 0x17, partNumber: 'CH-1', serial: 'CS-1', extra: [] },
  board: { manufacturer: 'Supermicro', product: 'X11DPT-B', serial: 'BS-1', partNumber: 'BP-1', fruFileId: '', extra: [] },
  product: { manufacturer: 'Supermicro', name: 'SYS-1', partNumber: 'PP-1', version: '1', serial: 'PS-1', assetTag: '', fruFileId: '', extra: [] },
});

/** A BMC with a 2 KiB FRU device holding IMAGE; `answer` may replace the answer to the nth Read FRU Data (1-based). */
function bmc(answer: (n: number, offset: number, count: number) => { completionCode: number; data?: Buffer } | undefined = () => undefined) {
  const device = Buffer.alloc(2048, 0xff);
  IMAGE.copy(device);
  let n = 0;
  const session = {
    remote: '10.0.0.1:623',
    command: async () => Buffer.from([device.length & 0xff, device.length >> 8, 0]),
    request: async (_netFn: number, _cmd: number, req: Buffer) => {
      const offset = req.readUInt16LE(1);
      const count = req[3]!;
      const special = answer(++n, offset, count);
      if (special) return { completionCode: special.completionCode, data: special.data ?? Buffer.alloc(0) };
      const bytes = device.subarray(offset, offset + count);
      return { completionCode: 0, data: Buffer.concat([Buffer.from([bytes.length]), bytes]) };
    },
  };
  return { session: session as unknown as IpmiSession, reads: () => n };
}

describe('readFruData', () => {
  it('"device busy" (0x81) is asked again after 30 ms, up to 5 times', async () => {
    const b = bmc((n) => (n === 2 || n === 3 ? { completionCode: 0x81 } : undefined));
    expect(parseFru(await readFruData(b.session))).toMatchObject({ board: { product: 'X11DPT-B' }, problems: [] });
  });

  it('a read that fails once the header and the first areas are in keeps them, and says where it stopped', async () => {
    const productAt = IMAGE[4]! * 8;
    const b = bmc((_n, offset, count) => (offset + count > productAt ? { completionCode: 0xd5 } : undefined));
    const stopped: string[] = [];
    const info = parseFru(await readFruData(b.session, 0, undefined, stopped));
    expect(info.chassis?.serial).toBe('CS-1');
    expect(info.board?.product).toBe('X11DPT-B');
    expect(stopped).toEqual([expect.stringMatching(/^Read FRU Data at offset \d+ on BMC 10\.0\.0\.1:623: .*; the \d+ bytes before are used$/)]);
  });

  it('a failure before any byte is read is the error itself', async () => {
    const b = bmc(() => ({ completionCode: 0xd5 }));
    await expect(readFruData(b.session)).rejects.toMatchObject({ code: 'COMPLETION_CODE' });
  });

  it('an answer whose count byte names more data than it carries is cut to the data it carries (no gap of zeros)', async () => {
    const b = bmc((n, offset, count) => {
      if (n !== 2) return undefined;
      const bytes = IMAGE.subarray(offset, offset + count);
      return { completionCode: 0, data: Buffer.concat([Buffer.from([count + 16]), bytes]) };
    });
    expect(parseFru(await readFruData(b.session))).toEqual(parseFru(IMAGE));
  });

  it('an answer with no data once some bytes are in ends the read there, with the bytes before', async () => {
    const b = bmc((n) => (n === 3 ? { completionCode: 0, data: Buffer.from([0]) } : undefined));
    const stopped: string[] = [];
    const read = await readFruData(b.session, 0, undefined, stopped);
    expect(read.length).toBe(64);
    expect(stopped).toEqual([expect.stringMatching(/returned no data at offset 64/)]);
  });

  it('word access: an answer carrying an odd number of bytes counts whole words only, so the next offset stays on a word', async () => {
    const device = Buffer.alloc(2048, 0xff);
    IMAGE.copy(device);
    let odd = true;
    const session = {
      remote: '10.0.0.1:623',
      // 1024 words, word access (bit 0)
      command: async () => Buffer.from([device.length & 0xff, device.length >> 8, 1]),
      request: async (_netFn: number, _cmd: number, req: Buffer) => {
        const offset = req.readUInt16LE(1) * 2;
        const words = req[3]!;
        // the first answer names its words but carries one byte short of them (an odd length)
        const bytes = device.subarray(offset, offset + words * 2 - (odd ? 1 : 0));
        odd = false;
        return { completionCode: 0, data: Buffer.concat([Buffer.from([words]), bytes]) };
      },
    };
    expect(parseFru(await readFruData(session as unknown as IpmiSession))).toEqual(parseFru(IMAGE));
  });
});
