/**
 * The simulated BMC driven in memory by a minimal console written here from the codecs (not the
 * client's session engine): handshake outcomes, privileges, commands, SOL and robustness.
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cipherSuite } from '../../src/ipmi/cipher.js';
import { decodeBootOptionsResponse, decodeChassisStatus, decodeDeviceId } from '../../src/ipmi/commands.js';
import { parseFru } from '../../src/ipmi/fru.js';
import { guidToUuid } from '../../src/ipmi/guid.js';
import { decodeV15, decodeV2, encodeV15, encodeV2, PayloadType, type SessionKeys } from '../../src/ipmi/lan.js';
import { decodeResponse, encodeRequest, NetFn, type IpmiResponse } from '../../src/ipmi/message.js';
import {
  decodeOpenSessionResponse,
  decodeRakp2,
  decodeRakpCode,
  encodeOpenSessionRequest,
  encodeRakp1,
  encodeRakpCode,
  passwordKey,
  rakp2Code,
  rakp3Code,
  rakp4Icv,
  sessionIntegrityKey,
  suiteAlgorithms,
  type HandshakeParameters,
} from '../../src/ipmi/rakp.js';
import { decodePresencePong, encodePresencePing } from '../../src/ipmi/rmcp.js';
import { decodeSolPacket, encodeSolPacket, SolOperation, type SolPacket } from '../../src/ipmi/sol-packet.js';
import { SimBmc } from '../../src/sim/ipmi-bmc.js';
import { deriveSessionKeys, type Remote } from '../../src/sim/ipmi-session.js';
import { createMachineState, SimMachine } from '../../src/sim/machine.js';
import { SerialLine } from '../../src/sim/serial.js';

const CONSOLE: Remote = { address: '192.0.2.7', port: 40000 };

interface Harness {
  machine: SimMachine;
  serial: SerialLine;
  bmc: SimBmc;
  /** datagrams the BMC sent, oldest first */
  sent: Buffer[];
  errors: unknown[];
}

function harness(over: { maxSessions?: number; power?: 'on' | 'off' } = {}): Harness {
  const machine = new SimMachine({ ...createMachineState('bmc-unit', 0), power: over.power ?? 'on' });
  const serial = new SerialLine(machine, { hostname: 'unit' });
  const sent: Buffer[] = [];
  const errors: unknown[] = [];
  const bmc = new SimBmc({
    machine,
    serial,
    user: 'ADMIN',
    password: 'secret',
    maxSessions: over.maxSessions ?? 4,
    sessionTimeoutMs: 60_000,
    handshakeTimeoutMs: 10_000,
    port: () => 6230,
    send: (d) => sent.push(d),
    solRetryMs: 100,
    onError: (e) => errors.push(e),
  });
  return { machine, serial, bmc, sent, errors };
}

/** Sends a datagram and returns what the BMC answered (undefined for silence). */
function exchange(h: Harness, datagram: Buffer, remote = CONSOLE): Buffer | undefined {
  const before = h.sent.length;
  h.bmc.handle(datagram, remote);
  return h.sent[before]; // the answer comes first; SOL data may follow
}

interface Opened {
  bmcSessionId: number;
  consoleSessionId: number;
  keys: SessionKeys;
  seq: number;
  rqSeq: number;
}

type HandshakeOutcome =
  | { step: 'open' | 'rakp2' | 'rakp4'; status: number }
  | { step: 'rakp2-proof' }
  | { step: 'done'; session: Opened };

let consoleIds = 0x1000;

