/**
 * How the IPMI client copes with real BMCs that are not ipmi_sim (issue 10): pre-session answers
 * in either framing, the SOL port in either byte order, the cipher-suite and user-lookup fallbacks,
 * IPMI 1.5-only BMCs. Decoders get fast-check properties; the fallbacks run the client's real
 * session engine against the simulated BMC in memory (no sockets), quirks switched on per test.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cipherSuite, type CipherChoice } from '../../src/ipmi/cipher.js';
import { chassisControl, chassisIdentify, Cmd, getChassisStatus } from '../../src/ipmi/commands.js';
import { decodeAuthCapabilities, nextUserLookup, preSessionMessage, sessionAnswer, settledSuite, type EstablishedSession } from '../../src/ipmi/handshake.js';
import { encodeV15, encodeV2, PayloadType } from '../../src/ipmi/lan.js';
import { decodeRequest, encodeResponse, NetFn } from '../../src/ipmi/message.js';
import { encodeRakp2, encodeRakpCode, suiteAlgorithms } from '../../src/ipmi/rakp.js';
import { openSession, type IpmiEvent } from '../../src/ipmi/session.js';
import { solPort } from '../../src/ipmi/sol.js';
import type { DatagramChannel } from '../../src/ipmi/transport.js';
import { SimBmc } from '../../src/sim/ipmi-bmc.js';
import { createMachineState, SimMachine } from '../../src/sim/machine.js';
import type { SimQuirkName } from '../../src/sim/quirks.js';
import { waitFor } from '../helpers/wait.js';
import { SerialLine } from '../../src/sim/serial.js';

const message = Buffer.from([0x81, 0x1c, 0x63, 0x20, 0x04, 0x38, 0x00, 0x01, 0x80, 0x04, 0x02, 0, 0, 0, 0, 0x3d]);

describe('pre-session answers in either framing', () => {
  it('takes the IPMI message from the IPMI 1.5 wrapper and from the RMCP+ wrapper with session id 0', () => {
    expect(preSessionMessage(encodeV15(0, 0, message))).toEqual(message);
    expect(preSessionMessage(encodeV2({ payloadType: PayloadType.ipmi, sessionId: 0, seq: 0, payload: message }))).toEqual(message);
  });

  it('refuses what is not a pre-session answer: a session id, another payload type, a truncated datagram', () => {
    expect(preSessionMessage(encodeV15(7, 0, message))).toBeUndefined();
    expect(preSessionMessage(encodeV2({ payloadType: PayloadType.ipmi, sessionId: 7, seq: 0, payload: message }))).toBeUndefined();
    expect(preSessionMessage(encodeV2({ payloadType: PayloadType.openSessionResponse, sessionId: 0, seq: 0, payload: message }))).toBeUndefined();
    expect(preSessionMessage(encodeV2({ payloadType: PayloadType.ipmi, sessionId: 0, seq: 0, payload: message }).subarray(0, 20))).toBeUndefined();
  });

  it('round-trips any message in both framings, and never throws on any bytes (fast-check)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 255 }), fc.nat(0xffffffff), (bytes, seq) => {
        const m = Buffer.from(bytes);
        expect(preSessionMessage(encodeV15(0, seq, m))).toEqual(m);
        expect(preSessionMessage(encodeV2({ payloadType: PayloadType.ipmi, sessionId: 0, seq, payload: m }))).toEqual(m);
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const d = Buffer.from(bytes);
        if (d.length > 4) d[0] = 0x06; // an RMCP header now and then
        expect(() => preSessionMessage(d)).not.toThrow();
      }),
    );
  });

  it('reads the IPMI 2.0 bit of Get Channel Authentication Capabilities (both flags needed)', () => {
    expect(decodeAuthCapabilities(Buffer.from([1, 0x80, 0x04, 0x02, 0, 0, 0, 0]))).toEqual({ ipmi20: true });
    expect(decodeAuthCapabilities(Buffer.from([1, 0x15, 0x04, 0x00, 0, 0, 0, 0]))).toEqual({ ipmi20: false });
    expect(() => decodeAuthCapabilities(Buffer.from([1, 0x80]))).toThrow(expect.objectContaining({ code: 'DECODE' }));
  });
});

describe('the SOL port of Activate Payload', () => {
  it('is the session port in either byte order, or 0; anything else is another port', () => {
    expect(solPort(623, 623)).toBe('session');
    expect(solPort(0x6f02, 623)).toBe('session'); // 623 in network byte order (Supermicro X8DTH-iF)
    expect(solPort(48311, 47036)).toBe('session'); // the BMC: 47036 byte-swapped
    expect(solPort(0, 623)).toBe('session');
    expect(solPort(6230, 623)).toBe(6230);
  });

  it('any port and its byte swap name the same port; no other value does (fast-check)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }), (port, other) => {
        const swapped = ((port & 0xff) << 8) | (port >> 8);
        expect(solPort(port, port)).toBe('session');
        expect(solPort(swapped, port)).toBe('session');
        if (other !== port && other !== swapped) expect(solPort(other, port)).toBe(other);
      }),
    );
  });
});

describe('Open Session answers and RAKP refusals', () => {
  it('follows other algorithms only when they form a suite auto may pick; a named suite must stay', () => {
    const s17 = cipherSuite(17);
    const s3 = cipherSuite(3);
    expect(settledSuite(s17, suiteAlgorithms(s17), 'auto')).toBe(s17);
    expect(settledSuite(s17, suiteAlgorithms(s3), 'auto')).toBe(s3);
    expect(settledSuite(s17, suiteAlgorithms(cipherSuite(1)), 'auto')).toBeUndefined(); // no integrity: a downgrade
    expect(settledSuite(s17, suiteAlgorithms(s3), 17)).toBeUndefined();
    // encrypted (METAL_BMC_IPMI_CIPHER_SUITE): another encrypted suite is followed, one without encryption is not
    expect(settledSuite(s17, suiteAlgorithms(s3), 'encrypted')).toBe(s3);
    expect(settledSuite(s17, suiteAlgorithms(cipherSuite(16)), 'auto')).toBe(cipherSuite(16));
    expect(settledSuite(s17, suiteAlgorithms(cipherSuite(16)), 'encrypted')).toBeUndefined();
  });

  it('asks by name and privilege after "unauthorized name", as Operator after "unauthorized role", then gives up', () => {
    const admin = { privilege: 4, nameOnly: true };
    expect(nextUserLookup(admin, 0x0d, 4)).toEqual({ privilege: 4, nameOnly: false });
    expect(nextUserLookup(admin, 0x0a, 4)).toEqual({ privilege: 3, nameOnly: true });
    expect(nextUserLookup(admin, 0x09, 4)).toEqual({ privilege: 3, nameOnly: true });
    expect(nextUserLookup({ privilege: 3, nameOnly: true }, 0x0a, 4)).toBeUndefined();
    expect(nextUserLookup({ privilege: 4, nameOnly: false }, 0x0d, 4)).toBeUndefined();
    expect(nextUserLookup(admin, 0x0f, 4)).toBeUndefined(); // a wrong password is never retried
  });
});

/** The client's session engine linked to a simulated BMC in memory. */
/** What every simulated BMC of these tests shares: its credentials, session limits and port. */
const BMC_SETTINGS = { user: 'ADMIN', password: 'secret', maxSessions: 4, sessionTimeoutMs: 60_000, handshakeTimeoutMs: 10_000, port: () => 623 };

