/**
 * The SOL stream (src/ipmi/sol.ts) against a fake session that plays the BMC packet by packet:
 * what the console delivers and acknowledges when a BMC resends a sequence number with more
 * characters or sends status only, and what it sends when the BMC NACKs or accepts nothing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PayloadType } from '../../src/ipmi/lan.js';
import type { IpmiSession, SessionState } from '../../src/ipmi/session.js';
import { decodeSolPacket, encodeSolPacket, nextSolSeq, SolOperation, SolStatus, type SolPacket } from '../../src/ipmi/sol-packet.js';
import { openSol, type SolStream } from '../../src/ipmi/sol.js';
import type { IpmiEvent } from '../../src/ipmi/session.js';
import { waitFor } from '../helpers/wait.js';

const RETRANSMIT_MS = 200;
const BACK_OFF_MS = RETRANSMIT_MS / 4;

interface FakeBmc {
  session: IpmiSession;
  /** SOL packets the console sent, in order */
  sent: SolPacket[];
  /** a SOL packet from the BMC */
  deliver(p: Partial<SolPacket> & { data?: Buffer }): void;
  /** the commands the console sent (Activate Payload 0x48, Deactivate Payload 0x49) */
  commands: number[];
  /** what the session's keepalive sends instead of Get Device ID, as the stream set it */
  keepalivePing(): (() => Promise<unknown>) | undefined;
}

let bmcCount = 0;
const BMC_SESSION_ID = 0x0a0b0c0d;
const GET_PAYLOAD_INSTANCE_INFO = 0x4b;
const GET_DEVICE_ID = 0x01;
const INTEL = 343;

/** Get Payload Instance Info's answer: the owner's session id, SOL port 1, 11 reserved bytes */
function instanceInfo(owner: number): Buffer {
  const d = Buffer.alloc(16);
  d.writeUInt32LE(owner, 0);
  d[4] = 1;
  return d;
}
const streams: SolStream[] = [];

/**
 * A session whose BMC activates SOL and otherwise only records and delivers SOL packets. Not
 * established unless asked: then ending the stream sends no Deactivate Payload.
 */
function fakeBmc(options: { established?: boolean; activateCodes?: number[]; instanceInfo?: { completionCode: number; data: Buffer } | (() => Promise<{ completionCode: number; data: Buffer }>); manufacturerId?: number } = {}): FakeBmc {
  const remote = `192.0.2.${++bmcCount}:623`;
  const sent: SolPacket[] = [];
  let handler: ((payload: Buffer) => void) | undefined;
  let state: SessionState = options.established ? ({ kind: 'established' } as SessionState) : { kind: 'closing' };
  const commands: number[] = [];
  const activation = Buffer.alloc(10);
  activation.writeUInt16LE(204, 4); // inbound payload size
  activation.writeUInt16LE(204, 6);
  let ping: (() => Promise<unknown>) | undefined;
  const session: IpmiSession = {
    remote,
    cipherSuite: 3,
    privilege: 4,
    bmcSessionId: BMC_SESSION_ID,
    get state() {
      return state;
    },
    request: async (netFn, cmd) => {
      commands.push(cmd);
      if (cmd === GET_PAYLOAD_INSTANCE_INFO) {
        const info = typeof options.instanceInfo === 'function' ? await options.instanceInfo() : options.instanceInfo;
        return { netFn, cmd, seq: 0, ...(info ?? { completionCode: 0, data: instanceInfo(BMC_SESSION_ID) }) };
      }
      const completionCode = cmd === 0x48 ? (options.activateCodes?.shift() ?? 0) : 0;
      return { netFn, cmd, seq: 0, completionCode, data: completionCode === 0 ? activation : Buffer.alloc(0) };
    },
    command: async (_what, _netFn, cmd) => {
      commands.push(cmd);
      if (cmd !== GET_DEVICE_ID) return Buffer.alloc(0);
      const id = Buffer.alloc(15); // Get Device ID: the manufacturer id at bytes 6-8
      id.writeUIntLE(options.manufacturerId ?? 10876, 6, 3);
      return id;
    },
    sendPayload: (type, payload) => {
      if (type === PayloadType.sol) sent.push(decodeSolPacket(payload));
    },
    routePayload: async () => undefined,
    keepaliveWith: (p) => (ping = p),
    onPayload: (_type, h) => {
      handler = h;
      return () => (handler = undefined);
    },
    onClose: () => undefined,
    close: async () => {
      state = { kind: 'closed', reason: 'closed' };
    },
  };
  const deliver = (p: Partial<SolPacket>) => handler?.(encodeSolPacket({ seq: 0, ackSeq: 0, acceptedChars: 0, flags: 0, data: Buffer.alloc(0), ...p }));
  return { session, sent, deliver, commands, keepalivePing: () => ping };
}