function handshake(h: Harness, options: { suite?: number; user?: string; password?: string; privilege?: number } = {}): HandshakeOutcome {
  const suite = cipherSuite(options.suite ?? 17);
  const consoleSessionId = ++consoleIds;
  const privilege = options.privilege ?? 4;
  const open = decodeOpenSessionResponse(
    decodeV2(
      exchange(h, encodeV2({ payloadType: PayloadType.openSessionRequest, sessionId: 0, seq: 0, payload: encodeOpenSessionRequest({ tag: 7, privilege, consoleSessionId, ...suiteAlgorithms(suite) }) }))!,
    ).payload,
  );
  if (open.status !== 0) return { step: 'open', status: open.status };
  const params: HandshakeParameters = {
    auth: suite.auth,
    consoleSessionId,
    bmcSessionId: open.bmcSessionId,
    consoleRandom: randomBytes(16),
    bmcRandom: Buffer.alloc(16),
    bmcGuid: Buffer.alloc(16),
    role: privilege | 0x10,
    username: Buffer.from(options.user ?? 'ADMIN'),
  };
  const rakp1 = encodeRakp1({ tag: 8, bmcSessionId: open.bmcSessionId, consoleRandom: params.consoleRandom, role: params.role, username: params.username });
  const rakp2 = decodeRakp2(decodeV2(exchange(h, encodeV2({ payloadType: PayloadType.rakp1, sessionId: 0, seq: 0, payload: rakp1 }))!).payload);
  if (rakp2.status !== 0) return { step: 'rakp2', status: rakp2.status };
  params.bmcRandom = rakp2.bmcRandom;
  params.bmcGuid = rakp2.bmcGuid;
  const kuid = passwordKey(options.password ?? 'secret');
  if (!rakp2Code(params, kuid).equals(rakp2.keyExchangeCode)) return { step: 'rakp2-proof' };
  const rakp3 = encodeRakpCode({ tag: 9, status: 0, sessionId: open.bmcSessionId, code: rakp3Code(params, kuid) });
  const rakp4 = decodeRakpCode(decodeV2(exchange(h, encodeV2({ payloadType: PayloadType.rakp3, sessionId: 0, seq: 0, payload: rakp3 }))!).payload, 'RAKP 4');
  if (rakp4.status !== 0) return { step: 'rakp4', status: rakp4.status };
  const sik = sessionIntegrityKey(params, kuid);
  expect(rakp4.code).toEqual(rakp4Icv(params, sik));
  const { k1, k2 } = deriveSessionKeys(suite.auth, sik);
  const keys: SessionKeys = { integrity: suite.integrity, confidentiality: suite.confidentiality, k1, k2 };
  return { step: 'done', session: { bmcSessionId: open.bmcSessionId, consoleSessionId, keys, seq: 0, rqSeq: 0 } };
}

function open(h: Harness, options: Parameters<typeof handshake>[1] = {}): Opened {
  const outcome = handshake(h, options);
  if (outcome.step !== 'done') throw new Error(`handshake stopped at ${outcome.step}`);
  return outcome.session;
}

function packet(s: Opened, payloadType: number, payload: Buffer): Buffer {
  return encodeV2({ payloadType, sessionId: s.bmcSessionId, seq: ++s.seq, payload }, s.keys);
}

function request(h: Harness, s: Opened, netFn: number, cmd: number, data: number[] | Buffer = []): IpmiResponse {
  s.rqSeq = (s.rqSeq + 1) & 0x3f;
  const answer = exchange(h, packet(s, PayloadType.ipmi, encodeRequest({ netFn, cmd, seq: s.rqSeq, data: Buffer.from(data) })));
  if (!answer) throw new Error(`no answer to netFn 0x${netFn.toString(16)} cmd 0x${cmd.toString(16)}`);
  const p = decodeV2(answer, s.keys);
  expect(p.sessionId).toBe(s.consoleSessionId);
  const r = decodeResponse(p.payload);
  expect([r.seq, r.cmd, r.netFn]).toEqual([s.rqSeq, cmd, netFn | 1]);
  return r;
}

