/**
 * Serial-over-LAN against ipmi_sim: its SOL is bridged to a TCP "serial port" the test owns,
 * so the test plays the machine's side of the serial line.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { Cmd } from '../../src/ipmi/commands.js';
import { NetFn } from '../../src/ipmi/message.js';
import { openSession, type SessionOptions } from '../../src/ipmi/session.js';
import { encodeActivateSol } from '../../src/ipmi/sol-packet.js';
import { openSol } from '../../src/ipmi/sol.js';
import { isBmcError } from '../../src/errors.js';
import { startIpmiSim, type IpmiSim } from '../helpers/ipmisim.js';
import type { Duplex } from 'node:stream';
import { waitFor } from '../helpers/wait.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('ipmi_sim', 'ipmitool');

let sim: IpmiSim;
const opts = (): SessionOptions => ({ host: sim.host, port: sim.port, user: sim.user, password: sim.password, cipherSuite: 3, retry: { deadlineMs: 5000 } });

beforeAll(async () => {
  sim = await startIpmiSim();
  await sim.serial.connected();
});
afterAll(async () => {
  await sim?.stop();
});

function collect(stream: Duplex): () => string {
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString('latin1')));
  return () => text;
}

const until = (check: () => boolean, ms = 5000) => waitFor(check, ms);

async function solActive(): Promise<boolean> {
  // Get Payload Activation Status (SOL) through ipmitool: capacity, then a bit per active instance.
  const r = await sim.ipmitool(['raw', '0x06', '0x4a', '0x01']);
  const bytes = r.stdout.trim().split(/\s+/).map((b) => parseInt(b, 16));
  if (r.code !== 0 || bytes.length < 2) throw new Error(`cannot read SOL activation status: ${r.stderr}`);
  return (bytes[1]! & 1) === 1;
}

describe('SOL', () => {
  it('streams serial output to the client and typed input to the serial line, both ways', async () => {
    const session = await openSession(opts());
    const sol = await openSol(session, { closeSession: true });
    const output = collect(sol);
    sim.serial.write('Booting Linux...\r\nlogin: ');
    await until(() => output().includes('login: '));
    sol.write('root\r');
    await until(() => sim.serial.received().toString().includes('root\r'));
    // A burst larger than one SOL packet arrives whole and in order.
    const burst = Array.from({ length: 400 }, (_, i) => `line ${i}\r\n`).join('');
    sim.serial.write(burst);
    await until(() => output().includes('line 399\r\n'), 10_000);
    expect(output()).toContain(burst);
    await new Promise<void>((resolve) => sol.end(resolve));
    await until(() => session.state.kind === 'closed');
  });

  // Runs after the test above, whose only keystrokes went in one packet numbered 1.
  it("ipmi_sim's quirk: it remembers the last number it acknowledged across activations, so a first packet numbered like the previous activation's last is answered as a repeat and its characters are lost (ipmitool's and FreeIPMI's too: they also start at 1)", async () => {
    const session = await openSession(opts());
    const sol = await openSol(session, { closeSession: true });
    // acknowledged, with the count of the previous activation's packet ('root\r', as long as this one)
    await new Promise<void>((resolve, reject) => sol.write('lost\r', (err) => (err ? reject(err) : resolve())));
    sol.write('kept\r'); // numbered 2: a new packet to ipmi_sim
    await until(() => sim.serial.received().toString().includes('kept\r'));
    expect(sim.serial.received().toString()).not.toContain('lost');
    await new Promise<void>((resolve) => sol.end(resolve));
    // ipmi_sim now remembers 2, so the next test's first packet (1) gets through
  });

  it('works in an integrity-only session (suite 2): SOL is then authenticated but not encrypted', async () => {
    const session = await openSession({ ...opts(), cipherSuite: 2 });
    const sol = await openSol(session, { closeSession: true });
    const output = collect(sol);
    sim.serial.write('suite two\r\n');
    await until(() => output().includes('suite two'));
    sol.write('typed over suite 2\r');
    await until(() => sim.serial.received().toString().includes('typed over suite 2'));
    await new Promise<void>((resolve) => sol.end(resolve));
  });

  it('deactivates the payload when the stream ends, so the next client gets it without a takeover', async () => {
    const s1 = await openSession(opts());
    const sol1 = await openSol(s1, { closeSession: true });
    expect(await solActive()).toBe(true);
    await new Promise<void>((resolve) => sol1.end(resolve));
    await until(() => s1.state.kind === 'closed');
    expect(await solActive()).toBe(false);
  });

  it('a payload left active by a crashed client is BUSY, and taken over on request', async () => {
    const crashed = await openSession(opts());
    const r = await crashed.request(NetFn.app, Cmd.activatePayload, encodeActivateSol(1, true, true));
    expect(r.completionCode).toBe(0);
    // the crashed client never deactivates; a second client comes along
    const s2 = await openSession(opts());
    const err = await openSol(s2).catch((e: unknown) => e);
    expect(isBmcError(err, 'BUSY')).toBe(true);
    const sol = await openSol(s2, { takeOver: true, closeSession: true });
    const output = collect(sol);
    sim.serial.write('after takeover\r\n');
    await until(() => output().includes('after takeover'));
    await new Promise<void>((resolve) => sol.end(resolve));
    await crashed.close();
  });

  it('taken over by another client while we type (ipmi_sim tells us nothing and drops our SOL packets): once our retransmissions run out, asked who owns SOL, it names the other session; we give up as taken over, without Deactivate Payload, and the new owner keeps SOL', async () => {
    const s1 = await openSession(opts());
    const ours = await openSol(s1, { closeSession: true, retransmitMs: 100, maxRetransmits: 2 });
    const failed = new Promise<Error>((resolve) => ours.once('error', resolve));
    // another client takes SOL over; ipmi_sim tells us nothing and ignores our SOL packets from now on
    const s2 = await openSession(opts());
    const theirs = await openSol(s2, { takeOver: true, closeSession: true });
    const theirScreen = collect(theirs);
    ours.write('typed into a lost console');
    expect(await failed).toMatchObject({ code: 'CLOSED', message: expect.stringMatching(/SOL taken over by another session .*found after our characters went unacknowledged/) });
    expect(ours.takenOver).toBe(true);
    await until(() => s1.state.kind === 'closed');
    expect(await solActive()).toBe(true);
    sim.serial.write('still theirs\r\n');
    await until(() => theirScreen().includes('still theirs'));
    await new Promise<void>((resolve) => theirs.end(resolve));
  });

  it('taken over while our console is idle (ipmi_sim tells the former owner nothing): the keepalive asks Get Payload Instance Info, finds the other session and ends our stream without Deactivate Payload', async () => {
    const s1 = await openSession({ ...opts(), keepaliveMs: 300 });
    const ours = await openSol(s1, { closeSession: true });
    ours.resume();
    const failed = new Promise<Error>((resolve) => ours.once('error', resolve));
    // ipmi_sim names the owner by the id it gave the session in Open Session, as pyghmi expects
    const info = await s1.request(NetFn.app, Cmd.getPayloadInstanceInfo, Buffer.from([1, 1]));
    expect(info.data.readUInt32LE(0)).toBe(s1.bmcSessionId);
    const s2 = await openSession(opts());
    const theirs = await openSol(s2, { takeOver: true, closeSession: true });
    const theirScreen = collect(theirs);
    expect(await failed).toMatchObject({ code: 'CLOSED', message: expect.stringMatching(/SOL taken over by another session/) });
    await until(() => s1.state.kind === 'closed');
    expect(await solActive()).toBe(true);
    sim.serial.write('theirs after our keepalive\r\n');
    await until(() => theirScreen().includes('theirs after our keepalive'));
    await new Promise<void>((resolve) => theirs.end(resolve));
  });
});