async function open(bmc: FakeBmc): Promise<{ sol: SolStream; screen: () => string }> {
  const sol = await openSol(bmc.session, { retransmitMs: RETRANSMIT_MS, maxRetransmits: 5 });
  streams.push(sol);
  let text = '';
  sol.on('data', (d: Buffer) => (text += d.toString('latin1')));
  return { sol, screen: () => text };
}

const bytes = (text: string) => Buffer.from(text, 'latin1');
const tick = () => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** the packets that carry a sequence number (not ACK-only), as [seq, text, flags] */
const dataPackets = (sent: SolPacket[]) => sent.filter((p) => p.seq !== 0).map((p) => [p.seq, p.data.toString('latin1'), p.flags] as const);
const acks = (sent: SolPacket[]) => sent.filter((p) => p.seq === 0).map((p) => [p.ackSeq, p.acceptedChars] as const);

afterEach(() => {
  for (const s of streams.splice(0)) s.destroy();
});

describe('SOL from the BMC', () => {
  it('a repeat of the same sequence number with more characters delivers only the new ones, and ACKs them all', async () => {
    const bmc = fakeBmc();
    const { screen } = await open(bmc);
    bmc.deliver({ seq: 1, data: bytes('abc') });
    bmc.deliver({ seq: 1, data: bytes('abcdef') }); // our ACK was lost; the BMC added "def" meanwhile
    bmc.deliver({ seq: 2, data: bytes('ghi') });
    await tick();
    expect(screen()).toBe('abcdefghi');
    expect(acks(bmc.sent)).toEqual([
      [1, 3],
      [1, 6],
      [2, 3],
    ]);
  });

  it('a plain repeat, or a shorter one, delivers nothing again but is ACKed again', async () => {
    const bmc = fakeBmc();
    const { screen } = await open(bmc);
    bmc.deliver({ seq: 5, data: bytes('login: ') });
    bmc.deliver({ seq: 5, data: bytes('login: ') });
    bmc.deliver({ seq: 5, data: bytes('log') });
    bmc.deliver({ seq: 5, data: bytes('login: r') });
    await tick();
    expect(screen()).toBe('login: r');
    expect(acks(bmc.sent)).toEqual([
      [5, 7],
      [5, 7],
      [5, 3],
      [5, 8],
    ]);
  });

  it('a status-only packet (a sequence number, no characters) is ACKed with a count of 0', async () => {
    const bmc = fakeBmc();
    const { screen } = await open(bmc);
    bmc.deliver({ seq: 3, flags: SolStatus.breakDetected });
    bmc.deliver({ seq: 3, data: bytes('x') }); // its repeat with a character that came in meanwhile
    bmc.deliver({ seq: 0, ackSeq: 0 }); // nothing to acknowledge in a packet without a sequence number
    await tick();
    expect(acks(bmc.sent)).toEqual([
      [3, 0],
      [3, 1],
    ]);
    expect(screen()).toBe('x');
  });
});