function admin(h: Harness, options: Parameters<typeof handshake>[1] = {}): Opened {
  const s = open(h, options);
  expect(request(h, s, NetFn.app, 0x3b, [4]).completionCode).toBe(0);
  return s;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('SimBmc before a session', () => {
  it('answers an ASF presence ping', () => {
    const h = harness();
    expect(decodePresencePong(exchange(h, encodePresencePing(42))!)).toEqual({ tag: 42, ipmiSupported: true });
  });

  it('offers IPMI 2.0 in Get Channel Authentication Capabilities (IPMI 1.5 wrapper)', () => {
    const h = harness();
    const answer = decodeResponse(decodeV15(exchange(h, encodeV15(0, 0, encodeRequest({ netFn: NetFn.app, cmd: 0x38, seq: 1, data: Buffer.from([0x8e, 4]) })))!).message);
    expect(answer.completionCode).toBe(0);
    expect(answer.data[1]! & 0x80).toBe(0x80);
    expect(answer.data[3]! & 0x02).toBe(0x02);
  });

  it('lists cipher suites 3 and 17, also in an RMCP+ wrapper without a session', () => {
    const h = harness();
    const req = encodeRequest({ netFn: NetFn.app, cmd: 0x54, seq: 2, data: Buffer.from([0x0e, 0, 0x80]) });
    const answer = decodeResponse(decodeV2(exchange(h, encodeV2({ payloadType: PayloadType.ipmi, sessionId: 0, seq: 0, payload: req }))!).payload);
    expect(answer.data).toEqual(Buffer.from([1, 0xc0, 3, 0x01, 0x41, 0x81, 0xc0, 17, 0x03, 0x44, 0x81]));
  });
});

describe('SimBmc handshake', () => {
  it.each([3, 17])('opens a session with cipher suite %d and answers at User privilege until raised', (suite) => {
    const h = harness();
    const s = open(h, { suite });
    expect(h.bmc.activeSessions()).toBe(1);
    expect(decodeDeviceId(request(h, s, NetFn.app, 0x01).data).firmwareRevision).toMatch(/^\d+\.\d\d$/);
    expect(request(h, s, NetFn.chassis, 0x02, [1]).completionCode).toBe(0xd4);
    expect(request(h, s, NetFn.app, 0x3b, [4]).data).toEqual(Buffer.from([4]));
    expect(request(h, s, NetFn.chassis, 0x02, [0]).completionCode).toBe(0);
    expect(h.machine.state.power).toBe('off');
  });

  it('refuses other cipher suites with status 0x11', () => {
    const h = harness();
    expect(handshake(h, { suite: 1 })).toEqual({ step: 'open', status: 0x11 });
    expect(handshake(h, { suite: 16 })).toEqual({ step: 'open', status: 0x11 });
    expect(h.bmc.pendingSessions()).toBe(0);
  });

  it('refuses an unknown user in RAKP 2 with status 0x0d and frees the slot', () => {
    const h = harness();
    expect(handshake(h, { user: 'root' })).toEqual({ step: 'rakp2', status: 0x0d });
    expect(h.bmc.pendingSessions()).toBe(0);
  });

  it('proves another password under the wrongCredentials fault, so the console fails as with a wrong password', () => {
    const h = harness();
    h.machine.state.faults.wrongCredentials = true;
    expect(handshake(h)).toEqual({ step: 'rakp2-proof' });
    expect(handshake(h, { password: 'not-the-password' }).step).toBe('done'); // what the BMC uses instead
    h.machine.state.faults.wrongCredentials = false;
    expect(handshake(h).step).toBe('done');
  });

  it('answers a wrong RAKP 3 code with status 0x0f and drops the session', () => {
    const h = harness();
    // The BMC checks RAKP 3 against its own password: a console that ignores the RAKP 2 proof fails here.
    h.machine.state.faults.wrongCredentials = true;
    const consoleSessionId = 0x77;
    const openAnswer = decodeOpenSessionResponse(
      decodeV2(exchange(h, encodeV2({ payloadType: 0x10, sessionId: 0, seq: 0, payload: encodeOpenSessionRequest({ tag: 1, privilege: 4, consoleSessionId, ...suiteAlgorithms(cipherSuite(3)) }) }))!).payload,
    );
    exchange(h, encodeV2({ payloadType: 0x12, sessionId: 0, seq: 0, payload: encodeRakp1({ tag: 2, bmcSessionId: openAnswer.bmcSessionId, consoleRandom: randomBytes(16), role: 0x14, username: Buffer.from('ADMIN') }) }));
    const rakp4 = decodeRakpCode(
      decodeV2(exchange(h, encodeV2({ payloadType: 0x14, sessionId: 0, seq: 0, payload: encodeRakpCode({ tag: 3, status: 0, sessionId: openAnswer.bmcSessionId, code: randomBytes(20) }) }))!).payload,
      'RAKP 4',
    );
    expect(rakp4).toMatchObject({ status: 0x0f, sessionId: consoleSessionId });
    expect(h.bmc.pendingSessions() + h.bmc.activeSessions()).toBe(0);
  });

  it('drops a half-open session when the console sends RAKP 3 with an error status', () => {
    const h = harness();
    h.machine.state.faults.wrongCredentials = true;
    expect(handshake(h).step).toBe('rakp2-proof');
    expect(h.bmc.pendingSessions()).toBe(1);
    const id = decodeOpenSessionResponse(decodeV2(h.sent[0]!).payload).bmcSessionId;
    expect(exchange(h, encodeV2({ payloadType: 0x14, sessionId: 0, seq: 0, payload: encodeRakpCode({ tag: 3, status: 0x0f, sessionId: id, code: Buffer.alloc(0) }) }))).toBeUndefined();
    expect(h.bmc.pendingSessions()).toBe(0);
  });

  it('answers status 0x01 when all slots are taken or under the sessionsFull fault', () => {
    const h = harness({ maxSessions: 2 });
    open(h);
    open(h);
    expect(handshake(h)).toEqual({ step: 'open', status: 0x01 });
    const h2 = harness();
    h2.machine.state.faults.sessionsFull = true;
    expect(handshake(h2)).toEqual({ step: 'open', status: 0x01 });
  });

  it('answers a retransmitted Open Session and RAKP 3 alike, without a second session', () => {
    const h = harness();
    const openRequest = encodeV2({ payloadType: 0x10, sessionId: 0, seq: 0, payload: encodeOpenSessionRequest({ tag: 1, privilege: 4, consoleSessionId: 5, ...suiteAlgorithms(cipherSuite(3)) }) });
    const first = exchange(h, openRequest)!;
    expect(decodeOpenSessionResponse(decodeV2(exchange(h, openRequest)!).payload).bmcSessionId).toBe(decodeOpenSessionResponse(decodeV2(first).payload).bmcSessionId);
    expect(h.bmc.pendingSessions()).toBe(1);
  });

  it('drops sessions idle beyond their timeout', () => {
    const h = harness();
    open(h);
    h.bmc.sweep(Date.now() + 59_000);
    expect(h.bmc.activeSessions()).toBe(1);
    h.bmc.sweep(Date.now() + 61_000);
    expect(h.bmc.activeSessions()).toBe(0);
  });
});

describe('SimBmc established session', () => {
  it('ignores replayed and tampered packets', () => {
    const h = harness();
    const s = admin(h);
    const datagram = packet(s, PayloadType.ipmi, encodeRequest({ netFn: NetFn.app, cmd: 0x01, seq: 9, data: Buffer.alloc(0) }));
    expect(exchange(h, datagram)).toBeDefined();
    expect(exchange(h, datagram)).toBeUndefined();
    const tampered = packet(s, PayloadType.ipmi, encodeRequest({ netFn: NetFn.app, cmd: 0x01, seq: 10, data: Buffer.alloc(0) }));
    tampered[20] = tampered[20]! ^ 1;
    expect(exchange(h, tampered)).toBeUndefined();
    const clear = encodeV2({ payloadType: PayloadType.ipmi, sessionId: s.bmcSessionId, seq: ++s.seq, payload: encodeRequest({ netFn: NetFn.app, cmd: 1, seq: 11, data: Buffer.alloc(0) }) });
    expect(exchange(h, clear)).toBeUndefined();
    expect(h.errors).toEqual([]);
  });

  it('closes sessions with Close Session, and answers 0x87 for an unknown id', () => {
    const h = harness();
    const s = admin(h);
    const other = open(h);
    const id = (n: number) => [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24];
    expect(request(h, s, NetFn.app, 0x3c, id(12345)).completionCode).toBe(0x87);
    expect(request(h, s, NetFn.app, 0x3c, id(other.bmcSessionId)).completionCode).toBe(0);
    expect(request(h, s, NetFn.app, 0x3c, id(s.bmcSessionId)).completionCode).toBe(0);
    expect(h.bmc.activeSessions()).toBe(0);
  });

  it('serves chassis, boot, GUID and FRU commands from the machine state', () => {
    const h = harness();
    const s = admin(h);
    expect(decodeChassisStatus(request(h, s, NetFn.chassis, 0x01).data)).toMatchObject({ power: 'on', identify: 'off' });
    request(h, s, NetFn.chassis, 0x04, [0, 1]);
    expect(decodeChassisStatus(request(h, s, NetFn.chassis, 0x01).data).identify).toBe('on');
    request(h, s, NetFn.chassis, 0x04, [10]);
    expect(decodeChassisStatus(request(h, s, NetFn.chassis, 0x01).data).identify).toBe('temporary');
    request(h, s, NetFn.chassis, 0x04, [0]);
    expect(h.machine.state.identify).toBe(false);

    expect(request(h, s, NetFn.chassis, 0x08, [5, 0xe0, 0x18, 0, 0, 0]).completionCode).toBe(0);
    expect(h.machine.state).toMatchObject({ boot: 'bios', bootPersistent: true, bootUefi: true });
    expect(decodeBootOptionsResponse(request(h, s, NetFn.chassis, 0x09, [5, 0, 0]).data)).toMatchObject({ device: 'bios', persistent: true, valid: true });
    expect(request(h, s, NetFn.chassis, 0x08, [5, 0x80, 0x14, 0, 0, 0]).completionCode).toBe(0xcc); // cdrom: not simulated
    expect(request(h, s, NetFn.chassis, 0x08, [7, 0]).completionCode).toBe(0x80);

    // parameter 0: a lock one holder takes (0x81 for the second), commit write keeps it, set complete frees it
    h.machine.state.bootQuirks.noSetInProgress = false;
    expect(request(h, s, NetFn.chassis, 0x08, [0, 1]).completionCode).toBe(0);
    expect(request(h, s, NetFn.chassis, 0x09, [0, 0, 0]).data.toString('hex')).toBe('010001');
    expect(request(h, s, NetFn.chassis, 0x08, [0, 1]).completionCode).toBe(0x81);
    expect(request(h, s, NetFn.chassis, 0x08, [0, 2]).completionCode).toBe(0);
    expect(request(h, s, NetFn.chassis, 0x08, [0, 0]).completionCode).toBe(0);
    expect(request(h, s, NetFn.chassis, 0x09, [0, 0, 0]).data.toString('hex')).toBe('010000');
    // parameter 4: the write mask selects the bits written
    expect(request(h, s, NetFn.chassis, 0x08, [4, 0x01, 0xff]).completionCode).toBe(0);
    expect(request(h, s, NetFn.chassis, 0x09, [4, 0, 0]).data.toString('hex')).toBe('01040001');
    // the disk byte: 0x08 everywhere, 0x24 only where the vendor reads it (Supermicro-like), reported back in its own form
    h.machine.state.manufacturer = 'Lenovo';
    expect(request(h, s, NetFn.chassis, 0x08, [5, 0xe0, 0x24, 0, 0, 0]).completionCode).toBe(0xcc);
    expect(request(h, s, NetFn.chassis, 0x08, [5, 0xe0, 0x08, 0, 0, 0]).completionCode).toBe(0);
    expect(request(h, s, NetFn.chassis, 0x09, [5, 0, 0]).data.toString('hex')).toBe('0105e008000000');
    h.machine.state.manufacturer = 'Supermicro';
    expect(request(h, s, NetFn.chassis, 0x08, [5, 0xa0, 0x24, 0, 0, 0]).completionCode).toBe(0);
    expect(h.machine.state).toMatchObject({ boot: 'disk', bootPersistent: false });
    expect(request(h, s, NetFn.chassis, 0x09, [5, 0, 0]).data.toString('hex')).toBe('0105a024000000');
    // a BMC without parameter 0
    h.machine.state.bootQuirks.noSetInProgress = true;
    expect(request(h, s, NetFn.chassis, 0x08, [0, 1]).completionCode).toBe(0x80);

    expect(guidToUuid(request(h, s, NetFn.app, 0x37).data, 'smbios')).toBe(h.machine.state.uuid);

    const size = request(h, s, NetFn.storage, 0x10, [0]).data.readUInt16LE(0);
    const image: Buffer[] = [];
    for (let offset = 0; offset < size; offset += 24) {
      const r = request(h, s, NetFn.storage, 0x11, [0, offset & 0xff, offset >> 8, 24]);
      image.push(r.data.subarray(1, 1 + r.data[0]!));
    }
    expect(parseFru(Buffer.concat(image)).board?.serial).toBe(h.machine.state.fru.boardSerial);
    expect(request(h, s, NetFn.storage, 0x11, [0, 0, 0, 33]).completionCode).toBe(0xca);
    expect(request(h, s, NetFn.storage, 0x11, [1, 0, 0, 8]).completionCode).toBe(0xcb);
    expect(request(h, s, NetFn.storage, 0x11, [0, size & 0xff, size >> 8, 8]).completionCode).toBe(0xc9);
    expect(request(h, s, 0x2c, 0x3e, [0]).completionCode).toBe(0xc1);
  });
});

describe('SimBmc SOL', () => {
  function solPackets(h: Harness, s: Opened, from: number): SolPacket[] {
    return h.sent
      .slice(from)
      .filter((d) => d.readUInt32LE(6) === s.consoleSessionId)
      .map((d) => decodeV2(d, s.keys))
      .filter((p) => p.payloadType === PayloadType.sol)
      .map((p) => decodeSolPacket(p.payload));
  }

  it('activates once, replays the screen, acknowledges input, echoes it and records breaks', () => {
    vi.useFakeTimers();
    const h = harness();
    const s = admin(h);
    let mark = h.sent.length;
    const activation = request(h, s, NetFn.app, 0x48, [1, 1, 0xc6, 0, 0, 0]);
    expect(activation.completionCode).toBe(0);
    expect(activation.data.length).toBe(12);
    expect(activation.data.readUInt16LE(8)).toBe(6230);
    expect(request(h, s, NetFn.app, 0x4a, [1]).data).toEqual(Buffer.from([1, 1, 0]));
    expect(request(h, open(h), NetFn.app, 0x48, [1, 1, 0xc6, 0, 0, 0]).completionCode).toBe(0x80);

    // The screen so far arrives packet by packet, each retransmitted until acknowledged.
    const screen: Buffer[] = [];
    for (let i = 0; i < 20; i++) {
      vi.advanceTimersByTime(0);
      const p = solPackets(h, s, mark).find((x) => x.seq !== 0);
      if (!p) break;
      if (i === 0) {
        vi.advanceTimersByTime(100); // no ack: the same packet again
        expect(solPackets(h, s, mark).filter((x) => x.seq === p.seq)).toEqual([p, p]);
      }
      screen.push(p.data);
      mark = h.sent.length;
      h.bmc.handle(packet(s, PayloadType.sol, encodeSolPacket({ seq: 0, ackSeq: p.seq, acceptedChars: p.data.length, flags: 0, data: Buffer.alloc(0) })), CONSOLE);
    }
    expect(Buffer.concat(screen).toString('latin1').endsWith('unit login: ')).toBe(true);

    // as OpenBMC: a new activation takes 1 first; any other number is dropped unanswered
    mark = h.sent.length;
    h.bmc.handle(packet(s, PayloadType.sol, encodeSolPacket({ seq: 3, ackSeq: 0, acceptedChars: 0, flags: 0, data: Buffer.from('no') })), CONSOLE);
    vi.advanceTimersByTime(20);
    expect(solPackets(h, s, mark)).toEqual([]); // neither an ACK nor an echo

    h.bmc.handle(packet(s, PayloadType.sol, encodeSolPacket({ seq: 1, ackSeq: 0, acceptedChars: 0, flags: 0, data: Buffer.from('hi') })), CONSOLE);
    vi.advanceTimersByTime(20);
    const [ack, echo] = solPackets(h, s, mark);
    expect(ack).toMatchObject({ seq: 0, ackSeq: 1, acceptedChars: 2 });
    expect(echo?.data.toString()).toBe('hi');

    h.bmc.handle(packet(s, PayloadType.sol, encodeSolPacket({ seq: 3, ackSeq: 0, acceptedChars: 0, flags: SolOperation.generateBreak, data: Buffer.alloc(0) })), CONSOLE);
    expect(h.serial.breaks).toBe(0); // 2 expected
    h.bmc.handle(packet(s, PayloadType.sol, encodeSolPacket({ seq: 2, ackSeq: 0, acceptedChars: 0, flags: SolOperation.generateBreak, data: Buffer.alloc(0) })), CONSOLE);
    expect(h.serial.breaks).toBe(1);

    expect(request(h, s, NetFn.app, 0x49, [1, 1, 0, 0, 0, 0]).completionCode).toBe(0);
    expect(h.bmc.activeSolPayloads()).toBe(0);
    expect(request(h, s, NetFn.app, 0x49, [1, 1, 0, 0, 0, 0]).completionCode).toBe(0x80);
  });

  it('ends the payload with its session', () => {
    const h = harness();
    const s = admin(h);
    request(h, s, NetFn.app, 0x48, [1, 1, 0xc6, 0, 0, 0]);
    expect(h.bmc.activeSolPayloads()).toBe(1);
    request(h, s, NetFn.app, 0x3c, [s.bmcSessionId & 0xff, (s.bmcSessionId >> 8) & 0xff, (s.bmcSessionId >> 16) & 0xff, s.bmcSessionId >>> 24]);
    expect(h.bmc.activeSolPayloads()).toBe(0);
    h.bmc.close();
    h.serial.close();
  });
});

describe('SimBmc robustness', () => {
  it('survives random and mutated datagrams and still opens sessions afterwards', () => {
    const h = harness();
    const live = admin(h);
    const seeds = [
      encodePresencePing(1),
      encodeV15(0, 0, encodeRequest({ netFn: NetFn.app, cmd: 0x38, seq: 1, data: Buffer.from([0x8e, 4]) })),
      encodeV2({ payloadType: 0x10, sessionId: 0, seq: 0, payload: encodeOpenSessionRequest({ tag: 1, privilege: 4, consoleSessionId: 9, ...suiteAlgorithms(cipherSuite(17)) }) }),
      encodeV2({ payloadType: 0x12, sessionId: 0, seq: 0, payload: encodeRakp1({ tag: 2, bmcSessionId: live.bmcSessionId, consoleRandom: Buffer.alloc(16), role: 0x14, username: Buffer.from('ADMIN') }) }),
      encodeV2({ payloadType: 0x14, sessionId: 0, seq: 0, payload: encodeRakpCode({ tag: 3, status: 0, sessionId: live.bmcSessionId, code: Buffer.alloc(20) }) }),
      packet(live, PayloadType.ipmi, encodeRequest({ netFn: NetFn.app, cmd: 0x48, seq: 3, data: Buffer.from([1, 1, 0xc6, 0, 0, 0]) })),
      packet(live, PayloadType.sol, encodeSolPacket({ seq: 1, ackSeq: 0, acceptedChars: 0, flags: 0, data: Buffer.from('x') })),
    ];
    const mutated = fc
      .tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.option(fc.nat()))
      .map(([seed, edits, cut]) => {
        const d = Buffer.from(seed);
        for (const [at, value] of edits) d[at % d.length] = value;
        return cut === null ? d : d.subarray(0, cut % (d.length + 1));
      });
    fc.assert(
      fc.property(fc.oneof(mutated, fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a))), (datagram) => {
        h.bmc.handle(datagram, CONSOLE);
        expect(h.errors).toEqual([]);
      }),
      { numRuns: 3000 },
    );
    h.bmc.close();
    expect(admin(h).bmcSessionId).not.toBe(0);
    h.bmc.close();
    h.serial.close();
  });
});