/**
 * `answer` may answer a datagram of the console in place of the BMC (true: the BMC never sees it);
 * `lose` may lose a datagram of the BMC on its way to the console, `alter` change it.
 */
function linked(quirks: SimQuirkName[], answer?: (d: Buffer, reply: (d: Buffer) => void) => boolean, lose?: (d: Buffer) => boolean, alter?: (d: Buffer) => Buffer) {
  const machine = new SimMachine(createMachineState('quirk-unit', 0));
  machine.state.quirks = new Set(quirks);
  const serial = new SerialLine(machine, { hostname: 'unit' });
  // each session opened gets a UDP port of its own, so that two sessions may be open at once
  const consoles = new Map<number, (d: Buffer) => void>();
  let latestPort = 39999;
  const deliver = (port: number, d: Buffer) => consoles.get(port)?.(d);
  const bmc = new SimBmc({
    machine,
    serial,
    ...BMC_SETTINGS,
    send: (d, remote) => setImmediate(() => (lose?.(d) ? undefined : deliver(remote.port, alter ? alter(d) : d))),
  });
  const channelOn = (port: number): DatagramChannel => ({
    remote: '192.0.2.9:623',
    send: (d) => setImmediate(() => (answer?.(d, (r) => setImmediate(() => deliver(port, r))) ? undefined : bmc.handle(d, { address: '192.0.2.1', port }))),
    onDatagram: (h) => consoles.set(port, h),
    close: () => undefined,
  });
  const events: IpmiEvent[] = [];
  const open = (cipherSuite: CipherChoice = 'auto', keepaliveMs = 0, timeoutMs?: number) =>
    openSession({ host: '192.0.2.9', channel: channelOn(++latestPort), cipherSuite, user: 'ADMIN', password: 'secret', keepaliveMs, closeLingerMs: 0, onEvent: (e) => events.push(e), ...(timeoutMs ? { timeoutMs } : {}) });
  return { open, events, bmc, machine, serial, inject: (d: Buffer) => deliver(latestPort, d), close: () => (bmc.close(), serial.close()) };
}