describe('SOL to the BMC', () => {
  /** writes `text` and returns the packet that carried it, and whether the write completed yet */
  async function typed(bmc: FakeBmc, sol: SolStream, text: string): Promise<{ packet: SolPacket; done: () => boolean }> {
    let completed = false;
    sol.write(text, () => (completed = true));
    await waitFor(() => bmc.sent.some((p) => p.seq !== 0), 2000, 'the packet with the typed characters');
    return { packet: bmc.sent.find((p) => p.seq !== 0)!, done: () => completed };
  }

  it('every activation numbers its packets from 1, also the next one towards the same BMC (OpenBMC drops any other first number)', async () => {
    const bmc = fakeBmc();
    const first = await open(bmc);
    const { packet } = await typed(bmc, first.sol, 'one');
    expect(packet.seq).toBe(1);
    bmc.deliver({ ackSeq: 1, acceptedChars: 3 });
    await new Promise<void>((resolve) => first.sol.end(resolve));
    bmc.sent.length = 0;
    const second = await open(bmc);
    expect((await typed(bmc, second.sol, 'two')).packet).toMatchObject({ seq: 1, data: bytes('two') });
  });

  it('after a NACK, sends the characters again under a new sequence number, after a back-off', async () => {
    const bmc = fakeBmc();
    const { sol } = await open(bmc);
    const { packet, done } = await typed(bmc, sol, 'ls\r');
    const nackedAt = Date.now();
    bmc.deliver({ ackSeq: packet.seq, acceptedChars: 0, flags: SolStatus.nack });
    await waitFor(() => dataPackets(bmc.sent).length === 2, 2000, 'the resend');
    expect(Date.now() - nackedAt).toBeGreaterThanOrEqual(BACK_OFF_MS - 5);
    const again = nextSolSeq(packet.seq);
    expect(dataPackets(bmc.sent)).toEqual([
      [packet.seq, 'ls\r', 0],
      [again, 'ls\r', 0],
    ]);
    expect(done()).toBe(false);
    bmc.deliver({ ackSeq: again, acceptedChars: 3 });
    await waitFor(done, 2000, 'the write to complete');
  });

  it('after a NACK that took part of the packet, sends only the rest, under a new sequence number', async () => {
    const bmc = fakeBmc();
    const { sol } = await open(bmc);
    const { packet } = await typed(bmc, sol, 'hello');
    bmc.deliver({ ackSeq: packet.seq, acceptedChars: 2, flags: SolStatus.nack });
    await waitFor(() => dataPackets(bmc.sent).length === 2, 2000, 'the resend');
    expect(dataPackets(bmc.sent)[1]).toEqual([nextSolSeq(packet.seq), 'llo', 0]);
  });

  it('an ACK that accepted 0 characters is not taken as delivered: the characters go again', async () => {
    const bmc = fakeBmc();
    const { sol } = await open(bmc);
    const { packet, done } = await typed(bmc, sol, 'abc');
    // OpenIPMI's answer to a repeat of a sequence number it NACKed: an ACK of 0, the data not taken
    bmc.deliver({ ackSeq: packet.seq, acceptedChars: 0 });
    await tick();
    expect(done()).toBe(false);
    await waitFor(() => dataPackets(bmc.sent).length === 2, 2000, 'the resend');
    const again = nextSolSeq(packet.seq);
    expect(dataPackets(bmc.sent)[1]).toEqual([again, 'abc', 0]);
    bmc.deliver({ ackSeq: again, acceptedChars: 3 });
    await waitFor(done, 2000, 'the write to complete');
    expect(dataPackets(bmc.sent)).toHaveLength(2);
    expect(bmc.commands).toContain(GET_DEVICE_ID); // not Intel (a Supermicro's 10876): the count is literal
  });

  it('an Intel BMC (manufacturer id 343) ACKs accepting 0 without NACK: all are taken, as ipmitool -o intelplus reads it; nothing goes twice, Get Device ID asked once, told once', async () => {
    const bmc = fakeBmc({ manufacturerId: INTEL });
    const events: IpmiEvent[] = [];
    const sol = await openSol(bmc.session, { retransmitMs: RETRANSMIT_MS, maxRetransmits: 5, onEvent: (e) => events.push(e) });
    streams.push(sol);
    const { packet, done } = await typed(bmc, sol, 'ls\r');
    bmc.deliver({ ackSeq: packet.seq, acceptedChars: 0 });
    await waitFor(done, 2000, 'the write to complete');
    let second = false;
    sol.write('pwd\r', () => (second = true));
    await waitFor(() => dataPackets(bmc.sent).length === 2, 2000, 'the next packet');
    bmc.deliver({ ackSeq: dataPackets(bmc.sent)[1]![0], acceptedChars: 0 });
    await waitFor(() => second, 2000, 'the second write to complete');
    await sleep(RETRANSMIT_MS + BACK_OFF_MS); // a resend would have gone by now
    expect(dataPackets(bmc.sent).map(([, text]) => text)).toEqual(['ls\r', 'pwd\r']);
    expect(bmc.commands.filter((c) => c === GET_DEVICE_ID)).toHaveLength(1);
    expect(events).toEqual([{ kind: 'sol-accepted-zero', message: expect.stringMatching(/\(Intel, manufacturer id 343\) acknowledged our characters accepting 0 of them without NACK; as ipmitool's -o intelplus, such an ACK counts as all accepted/) }]);
  });

  it('on an Intel BMC a NACK accepting 0 is still a refusal: the characters go again', async () => {
    const bmc = fakeBmc({ manufacturerId: INTEL });
    const { sol } = await open(bmc);
    const { packet, done } = await typed(bmc, sol, 'abc');
    bmc.deliver({ ackSeq: packet.seq, acceptedChars: 0, flags: SolStatus.nack });
    await waitFor(() => dataPackets(bmc.sent).length === 2, 2000, 'the resend');
    expect(dataPackets(bmc.sent)[1]).toEqual([nextSolSeq(packet.seq), 'abc', 0]);
    expect(done()).toBe(false);
    expect(bmc.commands).not.toContain(GET_DEVICE_ID); // only an ACK without NACK raises the question
  });

  it('a break during the back-off waits for the resend to be accepted, then goes alone; what was typed after it follows: no character goes twice', async () => {
    const bmc = fakeBmc();
    const { sol } = await open(bmc);
    const { packet } = await typed(bmc, sol, 'abc');
    bmc.deliver({ ackSeq: packet.seq, acceptedChars: 0, flags: SolStatus.nack });
    expect(sol.sendBreak()).toBe(true);
    sol.write('d'); // the stream hands it over once "abc" is accepted and the break sent
    const again = nextSolSeq(packet.seq);
    await waitFor(() => dataPackets(bmc.sent).length === 2, 2000, 'the resend');
    expect(dataPackets(bmc.sent)[1]).toEqual([again, 'abc', 0]);
    bmc.deliver({ ackSeq: again, acceptedChars: 3 });
    await waitFor(() => dataPackets(bmc.sent).length === 3, 2000, 'the break');
    const brk = nextSolSeq(again);
    expect(dataPackets(bmc.sent)[2]).toEqual([brk, '', SolOperation.generateBreak]);
    bmc.deliver({ ackSeq: brk, acceptedChars: 0 });
    await waitFor(() => dataPackets(bmc.sent).length === 4, 2000, 'the packet with "d"');
    bmc.deliver({ ackSeq: nextSolSeq(brk), acceptedChars: 1 });
    await sleep(RETRANSMIT_MS / 2);
    expect(dataPackets(bmc.sent)).toEqual([
      [packet.seq, 'abc', 0],
      [again, 'abc', 0],
      [brk, '', SolOperation.generateBreak],
      [nextSolSeq(brk), 'd', 0],
    ]);
  });

  it('keystrokes written one by one while a packet waits for its ACK go together in the next packet: one round trip for all, not one each', async () => {
    const bmc = fakeBmc();
    const { sol } = await open(bmc);
    const { packet } = await typed(bmc, sol, 'l');
    // a console relays each keystroke as its own message, each in its own turn of the event loop
    let done = false;
    for (const key of ['s', ' ', '-', 'l', '\r']) {
      sol.write(key, () => void (key === '\r' && (done = true)));
      await tick();
    }
    expect(dataPackets(bmc.sent)).toHaveLength(1); // the rest waits for the first packet's ACK
    bmc.deliver({ ackSeq: packet.seq, acceptedChars: 1 });
    await waitFor(() => dataPackets(bmc.sent).length === 2, 2000, 'the next packet');
    expect(dataPackets(bmc.sent)[1]).toEqual([nextSolSeq(packet.seq), 's -l\r', 0]);
    expect(done).toBe(false); // a write completes when the BMC accepted it
    bmc.deliver({ ackSeq: nextSolSeq(packet.seq), acceptedChars: 5 });
    await waitFor(() => done, 2000, 'the writes to complete');
    expect(dataPackets(bmc.sent)).toHaveLength(2);
  });

  it('what piles up behind a packet goes in packets of at most the payload size the BMC named (200 characters here)', async () => {
    const bmc = fakeBmc();
    const { sol } = await open(bmc);
    const { packet } = await typed(bmc, sol, 'x');
    for (let i = 0; i < 300; i++) sol.write(String.fromCharCode(0x41 + (i % 26)));
    bmc.deliver({ ackSeq: packet.seq, acceptedChars: 1 });
    await waitFor(() => dataPackets(bmc.sent).length === 2, 2000, 'the second packet');
    const [seq, text] = dataPackets(bmc.sent)[1]!;
    expect(text.length).toBe(200);
    bmc.deliver({ ackSeq: seq, acceptedChars: 200 });
    await waitFor(() => dataPackets(bmc.sent).length === 3, 2000, 'the third packet');
    expect(dataPackets(bmc.sent)[2]![1]).toHaveLength(100);
    expect(dataPackets(bmc.sent).slice(1).map(([, t]) => t).join('')).toBe(Array.from({ length: 300 }, (_, i) => String.fromCharCode(0x41 + (i % 26))).join(''));
  });

  it('a break between two writes of one turn goes in a packet of its own, after the characters typed before it and before those typed after it', async () => {
    const bmc = fakeBmc();
    const { sol } = await open(bmc);
    sol.write('ab');
    sol.sendBreak();
    sol.write('cd');
    for (let n = 1; n <= 3; n++) {
      await waitFor(() => dataPackets(bmc.sent).length === n, 2000, `packet ${n}`);
      const [seq, text] = dataPackets(bmc.sent)[n - 1]!;
      bmc.deliver({ ackSeq: seq, acceptedChars: text.length });
    }
    expect(dataPackets(bmc.sent).map(([, text, flags]) => [text, flags])).toEqual([
      ['ab', 0],
      ['', SolOperation.generateBreak],
      ['cd', 0],
    ]);
    await new Promise<void>((resolve) => sol.end(resolve));
    expect(sol.sendBreak()).toBe(false);
  });

  it('a NACKed break is not sent again (the BMC has done it); the ACK timeout still ends a silent BMC', async () => {
    const bmc = fakeBmc();
    const { sol } = await open(bmc);
    const errors: Error[] = [];
    sol.on('error', (e) => errors.push(e));
    sol.sendBreak();
    await waitFor(() => bmc.sent.length === 1, 2000, 'the break');
    const [brk] = bmc.sent;
    expect(brk).toMatchObject({ flags: SolOperation.generateBreak, data: Buffer.alloc(0) });
    bmc.deliver({ ackSeq: brk!.seq, acceptedChars: 0, flags: SolStatus.nack });
    await sleep(BACK_OFF_MS * 2);
    expect(bmc.sent).toHaveLength(1);
    // the bound on retransmissions is kept: a BMC that stops answering ends the stream
    sol.write('z');
    await waitFor(() => errors.length > 0, 6 * RETRANSMIT_MS + 2000, 'the stream to fail');
    expect(errors[0]).toMatchObject({ code: 'TIMEOUT' });
    expect(dataPackets(bmc.sent).slice(1).every(([seq, text]) => seq === nextSolSeq(brk!.seq) && text === 'z')).toBe(true);
  });

  it('NACKs do not use up the retransmissions: after more NACKs than maxRetransmits, one lost datagram is retransmitted, not the end of the console', async () => {
    const bmc = fakeBmc();
    const { sol } = await open(bmc); // maxRetransmits: 5
    const errors: Error[] = [];
    sol.on('error', (e: Error) => errors.push(e));
    let written = false;
    sol.write(bytes('ls\r'), () => (written = true));
    // the host is in POST: its serial side takes nothing, six times
    for (let n = 1; n <= 6; n++) {
      await waitFor(() => dataPackets(bmc.sent).length === n, 2000, `transmission ${n}`);
      bmc.deliver({ ackSeq: dataPackets(bmc.sent)[n - 1]![0], acceptedChars: 0, flags: SolStatus.nack });
    }
    // the seventh packet is lost: no answer; its retransmission is answered
    await waitFor(() => dataPackets(bmc.sent).length === 8, 2 * RETRANSMIT_MS + 1000, 'the retransmission of the lost packet');
    const [seventh, retransmission] = dataPackets(bmc.sent).slice(6);
    expect(retransmission).toEqual(seventh);
    bmc.deliver({ ackSeq: retransmission![0], acceptedChars: 3 });
    await waitFor(() => written, 2000, 'the write to complete');
    expect(errors).toEqual([]);
  });

  it('a BMC that NACKs every packet gets the typed characters dropped after maxRefusalMs, once told, instead of a resend every back-off forever; the console goes on', async () => {
    const bmc = fakeBmc();
    const events: IpmiEvent[] = [];
    const sol = await openSol(bmc.session, { retransmitMs: RETRANSMIT_MS, maxRetransmits: 5, maxRefusalMs: 600, onEvent: (e) => events.push(e) });
    streams.push(sol);
    const errors: Error[] = [];
    sol.on('error', (e: Error) => errors.push(e));
    let written = false;
    sol.write(bytes('ls\r'), () => (written = true));
    // the BMC answers every packet with a NACK at once
    let answered = 0;
    const nackAll = setInterval(() => {
      const packets = dataPackets(bmc.sent);
      for (const [seq] of packets.slice(answered)) bmc.deliver({ ackSeq: seq, acceptedChars: 0, flags: SolStatus.nack });
      answered = packets.length;
    }, 5);
    try {
      await waitFor(() => written, 5000, 'the write to complete (dropped)');
    } finally {
      clearInterval(nackAll);
    }
    expect(events).toEqual([{ kind: 'sol-input-dropped', message: expect.stringMatching(/took none of our characters for 1 s \(NACK or nothing accepted\); 3 typed bytes dropped/) }]);
    const sentThen = bmc.sent.length;
    await sleep(4 * BACK_OFF_MS); // a window in which nothing is to be sent any more
    expect(bmc.sent.length).toBe(sentThen);
    expect(errors).toEqual([]);
    expect(sol.destroyed).toBe(false);
  });
});

describe('the end of the stream and Deactivate Payload', () => {
  const DEACTIVATE_PAYLOAD = 0x49;

  it('we end it: Deactivate Payload', async () => {
    const bmc = fakeBmc({ established: true });
    const { sol } = await open(bmc);
    await new Promise<void>((resolve) => sol.end(resolve));
    expect(bmc.commands.filter((c) => c === DEACTIVATE_PAYLOAD)).toHaveLength(1);
  });

  it('the BMC says it is deactivating (another client took SOL over): the stream ends without Deactivate Payload, which would end the new owner\'s console', async () => {
    const bmc = fakeBmc({ established: true });
    const { sol } = await open(bmc);
    const ended = new Promise((resolve) => sol.once('end', resolve));
    sol.resume();
    expect(sol.takenOver).toBe(false);
    bmc.deliver({ flags: SolStatus.deactivating });
    await ended;
    // said before the end, so a console that reconnects does not take SOL back (session.ts)
    expect(sol.takenOver).toBe(true);
    sol.destroy();
    await new Promise((resolve) => sol.once('close', resolve));
    expect(bmc.commands).not.toContain(DEACTIVATE_PAYLOAD);
  });

  it('our retransmissions run out and the BMC still names our session as SOL\'s owner: TIMEOUT (the network or the BMC), without Deactivate Payload', async () => {
    const bmc = fakeBmc({ established: true });
    const { sol } = await open(bmc);
    const failed = new Promise<Error>((resolve) => sol.once('error', resolve));
    sol.write('x');
    expect(await failed).toMatchObject({ code: 'TIMEOUT' });
    // the payload still ours: a reconnect takes it over
    expect(sol.takenOver).toBe(false);
    expect(bmc.commands).toContain(GET_PAYLOAD_INSTANCE_INFO);
    await new Promise((resolve) => (sol.closed ? resolve(null) : sol.once('close', resolve)));
    expect(bmc.commands).not.toContain(DEACTIVATE_PAYLOAD);
  });

  it('our retransmissions run out and the BMC does not answer who owns SOL either: TIMEOUT, not a takeover', async () => {
    const bmc = fakeBmc({ established: true, instanceInfo: () => Promise.reject(new Error('no answer')) });
    const { sol } = await open(bmc);
    const failed = new Promise<Error>((resolve) => sol.once('error', resolve));
    sol.write('x');
    expect(await failed).toMatchObject({ code: 'TIMEOUT' });
    expect(sol.takenOver).toBe(false);
  });

  it('our retransmissions run out because another session took SOL without telling us (ipmi_sim): a takeover, so a console yields instead of taking SOL back from whoever types there', async () => {
    const other = 0x11223344;
    const bmc = fakeBmc({ established: true, instanceInfo: { completionCode: 0, data: instanceInfo(other) } });
    const { sol } = await open(bmc);
    const failed = new Promise<Error>((resolve) => sol.once('error', resolve));
    sol.write('typed after the takeover');
    expect(await failed).toMatchObject({ code: 'CLOSED', message: expect.stringMatching(/SOL taken over by another session \(0x11223344, ours is 0x0a0b0c0d\), found after our characters went unacknowledged/) });
    expect(sol.takenOver).toBe(true);
    await new Promise((resolve) => (sol.closed ? resolve(null) : sol.once('close', resolve)));
    expect(bmc.commands).not.toContain(DEACTIVATE_PAYLOAD);
  });

  it('our retransmissions run out and the BMC names no owner (it dropped SOL): CLOSED, not a takeover, without Deactivate Payload', async () => {
    const bmc = fakeBmc({ established: true, instanceInfo: { completionCode: 0, data: instanceInfo(0) } });
    const { sol } = await open(bmc);
    const failed = new Promise<Error>((resolve) => sol.once('error', resolve));
    sol.write('x');
    expect(await failed).toMatchObject({ code: 'CLOSED', message: expect.stringMatching(/SOL no longer active, found after our characters went unacknowledged/) });
    expect(sol.takenOver).toBe(false);
    await new Promise((resolve) => (sol.closed ? resolve(null) : sol.once('close', resolve)));
    expect(bmc.commands).not.toContain(DEACTIVATE_PAYLOAD);
  });

  it('a stream closed while the BMC is asked who owns SOL sends no Deactivate Payload (SOL may be another\'s by then)', async () => {
    let askedAt = 0;
    const bmc = fakeBmc({
      established: true,
      instanceInfo: async () => {
        askedAt = Date.now();
        return await new Promise<never>(() => undefined);
      },
    });
    const { sol } = await open(bmc);
    sol.on('error', () => undefined);
    sol.write('x');
    await waitFor(() => askedAt > 0, 6 * RETRANSMIT_MS + 2000, 'the question who owns SOL');
    sol.destroy();
    await new Promise((resolve) => (sol.closed ? resolve(null) : sol.once('close', resolve)));
    expect(bmc.commands).not.toContain(DEACTIVATE_PAYLOAD);
  });

  it('an ACK that comes late, while the BMC is asked who owns SOL, lets the console go on', async () => {
    let answer!: () => void;
    const asked = new Promise<void>((resolve) => (answer = resolve));
    let askedAt = 0;
    const bmc = fakeBmc({
      established: true,
      instanceInfo: async () => {
        askedAt = Date.now();
        await asked;
        return { completionCode: 0, data: instanceInfo(BMC_SESSION_ID) };
      },
    });
    const { sol } = await open(bmc);
    const errors: Error[] = [];
    sol.on('error', (e) => errors.push(e));
    sol.write('slow');
    await waitFor(() => askedAt > 0, 6 * RETRANSMIT_MS + 2000, 'the question who owns SOL');
    const [last] = dataPackets(bmc.sent).slice(-1);
    bmc.deliver({ ackSeq: last![0], acceptedChars: 4 });
    answer();
    sol.write('on');
    await waitFor(() => dataPackets(bmc.sent).some(([, text]) => text === 'on'), 2000, 'the next characters sent');
    expect(errors).toEqual([]);
    expect(sol.destroyed).toBe(false);
  });
});

describe("the keepalive's check that SOL is still ours (Get Payload Instance Info)", () => {
  const DEACTIVATE_PAYLOAD = 0x49;

  async function checked(bmc: FakeBmc): Promise<{ sol: SolStream; errors: Error[]; events: IpmiEvent[] }> {
    const events: IpmiEvent[] = [];
    const sol = await openSol(bmc.session, { retransmitMs: RETRANSMIT_MS, onEvent: (e) => events.push(e) });
    streams.push(sol);
    const errors: Error[] = [];
    sol.on('error', (e: Error) => errors.push(e));
    sol.resume();
    return { sol, errors, events };
  }

  it('names our session: the stream goes on; its end gives the keepalive back to Get Device ID', async () => {
    const bmc = fakeBmc({ established: true });
    const { sol, errors } = await checked(bmc);
    const ping = bmc.keepalivePing();
    expect(ping).toBeDefined();
    await ping!();
    expect(bmc.commands).toEqual([0x48, GET_PAYLOAD_INSTANCE_INFO]);
    expect(errors).toEqual([]);
    expect(sol.destroyed).toBe(false);
    await new Promise<void>((resolve) => sol.end(resolve));
    expect(bmc.keepalivePing()).toBeUndefined();
    expect(sol.takenOver).toBe(false);
  });

  it.each([
    ['another session', 0x11223344, /SOL on BMC .* ended: SOL taken over by another session \(0x11223344, ours is 0x0a0b0c0d\)/, true],
    ['no session (the payload is not active)', 0, /SOL on BMC .* ended: SOL no longer active/, false],
  ])('names %s: the stream fails CLOSED without Deactivate Payload', async (_, owner, message, takenOver) => {
    const bmc = fakeBmc({ established: true, instanceInfo: { completionCode: 0, data: instanceInfo(owner) } });
    const { sol, errors } = await checked(bmc);
    const closed = new Promise((resolve) => sol.once('close', resolve));
    await bmc.keepalivePing()!();
    await closed;
    expect(errors).toEqual([expect.objectContaining({ code: 'CLOSED', message: expect.stringMatching(message) })]);
    expect(sol.takenOver).toBe(takenOver);
    expect(bmc.commands).not.toContain(DEACTIVATE_PAYLOAD);
  });

  it('a BMC that refuses the command (0xC1): the keepalive goes back to Get Device ID, told once; the stream goes on', async () => {
    const bmc = fakeBmc({ established: true, instanceInfo: { completionCode: 0xc1, data: Buffer.alloc(0) } });
    const { sol, errors, events } = await checked(bmc);
    await bmc.keepalivePing()!();
    expect(bmc.keepalivePing()).toBeUndefined();
    expect(events).toEqual([{ kind: 'sol-owner-unchecked', message: expect.stringMatching(/answered Get Payload Instance Info with invalid or unsupported command; the keepalive cannot tell whether SOL is still ours/) }]);
    expect(errors).toEqual([]);
    expect(sol.destroyed).toBe(false);
  });
});

describe('Activate Payload', () => {
  it('its own completion codes 0x81-0x84 are named, as ipmitool and pyghmi name them', async () => {
    const named: Array<[number, RegExp]> = [
      [0x81, /0x81: SOL is disabled on the BMC/],
      [0x82, /0x82: the payload activation limit is reached/],
      [0x83, /0x83: SOL cannot be activated with encryption/],
      [0x84, /0x84: SOL cannot be activated without encryption/],
    ];
    for (const [code, message] of named) {
      const bmc = fakeBmc({ activateCodes: [code] });
      await expect(openSol(bmc.session)).rejects.toMatchObject({ code: 'COMPLETION_CODE', message: expect.stringMatching(message) });
    }
  });

  it('a takeover whose activation still finds the payload active asks again after a pause, up to 3 times', async () => {
    const bmc = fakeBmc({ activateCodes: [0x80, 0x80, 0x80, 0] });
    streams.push(await openSol(bmc.session, { takeOver: true }));
    expect(bmc.commands).toEqual([0x48, 0x49, 0x48, 0x48, 0x48]);
    const busy = fakeBmc({ activateCodes: [0x80, 0x80, 0x80, 0x80, 0] });
    await expect(openSol(busy.session, { takeOver: true })).rejects.toMatchObject({ code: 'BUSY' });
    expect(busy.commands).toEqual([0x48, 0x49, 0x48, 0x48, 0x48]);
  });
});