describe('fallbacks against the simulated BMC in memory', () => {
  it.each([
    ['ipmi-cipher-suites-silent', /no answer within 1000 ms/],
    ['ipmi-no-cipher-suites', /invalid or unsupported command/],
    ['ipmi-cipher-suites-garbage', /unknown suites 238/],
  ] as const)('%s: falls back to suite 17 within about a second, with one event', async (quirk, why) => {
    const l = linked([quirk]);
    const started = Date.now();
    const s = await l.open();
    // the optional command has its own deadline of 1 s; the wide margin is for a loaded machine
    expect(Date.now() - started).toBeLessThan(4000);
    expect(s.cipherSuite).toBe(17);
    expect(l.events).toEqual([{ kind: 'cipher-suites-fallback', message: expect.stringMatching(why) }]);
    await s.close();
    l.close();
  });

  /** Open Session with RAKP-HMAC-SHA256 (suite 17) left unanswered, as by firmware that lacks it; the algorithms of each Open Session asked */
  const withoutSuite17 = (asked: number[]) => (d: Buffer) => {
    if (payloadTypeOf(d) !== PayloadType.openSessionRequest) return false;
    const auth = handshakePayload(d)[12]!; // the authentication algorithm payload's algorithm byte
    asked.push(auth);
    return auth === 3;
  };

  it('ipmi-cipher-suites-silent and Open Session for suite 17 never answered: suite 3 is tried in its own share of the deadline and the session opens, with one event each', async () => {
    const asked: number[] = [];
    const l = linked(['ipmi-cipher-suites-silent'], withoutSuite17(asked));
    const started = Date.now();
    const s = await l.open(); // the default deadline of 10 s: 5 s for suite 17, the rest for suite 3
    expect(s.cipherSuite).toBe(3);
    expect(Date.now() - started).toBeLessThan(1000 + 10_000);
    expect(asked.filter((a) => a === 1)).toHaveLength(1); // suite 3 (RAKP-HMAC-SHA1) asked once, answered
    expect(l.events.map((e) => e.kind)).toEqual(['cipher-suites-fallback', 'suite-unanswered']);
    expect(l.events[1]!.message).toMatch(/^BMC 192\.0\.2\.9:623 did not answer the session setup with cipher suite 17 \(session setup with BMC .* did not complete within 5000 ms \(1 attempt\): Open Session with BMC .*\); trying suite 3$/);
    expect((await getChassisStatus(s)).power).toMatch(/on|off/);
    await s.close();
    l.close();
  }, 15_000);

  it('a BMC that lists no suites and answers no Open Session costs the one deadline, not one per suite: TIMEOUT after both suites were asked', async () => {
    const asked: number[] = [];
    const l = linked(['ipmi-cipher-suites-silent'], (d) => withoutSuite17(asked)(d) || payloadTypeOf(d) === PayloadType.openSessionRequest);
    const started = Date.now();
    await expect(l.open('auto', 0, 3000)).rejects.toMatchObject({ code: 'TIMEOUT', message: expect.stringMatching(/^session setup with BMC .* did not complete within 3000 ms \(1 attempt\): Open Session with BMC .*: no answer within \d+ ms/) });
    // Get Channel Cipher Suites' own second, then 3 s for both suites (1.5 s each)
    expect(Date.now() - started).toBeLessThan(1000 + 3000 + 500);
    expect(new Set(asked)).toEqual(new Set([3, 1])); // suite 17, then suite 3
    l.close();
  }, 10_000);

  it('a BMC that lists suite 17 and leaves its Open Session unanswered: TIMEOUT, no move to another suite (its silence is the BMC\'s)', async () => {
    const asked: number[] = [];
    const l = linked([], withoutSuite17(asked));
    await expect(l.open('auto', 0, 2000)).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(new Set(asked)).toEqual(new Set([3]));
    expect(l.events).toEqual([]);
    l.close();
  });

  it('a packet of a type without integrity code that names our session (a spoofed RAKP 4) moves neither the sequence window nor the keepalive: the answers after it are taken', async () => {
    const fromBmc: Buffer[] = [];
    const l = linked([], undefined, (d) => (fromBmc.push(d), false));
    const s = await l.open();
    expect((await s.request(NetFn.app, 0x01)).completionCode).toBe(0);
    const last = fromBmc.at(-1)!;
    const [sessionId, seq] = [last.readUInt32LE(4 + 2), last.readUInt32LE(4 + 6)]; // RMCP header, then auth type and payload type
    l.inject(encodeV2({ payloadType: PayloadType.rakp4, sessionId, seq: seq + 0x7fff0000, payload: Buffer.alloc(8) }));
    for (let i = 0; i < 3; i++) expect((await s.request(NetFn.app, 0x01)).completionCode).toBe(0);
    expect(l.events).toEqual([]);
    await s.close();
    l.close();
  });

  it('ipmi-presession-rmcpplus: the RMCP+-framed pre-session answers are taken, no fallback needed', async () => {
    const l = linked(['ipmi-presession-rmcpplus']);
    const s = await l.open();
    expect(s.cipherSuite).toBe(17);
    expect(l.events).toEqual([]);
    await s.close();
    l.close();
  });

  it('ipmi-open-session-own-suite: auto follows the BMC into suite 3 with one event; a named suite 17 is refused', async () => {
    const l = linked(['ipmi-open-session-own-suite']);
    const s = await l.open();
    expect(s.cipherSuite).toBe(3);
    expect(l.events).toEqual([{ kind: 'suite-changed', message: expect.stringMatching(/answered Open Session for cipher suite 17 with the algorithms of suite 3; using suite 3/) }]);
    expect((await s.request(NetFn.app, 0x01)).completionCode).toBe(0); // the keys of suite 3 work
    await s.close();
    await expect(l.open(17)).rejects.toMatchObject({ code: 'PROTOCOL', message: expect.stringMatching(/with other algorithms \(authentication 1, integrity 1, confidentiality 1\), which is not the suite asked for/) });
    l.close();
  });

  it('ipmi-operator-only: retries RAKP as Operator and holds Operator, with one event', async () => {
    const l = linked(['ipmi-operator-only']);
    const s = await l.open();
    expect(s.privilege).toBe(3);
    expect(l.events.map((e) => e.kind)).toEqual(['rakp-retry']);
    await s.close();
    l.close();
  });

  /** In front of the simulated BMC: Open Session asking more than `highest` is refused with `status`; the privileges asked, in order */
  const refusingOpenSessionAbove = (highest: number, status: number, asked: number[]) => (d: Buffer, reply: (d: Buffer) => void) => {
    if (payloadTypeOf(d) !== PayloadType.openSessionRequest) return false;
    const p = handshakePayload(d);
    asked.push(p[1]! & 0x0f);
    if ((p[1]! & 0x0f) <= highest) return false;
    // tag, status, reserved, our console session id
    reply(encodeV2({ payloadType: PayloadType.openSessionResponse, sessionId: 0, seq: 0, payload: Buffer.from([p[0]!, status, 0, 0, ...p.subarray(4, 8)]) }));
    return true;
  };

  it.each([
    ['0x09', 0x09, 'invalid role'],
    ['0x0A', 0x0a, 'unauthorized role or privilege level requested'],
  ] as const)('Open Session for Administrator refused with %s: asked again as Operator, as a RAKP 2 refusal is, with one event', async (_hex, status, text) => {
    const asked: number[] = [];
    const l = linked([], refusingOpenSessionAbove(3, status, asked));
    const s = await l.open();
    expect(asked).toEqual([4, 3]);
    expect(s.privilege).toBe(3);
    expect(l.events).toEqual([{ kind: 'rakp-retry', message: `BMC 192.0.2.9:623 refused Open Session (${text}); asking again by name only at privilege 3` }]);
    l.machine.setPower('off', 'down');
    await chassisControl(s, 'up'); // an Operator command
    expect((await getChassisStatus(s)).power).toBe('on');
    await s.close();
    l.close();
  });

  it('Open Session refused for Operator too: AUTH_FAILED after the two, not asked again', async () => {
    const asked: number[] = [];
    const l = linked([], refusingOpenSessionAbove(2, 0x0a, asked));
    await expect(l.open()).rejects.toMatchObject({ code: 'AUTH_FAILED', message: expect.stringMatching(/Open Session with cipher suite 17 refused by BMC .*: unauthorized role or privilege level requested$/) });
    expect(asked).toEqual([4, 3]);
    l.close();
  });

  it('ipmi-operator-only-late: Set Session Privilege Level(4) refused with 0x81, Operator asked in the same session, with one event', async () => {
    let opens = 0;
    const l = linked(['ipmi-operator-only-late'], (d) => {
      if (d[4] === 0x06 && (d[5]! & 0x3f) === PayloadType.openSessionRequest) opens++;
      return false; // counted only: the simulated BMC answers
    });
    const s = await l.open();
    expect(s.privilege).toBe(3);
    expect(opens).toBe(1); // one session: no second handshake
    expect(l.bmc.activeSessions()).toBe(1);
    l.machine.setPower('off', 'down');
    await chassisControl(s, 'up'); // an Operator command: what an Operator-only account is for
    expect((await getChassisStatus(s)).power).toBe('on');
    expect(l.events).toEqual([
      { kind: 'privilege-operator', message: expect.stringMatching(/^BMC 192\.0\.2\.9:623 refused privilege level 4 in the session \(requested level exceeds the channel or user privilege limit\); the session runs at privilege 3 \(Operator\)$/) },
    ]);
    await s.close();
    l.close();
  });

  it('ipmi-bad-response-checksum: in a session with integrity, answers whose only fault is the checksum are taken, told once', async () => {
    const l = linked(['ipmi-bad-response-checksum']);
    const s = await l.open();
    expect(s.privilege).toBe(4); // Set Session Privilege Level's answer too had the wrong checksum
    l.machine.setPower('off', 'down');
    expect((await getChassisStatus(s)).power).toBe('off');
    await chassisControl(s, 'up');
    expect((await getChassisStatus(s)).power).toBe('on');
    expect(l.events).toEqual([
      {
        kind: 'checksum-ignored',
        message: 'BMC 192.0.2.9:623 answered netfn 0x06 command 0x3b with a wrong IPMI data checksum; its packets pass the session\'s integrity check, so such answers are taken (FreeIPMI\'s workaround nochecksumcheck)',
      },
    ]);
    await s.close();
    l.close();
  });

  it('ipmi-bad-presession-checksum: the pre-session answers are taken whatever their checksums say, told once per session attempt', async () => {
    const l = linked(['ipmi-bad-presession-checksum']);
    const s = await l.open(); // Get Channel Authentication Capabilities and every page of Get Channel Cipher Suites answered with a wrong data checksum
    expect(s.cipherSuite).toBe(17); // the suites the BMC listed, read from the pages
    expect(l.events).toEqual([
      {
        kind: 'checksum-ignored',
        message: 'BMC 192.0.2.9:623 answered Get Channel Authentication Capabilities with a wrong IPMI data checksum; pre-session answers carry no integrity code to check instead, and ipmitool takes them too, so such answers are taken',
      },
    ]);
    await s.close();
    l.close();
  });

  it('a wrong checksum is refused where it is the only check of the bytes: a session without integrity (cipher suite 1)', () => {
    const answer = encodeResponse({ netFn: NetFn.chassis, cmd: 0x01, seq: 9, data: Buffer.alloc(0) }, 0, Buffer.from([0x01, 0, 0, 0]));
    answer[answer.length - 1]! ^= 0x5a; // the data checksum
    const keys = { integrity: 'none', confidentiality: 'none', k1: Buffer.alloc(20), k2: Buffer.alloc(20) } as const;
    const withoutIntegrity: EstablishedSession = { suite: cipherSuite(1), consoleSessionId: 1, bmcSessionId: 2, keys, privilege: 4, nextSeq: 1, checksumFaultTold: false };
    const withIntegrity: EstablishedSession = { ...withoutIntegrity, suite: cipherSuite(3), keys: { ...keys, integrity: 'hmac-sha1-96' } };
    const events: IpmiEvent[] = [];
    const request = { netFn: NetFn.chassis, cmd: 0x01, seq: 9 };
    expect(() => sessionAnswer(answer, request, withoutIntegrity, 'x', (e) => events.push(e))).toThrow(/IPMI response data checksum mismatch/);
    expect(sessionAnswer(answer, request, withIntegrity, 'x', (e) => events.push(e))).toMatchObject({ completionCode: 0, data: Buffer.from([0x01, 0, 0, 0]) });
    expect(sessionAnswer(answer, { ...request, seq: 10 }, withIntegrity, 'x', (e) => events.push(e))).toBeUndefined(); // another request's answer
    expect(sessionAnswer(answer, request, withIntegrity, 'x', (e) => events.push(e))).toBeDefined();
    expect(events.map((e) => e.kind)).toEqual(['checksum-ignored']); // once per session
  });

  it('ipmi-identify-no-force: LED on falls back to the longest interval after 0xC7; LED off is one byte and works', async () => {
    const l = linked(['ipmi-identify-no-force']);
    const s = await l.open();
    await chassisIdentify(s, true);
    expect((await getChassisStatus(s)).identify).toBe('temporary'); // on for 255 s: the most this BMC does
    await chassisIdentify(s, false);
    expect((await getChassisStatus(s)).identify).toBe('off');
    await s.close();
    l.close();
  });

  it('a BMC refusing name-only lookup ("unauthorized name"): asked again by name and privilege, with one event', async () => {
    const roles: number[] = [];
    // in front of the simulated BMC: RAKP 1 with the name-only bit is refused as such BMCs do
    const l = linked([], (d, reply) => {
      if (d[4] !== 0x06 || (d[5]! & 0x3f) !== PayloadType.rakp1) return false;
      const payload = d.subarray(16);
      roles.push(payload[24]!);
      if ((payload[24]! & 0x10) === 0) return false;
      reply(encodeV2({ payloadType: PayloadType.rakp2, sessionId: 0, seq: 0, payload: encodeRakp2({ tag: payload[0]!, status: 0x0d, consoleSessionId: 0, bmcRandom: Buffer.alloc(0), bmcGuid: Buffer.alloc(0), keyExchangeCode: Buffer.alloc(0) }) }));
      return true;
    });
    const s = await l.open();
    expect(roles).toEqual([0x14, 0x04]); // Administrator name-only, then Administrator by name and privilege
    expect(s.privilege).toBe(4);
    expect(l.events).toEqual([{ kind: 'rakp-retry', message: expect.stringMatching(/refused RAKP 1 \(unauthorized name\); asking again by name and privilege at privilege 4/) }]);
    await s.close();
    l.close();
  });

  it('ipmi-close-session-error: close() resolves and says so once', async () => {
    const l = linked(['ipmi-close-session-error']);
    const s = await l.open();
    await s.close();
    expect(s.state).toEqual({ kind: 'closed', reason: 'closed' });
    expect(l.events).toEqual([{ kind: 'close-refused', message: expect.stringMatching(/answered Close Session with unspecified error/) }]);
    l.close();
  });

  it('Get Channel Cipher Suites answered twice per request: a late copy of page 0 never passes for page 1, and auto picks 17', async () => {
    // suites 1, 2 and 3 and the first byte of 17's record fill page 0; page 1 holds the rest of 17's record
    const records = Buffer.from([0xc0, 1, 0x01, 0x40, 0x80, 0xc0, 2, 0x01, 0x41, 0x80, 0xc0, 3, 0x01, 0x41, 0x81, 0xc0, 17, 0x03, 0x44, 0x81]);
    const asked: number[] = [];
    // every request is answered twice, 300 ms apart; page 1 takes the BMC 400 ms, so page 0's copy comes first
    const l = linked([], (d, reply) => {
      if (d[4] !== 0x00 || d[13] === undefined) return false; // IPMI 1.5 wrapper only
      const req = decodeRequest(d.subarray(14, 14 + d[13]));
      if (req.netFn !== NetFn.app || req.cmd !== 0x54) return false;
      const index = req.data[2]! & 0x3f;
      asked.push(index);
      const answer = encodeV15(0, 0, encodeResponse(req, 0, Buffer.concat([Buffer.from([1]), records.subarray(index * 16, index * 16 + 16)])));
      const first = index === 1 ? 400 : 0;
      setTimeout(() => reply(answer), first);
      setTimeout(() => reply(answer), first + 300);
      return true;
    });
    const s = await l.open();
    expect(s.cipherSuite).toBe(17);
    expect(asked.filter((i) => i > 1)).toEqual([]); // page 1 is the last: nothing asked beyond it
    expect(l.events).toEqual([]);
    await s.close();
    l.close();
  });

  it('Open Session refused for the encrypted suites the BMC lists (a spoofed refusal carries no integrity code): auto does not go on to a suite without encryption', async () => {
    const asked: number[] = []; // the confidentiality algorithm of each Open Session request
    // suites 3 and 17 (AES), 16 and 2 (no encryption): records id, auth, integrity, confidentiality
    const records = Buffer.from([0xc0, 3, 0x01, 0x41, 0x81, 0xc0, 17, 0x03, 0x44, 0x81, 0xc0, 16, 0x03, 0x44, 0x80, 0xc0, 2, 0x01, 0x41, 0x80]);
    const l = linked([], (d, reply) => {
      if (payloadTypeOf(d) === undefined) return answerCipherSuites(records, d, reply);
      if (payloadTypeOf(d) !== PayloadType.openSessionRequest) return false;
      const p = handshakePayload(d);
      asked.push(p[28]!);
      // tag, status 0x11 (no cipher suite matches the proposed algorithms), reserved, our session id
      reply(encodeV2({ payloadType: PayloadType.openSessionResponse, sessionId: 0, seq: 0, payload: Buffer.from([p[0]!, 0x11, 0, 0, ...p.subarray(4, 8)]) }));
      return true;
    });
    await expect(l.open()).rejects.toBeDefined();
    expect(asked.length).toBeGreaterThanOrEqual(2); // 17 and 3 were asked for
    expect(asked.every((alg) => alg === 1)).toBe(true); // AES-CBC-128 in every request, never none (16, 2)
    l.close();
  });

  it.each([
    ['auto', 'asks for suite 16, then 2'],
    ['encrypted', 'refuses the BMC'],
  ] as const)('a BMC that lists only suites without encryption (16, 2): %s %s', async (choice, _outcome) => {
    const asked: number[] = []; // the confidentiality algorithm of each Open Session request
    const records = Buffer.from([0xc0, 16, 0x03, 0x44, 0x80, 0xc0, 2, 0x01, 0x41, 0x80]);
    const l = linked([], (d, reply) => {
      if (payloadTypeOf(d) === undefined) return answerCipherSuites(records, d, reply);
      if (payloadTypeOf(d) === PayloadType.openSessionRequest) asked.push(handshakePayload(d)[28]!);
      return false; // the simulated BMC answers the handshake itself
    });
    if (choice === 'auto') {
      await expect(l.open('auto')).rejects.toMatchObject({ code: 'UNSUPPORTED' }); // the simulated BMC itself speaks neither
      expect(asked).toEqual([0, 0]); // suites 16 and 2: no confidentiality algorithm
    } else {
      await expect(l.open('encrypted')).rejects.toMatchObject({ code: 'INSECURE_REFUSED', message: expect.stringMatching(/offers cipher suites 16, 2, none of which is encrypted/) });
      expect(asked).toEqual([]); // no Open Session at all: nothing was asked of the BMC without encryption
    }
    l.close();
  });

  it('a BMC that speaks IPMI 1.5 only: a clear UNSUPPORTED at once, never a hang', async () => {
    // answers Get Channel Authentication Capabilities as an IPMI 1.5 BMC does: 0xCC for the
    // IPMI 2.0 bit, then the capabilities without it
    const l = linked([], (d, reply) => {
      const req = decodeRequest(d.subarray(14, 14 + d[13]!));
      if (req.netFn !== NetFn.app || req.cmd !== 0x38) return false;
      reply(encodeV15(0, 0, (req.data[0]! & 0x80) !== 0 ? encodeResponse(req, 0xcc) : encodeResponse(req, 0, Buffer.from([1, 0x15, 0x04, 0, 0, 0, 0, 0]))));
      return true;
    });
    const started = Date.now();
    await expect(l.open()).rejects.toMatchObject({ code: 'UNSUPPORTED', message: expect.stringMatching(/speaks IPMI 1\.5 only .*metal-bmc needs RMCP\+/) });
    expect(Date.now() - started).toBeLessThan(3000); // two answered requests, no retransmission wait
    l.close();
  });
});

describe('ipmi-duplicate-cf: a BMC that answers a resend of a request it handled with 0xCF (duplicated request)', () => {
  /** the power actions the simulated machine carries out */
  function recording(l: ReturnType<typeof linked>): string[] {
    const actions: string[] = [];
    l.machine.on('change', (c) => void (c.kind === 'power' && actions.push(c.action)));
    return actions;
  }

  it('Chassis Control answered after 1.5 s: resent after 1 s, the 0xCF to the resend is no answer, the late answer to the original is; carried out once', async () => {
    const l = linked(['ipmi-duplicate-cf']);
    const s = await l.open();
    const actions = recording(l);
    l.machine.setPower('on', 'up');
    actions.length = 0;
    await chassisControl(s, 'cycle');
    expect(actions).toEqual(['cycle']);
    await s.close();
    l.close();
  });

  it('the answer to the original lost: only 0xCF comes, and the deadline ends it as TIMEOUT saying it may have acted', async () => {
    const l = linked(['ipmi-duplicate-cf']);
    l.machine.state.faults.actSilently = true;
    const s = await l.open();
    const actions = recording(l);
    const started = Date.now();
    await expect(chassisControl(s, 'reset', { deadlineMs: 2000 })).rejects.toMatchObject({
      code: 'TIMEOUT',
      message: expect.stringMatching(/^IPMI command netfn 0x0 cmd 0x2 to BMC 192\.0\.2\.9:623: within 2000 ms only one answer to its resends, "cannot execute a duplicated request" \(0xCF\): the BMC got the request and handled it, its answer was lost; it may have acted$/),
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900); // waited for the original's answer until the deadline
    expect(actions).toEqual(['reset']);
    await s.close();
    l.close();
  });

  it('after the first 0xCF nothing more is sent: a resend past the BMC\'s duplicate window would be carried out again', async () => {
    let sent = 0;
    const l = linked(['ipmi-duplicate-cf'], () => (sent++, false));
    l.machine.state.faults.actSilently = true;
    const s = await l.open();
    const actions = recording(l);
    sent = 0; // from here on only the reset and its resends (no keepalive)
    // resends would go at 1 and 2.5 s within this deadline; the 0xCF to the one at 1 s ends them
    await expect(chassisControl(s, 'reset', { deadlineMs: 4000 })).rejects.toMatchObject({ code: 'TIMEOUT', message: expect.stringMatching(/only one answer to its resends/) });
    expect(sent).toBe(2);
    expect(actions).toEqual(['reset']);
    await s.close();
    l.close();
  });

  it('a burst of more than 64 Read FRU Data within 5 s, a Get Chassis Status among them: no rqSeq is reused for the command while the BMC remembers it, so none is answered 0xCF and each gets its own offset\'s bytes', async () => {
    const l = linked(['ipmi-duplicate-cf']);
    const s = await l.open();
    const read = (offset: number) => s.request(NetFn.storage, Cmd.readFruData, Buffer.from([0, offset, 0, 8]));
    const expected = await read(0); // the FRU's first 8 bytes, the reference for every 16th read below
    const started = Date.now();
    const answers = [];
    for (let i = 0; i < 70; i++) {
      if (i !== 63) {
        answers.push(await read((i % 16) * 8));
        continue;
      }
      // the 65th Read FRU Data waits for a number; Get Chassis Status takes one of the burst's at
      // once, and its release must not hand that number to Read FRU Data within the BMC's 5 s
      const [fru, status] = await Promise.all([read((i % 16) * 8), s.request(NetFn.chassis, Cmd.getChassisStatus)]);
      expect(status.completionCode).toBe(0);
      answers.push(fru);
    }
    expect(answers.map((a) => a.completionCode)).toEqual(Array(70).fill(0));
    for (let i = 0; i < 70; i += 16) expect(answers[i]!.data).toEqual(expected.data);
    // 64 numbers for the command, the rest after the first ones' retention (the wait of the fix)
    expect(Date.now() - started).toBeGreaterThanOrEqual(5000);
    await s.close();
    l.close();
  });

  it('a request waiting for a number when the session is closed ends CLOSED, nothing sent', async () => {
    const l = linked([]);
    const s = await l.open();
    for (let i = 0; i < 64; i++) expect((await s.request(NetFn.app, Cmd.getDeviceId)).completionCode).toBe(0);
    const waiting = s.request(NetFn.app, Cmd.getDeviceId).catch((e: unknown) => e);
    await s.close(); // Close Session is another command: its number is free at once
    expect(await waiting).toMatchObject({ code: 'CLOSED', message: expect.stringMatching(/ended while IPMI command netfn 0x6 cmd 0x1 .* waited for a request sequence number/) });
    l.close();
  });

  /** loses the BMC's first in-session IPMI answer (RMCP+ wrapper, a session id): the answer to Set Session Privilege Level */
  const firstSessionAnswerLost = () => {
    let lost = false;
    return (d: Buffer) => {
      if (lost || payloadTypeOf(d) !== PayloadType.ipmi || d.readUInt32LE(6) === 0) return false;
      lost = true;
      return true;
    };
  };

  it('Set Session Privilege Level\'s answer lost, its resend answered 0xCF: the level is asked again under a new rqSeq and the session opens at Administrator', async () => {
    const privilegeAsks: number[] = [];
    const l = linked(
      ['ipmi-duplicate-cf'],
      (d) => {
        if (payloadTypeOf(d) === PayloadType.ipmi && d.readUInt32LE(6) !== 0) privilegeAsks.push(d.length); // in-session requests
        return false;
      },
      firstSessionAnswerLost(),
    );
    const s = await l.open();
    expect(s.privilege).toBe(4);
    expect(privilegeAsks).toHaveLength(3); // the first, its resend (0xCF), the new request
    expect(l.bmc.activeSessions()).toBe(1);
    l.machine.setPower('off', 'down');
    await chassisControl(s, 'up');
    expect((await getChassisStatus(s)).power).toBe('on');
    expect(l.events).toEqual([]);
    await s.close();
    l.close();
  });

  it('the same with a user limited to Operator (ipmi-operator-only-late): the new request\'s refusal decides, and the session runs at Operator', async () => {
    const l = linked(['ipmi-duplicate-cf', 'ipmi-operator-only-late'], undefined, firstSessionAnswerLost());
    const s = await l.open();
    expect(s.privilege).toBe(3);
    expect(l.events).toEqual([{ kind: 'privilege-operator', message: expect.stringMatching(/refused privilege level 4 in the session \(requested level exceeds the channel or user privilege limit\)/) }]);
    await s.close();
    l.close();
  });

  it('0xCF answering the only transmission is that request\'s answer: a COMPLETION_CODE at once, not waited past', async () => {
    const l = linked([]);
    l.machine.state.faults.ipmiActRefused = 0xcf; // Chassis Control answered 0xCF at once (the simulator does not act then)
    const s = await l.open();
    const started = Date.now();
    await expect(chassisControl(s, 'cycle')).rejects.toMatchObject({ code: 'COMPLETION_CODE', completionCode: 0xcf });
    expect(Date.now() - started).toBeLessThan(900); // before any resend
    await s.close();
    l.close();
  });
});

/** Answers Get Channel Cipher Suites (a pre-session request) with `records`, 16 bytes a page; false for any other request. */
function answerCipherSuites(records: Buffer, d: Buffer, reply: (d: Buffer) => void): boolean {
  const req = decodeRequest(d.subarray(14, 14 + d[13]!));
  if (req.netFn !== NetFn.app || req.cmd !== 0x54) return false;
  const index = req.data[2]! & 0x3f;
  reply(encodeV15(0, 0, encodeResponse(req, 0, Buffer.concat([Buffer.from([1]), records.subarray(index * 16, index * 16 + 16)]))));
  return true;
}

/** The RMCP+ payload type of a datagram the console sent (RMCP+ wrapper), or undefined. */
function payloadTypeOf(d: Buffer): number | undefined {
  return d[4] === 0x06 ? d[5]! & 0x3f : undefined;
}

/** The payload of an unauthenticated RMCP+ handshake datagram (RMCP 4, session header 12 bytes). */
const handshakePayload = (d: Buffer) => d.subarray(16);

describe('a BMC slow in its handshake, or that loses its state: the session opens, and a proven password is never AUTH_FAILED', () => {
  /** Counts what the console sends: Open Sessions, and per RAKP 1 the BMC session it names and its message tag. */
  function counting() {
    const seen = { opens: 0, rakp1: [] as Array<{ session: number; tag: number }>, consoleSessionIds: [] as number[] };
    const count = (d: Buffer) => {
      const type = payloadTypeOf(d);
      if (type === PayloadType.openSessionRequest) {
        seen.opens++;
        seen.consoleSessionIds.push(handshakePayload(d).readUInt32LE(4));
      }
      if (type === PayloadType.rakp1) seen.rakp1.push({ session: handshakePayload(d).readUInt32LE(4), tag: handshakePayload(d)[0]! });
    };
    return { seen, count };
  }

  it('ipmi-rakp-slow: RAKP 1 repeated after 1 s under a new tag, the late answer to the first ignored; the session opens, nothing is AUTH_FAILED', async () => {
    const { seen, count } = counting();
    const l = linked(['ipmi-rakp-slow'], (d) => (count(d), false));
    const s = await l.open();
    expect(s.privilege).toBe(4);
    expect(seen.opens).toBe(1);
    // one BMC session, two RAKP 1 under two tags: the BMC's random number is the second's, and so is the RAKP 2 taken
    expect(seen.rakp1).toHaveLength(2);
    expect(seen.rakp1[0]!.session).toBe(seen.rakp1[1]!.session);
    expect(seen.rakp1[0]!.tag).not.toBe(seen.rakp1[1]!.tag);
    expect(l.events).toEqual([]);
    expect((await getChassisStatus(s)).power).toMatch(/on|off/);
    await s.close();
    l.close();
  }, 15_000);

  it('ipmi-rakp-slow with a password the BMC does not know: still AUTH_FAILED (RAKP 2 proves another password)', async () => {
    const l = linked(['ipmi-rakp-slow']);
    l.machine.state.faults.wrongCredentials = true;
    await expect(l.open()).rejects.toMatchObject({ code: 'AUTH_FAILED', message: expect.stringMatching(/wrong user name or password/) });
    expect(l.events).toEqual([]);
    l.close();
  }, 15_000);

  it('ipmi-rakp-slow and a BMC that refuses a repeated RAKP 1 ("invalid session ID"): one restart, waiting longer, and the session opens', async () => {
    const { seen, count } = counting();
    // in front of the simulated BMC: a second RAKP 1 for the same BMC session is refused at once, and the session dropped
    const l = linked(['ipmi-rakp-slow'], (d, reply) => {
      count(d);
      if (payloadTypeOf(d) !== PayloadType.rakp1) return false;
      const { session, tag } = seen.rakp1.at(-1)!;
      if (seen.rakp1.filter((r) => r.session === session).length < 2) return false;
      l.bmc.closeSession(session);
      reply(encodeV2({ payloadType: PayloadType.rakp2, sessionId: 0, seq: 0, payload: encodeRakp2({ tag, status: 0x02, consoleSessionId: seen.consoleSessionIds.at(-1)!, bmcRandom: Buffer.alloc(0), bmcGuid: Buffer.alloc(0), keyExchangeCode: Buffer.alloc(0) }) }));
      return true;
    });
    const s = await l.open();
    expect(seen.opens).toBe(2);
    expect(l.events).toEqual([
      {
        kind: 'handshake-restart',
        message: 'BMC 192.0.2.9:623 no longer knows the session it opened (RAKP 2: invalid session ID); the session handshake starts over with a new Open Session (attempt 2 of at most 5, first waiting 1500 ms for each answer)',
      },
    ]);
    expect((await getChassisStatus(s)).power).toMatch(/on|off/);
    await s.close();
    l.close();
  }, 15_000);

  /**
   * In front of the simulated BMC: RAKP 3 reaches it with its code spoiled in `refuse` of the
   * attempts, as if the BMC had lost the random number of its RAKP 2. It answers RAKP 4 "invalid
   * integrity check value" and drops the session, as it does for a wrong code.
   */
  function spoilingRakp3(refuse: (attempt: number) => boolean) {
    const { seen, count } = counting();
    let rakp3s = 0;
    const l = linked([], (d) => {
      count(d);
      if (payloadTypeOf(d) !== PayloadType.rakp3 || !refuse(++rakp3s)) return false;
      const spoiled = Buffer.from(d);
      spoiled[spoiled.length - 1]! ^= 0xff; // the last byte of the RAKP 3 code
      l.bmc.handle(spoiled, { address: '192.0.2.1', port: 40000 });
      return true;
    });
    return { l, seen };
  }

  it('RAKP 4 "invalid integrity check value" after a RAKP 2 that proved the password: a new attempt, not AUTH_FAILED', async () => {
    const { l, seen } = spoilingRakp3((n) => n === 1);
    const s = await l.open();
    expect(seen.opens).toBe(2);
    expect(l.events).toEqual([{ kind: 'handshake-restart', message: expect.stringMatching(/refused RAKP 3: invalid integrity check value, after its RAKP 2 had proved the password .*attempt 2 of at most 5/) }]);
    expect((await getChassisStatus(s)).power).toMatch(/on|off/);
    await s.close();
    l.close();
  });

  it('RAKP 4 lost, and the repeated RAKP 3 refused ("invalid session ID") by a BMC that activated the session: the privilege answer proves it, no restart', async () => {
    const { seen, count } = counting();
    let rakp3s = 0;
    let rakp4s = 0;
    const l = linked(
      [],
      (d, reply) => {
        count(d);
        if (payloadTypeOf(d) !== PayloadType.rakp3 || ++rakp3s === 1) return false;
        // the session is active: this BMC refuses the repeat, as pyghmi expects ("BMC can consider it done")
        reply(encodeV2({ payloadType: PayloadType.rakp4, sessionId: 0, seq: 0, payload: encodeRakpCode({ tag: handshakePayload(d)[0]!, status: 0x02, sessionId: seen.consoleSessionIds.at(-1)!, code: Buffer.alloc(0) }) }));
        return true;
      },
      (d) => payloadTypeOf(d) === PayloadType.rakp4 && ++rakp4s === 1, // the answer to the first RAKP 3 is lost
    );
    const s = await l.open();
    expect(rakp3s).toBe(2);
    expect(seen.opens).toBe(1);
    expect(l.events).toEqual([]);
    expect(l.bmc.activeSessions()).toBe(1);
    expect((await getChassisStatus(s)).power).toMatch(/on|off/);
    await s.close();
    l.close();
  });

  it('a BMC that refuses every RAKP 3 so: PROTOCOL after 5 attempts, never AUTH_FAILED', async () => {
    const { l, seen } = spoilingRakp3(() => true);
    await expect(l.open()).rejects.toMatchObject({ code: 'PROTOCOL', message: expect.stringMatching(/refused RAKP 3: invalid integrity check value.*; session setup gave up after 5 attempts$/) });
    expect(seen.opens).toBe(5);
    expect(l.events.map((e) => e.kind)).toEqual(Array(4).fill('handshake-restart'));
    l.close();
  });

  it('RAKP 2 and RAKP 4 answers naming another console session id are not ours: ignored', async () => {
    const { seen, count } = counting();
    const forged = { rakp2: 0, rakp4: 0 };
    // before each real answer, one with the right tag for another console session: an earlier attempt's, or another console's
    const l = linked([], (d, reply) => {
      count(d);
      const type = payloadTypeOf(d);
      const tag = handshakePayload(d)[0]!;
      const other = (seen.consoleSessionIds.at(-1)! + 1) >>> 0;
      if (type === PayloadType.rakp1 && forged.rakp2++ === 0) {
        const code = Buffer.alloc(32, 0xab); // a proof for other random numbers: AUTH_FAILED if it were taken
        reply(encodeV2({ payloadType: PayloadType.rakp2, sessionId: 0, seq: 0, payload: encodeRakp2({ tag, status: 0, consoleSessionId: other, bmcRandom: Buffer.alloc(16, 1), bmcGuid: Buffer.alloc(16, 2), keyExchangeCode: code }) }));
      }
      if (type === PayloadType.rakp3 && forged.rakp4++ === 0) {
        reply(encodeV2({ payloadType: PayloadType.rakp4, sessionId: 0, seq: 0, payload: encodeRakpCode({ tag, status: 0x0f, sessionId: other, code: Buffer.alloc(0) }) }));
      }
      return false; // the simulated BMC answers after the forged answer
    });
    const s = await l.open();
    expect(forged).toEqual({ rakp2: 1, rakp4: 1 });
    expect(seen.opens).toBe(1);
    expect(l.events).toEqual([]);
    await s.close();
    l.close();
  });
});

describe('RAKP codes longer than the HMAC', () => {
  /** the BMC's RAKP 2 and RAKP 4 with one byte appended (Supermicro with Peppercon firmware, Sun Fire 4100: 21 bytes) */
  const padded = (d: Buffer) => {
    const type = payloadTypeOf(d);
    if (type !== PayloadType.rakp2 && type !== PayloadType.rakp4) return d;
    return encodeV2({ payloadType: type, sessionId: 0, seq: 0, payload: Buffer.concat([handshakePayload(d), Buffer.from([0])]) });
  };

  it.each([17, 3] as const)('suite %i: the HMAC-length start of each code is checked, the session opens, told once (not AUTH_FAILED)', async (suite) => {
    const l = linked([], undefined, undefined, padded);
    const s = await l.open(suite);
    expect(s.state.kind).toBe('established');
    expect((await getChassisStatus(s)).power).toMatch(/on|off/);
    expect(l.events.filter((e) => e.kind === 'rakp-code-padded')).toEqual([
      { kind: 'rakp-code-padded', message: expect.stringMatching(/^BMC 192\.0\.2\.9:623 sent its RAKP 2 key exchange code with 1 byte\(s\) past the (32|20)-byte HMAC/) },
    ]);
    await s.close();
    l.close();
  });

  it('a padded code whose HMAC bytes do not match is still a wrong password', async () => {
    const l = linked([], undefined, undefined, padded);
    l.machine.state.faults.wrongCredentials = true;
    await expect(l.open()).rejects.toMatchObject({ code: 'AUTH_FAILED', message: expect.stringMatching(/wrong user name or password/) });
    expect(l.events.filter((e) => e.kind === 'rakp-code-padded')).toEqual([]);
    l.close();
  });

  it('matchRakpCode: equal is a match, longer with the same start padded, anything else a mismatch; no HMAC wants no code', async () => {
    const { matchRakpCode } = await import('../../src/ipmi/handshake.js');
    const hmac = Buffer.alloc(20, 7);
    expect(matchRakpCode(hmac, Buffer.from(hmac))).toBe('match');
    expect(matchRakpCode(hmac, Buffer.concat([hmac, Buffer.from([0])]))).toBe('padded');
    expect(matchRakpCode(hmac, Buffer.concat([Buffer.alloc(20, 8), Buffer.from([0])]))).toBe('mismatch');
    expect(matchRakpCode(hmac, hmac.subarray(0, 19))).toBe('mismatch');
    expect(matchRakpCode(Buffer.alloc(0), Buffer.alloc(0))).toBe('match');
    expect(matchRakpCode(Buffer.alloc(0), Buffer.from([1]))).toBe('mismatch');
  });
});

describe('SOL sequence numbers per activation', () => {
  it('a second console on the same BMC gets its keystrokes through: numbered from 1, as the simulator (like OpenBMC) expects of a new activation', async () => {
    const l = linked([]);
    const { openSol } = await import('../../src/ipmi/sol.js');
    for (const word of ['first-console', 'second-console']) {
      const s = await l.open();
      const sol = await openSol(s, { closeSession: true, retransmitMs: 200, maxRetransmits: 2 });
      let screen = '';
      sol.on('data', (d: Buffer) => (screen += d.toString()));
      sol.on('error', () => undefined);
      await waitFor(() => screen.includes('login:'), 10_000, 'the login prompt');
      sol.write(word);
      await waitFor(() => screen.includes(word), 5000, `the echo of ${word} (screen: ${JSON.stringify(screen)})`);
      sol.end();
      await new Promise<void>((resolve) => s.onClose(() => resolve()));
    }
    l.close();
  });
});

describe('ipmi-sol-ack-zero: an Intel BMC that ACKs our characters accepting 0 of them, without NACK, though it took them', () => {
  it('the typed word reaches the machine once and the write completes: the ACK counts as all accepted, told once', async () => {
    const l = linked(['ipmi-sol-ack-zero']);
    const { openSol } = await import('../../src/ipmi/sol.js');
    let echoed = '';
    l.serial.on('data', (d: Buffer) => (echoed += d.toString('latin1')));
    const s = await l.open();
    const sol = await openSol(s, { closeSession: true, retransmitMs: 200, maxRetransmits: 2, onEvent: (e) => l.events.push(e) });
    let screen = '';
    sol.on('data', (d: Buffer) => (screen += d.toString()));
    sol.on('error', () => undefined);
    await waitFor(() => screen.includes('login:'), 10_000, 'the login prompt');
    let written = false;
    sol.write('xyzzy', () => (written = true));
    await waitFor(() => written, 3000, 'the write to complete (the BMC accepted it)');
    sol.end();
    await new Promise<void>((resolve) => s.onClose(() => resolve())); // nothing can be resent after this
    expect(echoed.split('xyzzy').length - 1).toBe(1);
    expect(l.events.map((e) => e.kind)).toEqual(['sol-accepted-zero']);
    l.close();
  });
});

describe('SOL taken from us without notice', () => {
  it("another session takes SOL over and its deactivating status never reaches us: the idle console's keepalive (Get Payload Instance Info) finds the other owner and ends the stream, without Deactivate Payload", async () => {
    /** from the takeover on, the console session id whose SOL datagrams are lost (RMCP+ header: payload type at 5, session id at 6) */
    const lost: { session?: number } = {};
    const isSol = (d: Buffer) => d.length > 10 && (d[5]! & 0x3f) === PayloadType.sol;
    // every SOL datagram to our session after the takeover is lost: the "deactivating" status too
    const l = linked([], undefined, (d) => isSol(d) && d.readUInt32LE(6) === lost.session);
    const { openSol } = await import('../../src/ipmi/sol.js');
    const s1 = await l.open('auto', 300);
    const sol = await openSol(s1, { closeSession: true });
    const closed = new Promise((resolve) => sol.once('close', resolve));
    const errors: Error[] = [];
    sol.on('error', (e: Error) => errors.push(e));
    let screen = '';
    sol.on('data', (d: Buffer) => (screen += d.toString()));
    await waitFor(() => screen.includes('login:'), 10_000, 'the login prompt');
    const s2 = await l.open();
    lost.session = l.bmc.solOwner()!.consoleSessionId;
    const theirs = await openSol(s2, { takeOver: true, closeSession: true });
    theirs.resume();
    await closed;
    expect(errors).toEqual([expect.objectContaining({ code: 'CLOSED', message: expect.stringMatching(/SOL on BMC .* ended: SOL taken over by another session/) })]);
    // our end sent no Deactivate Payload: the new owner keeps SOL
    expect(l.bmc.activeSolPayloads()).toBe(1);
    expect(l.bmc.solOwner()?.bmcSessionId).toBe(s2.bmcSessionId);
    expect(l.bmc.solActivations()).toBe(2);
    theirs.end();
    await new Promise((resolve) => s2.onClose(resolve));
    l.close();
  });
});

describe('SOL on another UDP port of the BMC', () => {
  it('opens a second socket in the same session, sends and receives SOL there, and closes it with the session', async () => {
    const machine = new SimMachine(createMachineState('quirk-unit', 1));
    const serial = new SerialLine(machine, { hostname: 'unit' });
    const handlers = new Map<number, (d: Buffer) => void>();
    const received = new Map<number, number>(); // BMC port -> datagrams the BMC got there
    const opened: number[] = [];
    const closed: number[] = [];
    const bmc = new SimBmc({
      machine,
      serial,
      ...BMC_SETTINGS,
      solPort: () => 6231,
      // the BMC answers the client port its last packet came from: 40000 (623) or 40001 (6231)
      send: (d, remote) => setImmediate(() => handlers.get(remote.port === 40001 ? 6231 : 623)?.(d)),
    });
    const channelTo = (port: number): DatagramChannel => ({
      remote: `192.0.2.9:${port}`,
      send: (d) =>
        setImmediate(() => {
          received.set(port, (received.get(port) ?? 0) + 1);
          bmc.handle(d, { address: '192.0.2.1', port: port === 623 ? 40000 : 40001 });
        }),
      onDatagram: (h) => handlers.set(port, h),
      close: () => closed.push(port),
    });
    const pool = {
      open: async (_host: string, port: number) => (opened.push(port), channelTo(port)),
      stats: () => ({ sockets: 1, channels: handlers.size }),
      close: () => undefined,
    };
    const events: IpmiEvent[] = [];
    const s = await openSession({ host: '192.0.2.9', channel: channelTo(623), pool, user: 'ADMIN', password: 'secret', keepaliveMs: 0, closeLingerMs: 0 });
    const { openSol } = await import('../../src/ipmi/sol.js');
    const sol = await openSol(s, { closeSession: true, onEvent: (e) => events.push(e) });
    let screen = '';
    sol.on('data', (d: Buffer) => (screen += d.toString()));
    await waitFor(() => screen.includes('login:'), 10_000, `the login prompt over the SOL port (screen: ${JSON.stringify(screen)})`);
    sol.write('typed-over-6231');
    await waitFor(() => screen.includes('typed-over-6231'), 10_000, 'the echo of what was typed');
    expect(opened).toEqual([6231]);
    expect(events).toEqual([{ kind: 'sol-port', message: 'BMC 192.0.2.9:623 serves SOL on UDP port 6231; the console uses that port' }]);
    expect(received.get(6231)).toBeGreaterThan(0); // acknowledgements and keystrokes went to the SOL port
    sol.end();
    await new Promise<void>((resolve) => s.onClose(() => resolve()));
    expect(closed).toContain(6231);
    expect(bmc.activeSolPayloads()).toBe(0);
    bmc.close();
    serial.close();
  });
});

describe('the daemon log of a quirk', () => {
  it('warns once per BMC and quirk, then logs at debug level (a report cycle reopens sessions every interval)', async () => {
    const { logQuirk } = await import('../../src/outband/connect.js');
    const { captureLog } = await import('../helpers/log.js');
    const log = captureLog();
    const e: IpmiEvent = { kind: 'cipher-suites-fallback', message: 'BMC 192.0.2.77:623 did not list its cipher suites (x); trying 17, then 3' };
    for (let i = 0; i < 3; i++) logQuirk(log.logger, '192.0.2.77', e);
    logQuirk(log.logger, '192.0.2.78', e);
    const lines = log.find(/did not list its cipher suites/);
    expect(lines.map((l) => [l.level, l.bmc, l.quirk])).toEqual([
      [40, '192.0.2.77', 'cipher-suites-fallback'],
      [20, '192.0.2.77', 'cipher-suites-fallback'],
      [20, '192.0.2.77', 'cipher-suites-fallback'],
      [40, '192.0.2.78', 'cipher-suites-fallback'],
    ]);
  });
});
