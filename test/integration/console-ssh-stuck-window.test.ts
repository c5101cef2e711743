/**
 * An SSH client that keeps its connection alive but never opens its session channel's window
 * again, while another client takes the keyboard in a loop: every takeover is a notice to it,
 * which ssh2 buffered for as long as the connection lived (a reviewer's daemon grew by 1 GiB in
 * two minutes). The channel is dropped as too slow once what waits for it passes the client
 * queue bound, closed rather than ended, so its buffer and its place on the connection go.
 * Real ssh2 clients over TLS with client certificates; the BMC side is a stream the test writes
 * serial output into.
 */
import { readFileSync } from 'node:fs';
import { PassThrough, type Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { Registry } from 'prom-client';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, expect } from 'vitest';
import { startConsoleServers, type ConsoleServers } from '../../src/console/index.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import { createPki, type Pki } from '../helpers/pki.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('openssl');

const MACHINE = 'cccccccc-88f6-5390-8154-fa53d93a3313';
/** small, so that the takeovers' burst passes it */
const QUEUE_BYTES = 512;
/** the window the stuck client announces for its session channels, and never adjusts */
const STUCK_WINDOW = 256;

let pki: Pki;
let servers: ConsoleServers;
let log: CapturedLog;
const registry = new Registry();
/** the serial line of the console opened last */
let serial: PassThrough | undefined;

beforeAll(async () => {
  pki = await createPki();
  log = captureLog();
  const openBackend = (): Promise<Duplex> => Promise.resolve((serial = new PassThrough()));
  servers = await startConsoleServers({ host: '127.0.0.1', port: 0, wsPort: null, caCertFile: pki.ca, certFile: pki.serverCert, keyFile: pki.serverKey, openBackend, logger: log.logger, registry, hub: { maxClientQueueBytes: QUEUE_BYTES } });
});

afterAll(async () => {
  await servers?.close();
  pki?.remove();
});

/** An ssh2 client over TLS to `to`'s SSH listener; with `window`, each session channel it opens announces that window, and the client (which counts 2 MiB) never adjusts it. */
async function connectTo(to: ConsoleServers, window?: number): Promise<{ client: ssh2.Client; socket: ReturnType<typeof tlsConnect> }> {
  const socket = tlsConnect({ host: '127.0.0.1', port: to.sshPort, ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey), servername: 'localhost', checkServerIdentity: () => undefined });
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  const client = new ssh2.Client();
  client.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => client.once('ready', resolve).once('error', reject).connect({ sock: socket, username: MACHINE }));
  if (window !== undefined) {
    const protocol = (client as unknown as { _protocol: { session(chan: number, window: number, packetSize: number): void } })._protocol;
    const session = protocol.session.bind(protocol);
    protocol.session = (chan, _window, packetSize) => session(chan, window, packetSize);
  }
  return { client, socket };
}

const connect = async (window?: number) => (await connectTo(servers, window)).client;

const exec = (client: ssh2.Client, command: string) => new Promise<ssh2.ClientChannel>((resolve, reject) => client.exec(command, (err, channel) => (err ? reject(err) : resolve(channel))));

describe('console SSH: a channel whose window stays shut', () => {
  it('is dropped as too slow while takeovers loop, holding at most the queue bound, and closed: its place on the connection is free again', async () => {
    const stuckClient = await connect(STUCK_WINDOW);
    const taker = await connect();
    try {
      const stuck = await exec(stuckClient, 'bash');
      let stuckErr = '';
      stuck.stderr.on('data', (d: Buffer) => (stuckErr += d.toString()));
      stuck.on('data', () => undefined);
      let exitCode: number | undefined;
      stuck.on('exit', (code: number) => (exitCode = code));
      let stuckClosed = false;
      stuck.once('close', () => (stuckClosed = true));
      await waitFor(() => stuckErr.includes('connected to the console'), 8000, 'the stuck client joined');
      // serial output past its window waits on its stdout: a channel ended, not closed, would wait for it to go out
      serial!.write(Buffer.alloc(STUCK_WINDOW + 100, 'x'));

      // `exec takeover` opened and closed in a loop, as the reviewer's client did
      let cycles = 0;
      for (; cycles < 200 && !stuckClosed; cycles++) {
        const channel = await exec(taker, 'takeover');
        let text = '';
        channel.on('data', () => undefined);
        channel.stderr.on('data', (d: Buffer) => (text += d.toString()));
        await waitFor(() => text.includes('connected to the console') || stuckClosed, 8000, 'the taker joined');
        const closed = new Promise((resolve) => channel.once('close', resolve));
        channel.close();
        await closed;
      }
      await waitFor(() => stuckClosed, 8000, 'the stuck channel closed');
      expect(exitCode).toBe(1);
      const dropped = log.find('console client too slow, dropped');
      expect(dropped).toHaveLength(1);
      // what ssh2 held for it when it was dropped: the bound and the notice that went over it
      expect(dropped[0]!.unsent as number).toBeGreaterThan(0);
      expect((dropped[0]!.unsent as number) + (dropped[0]!.queued as number)).toBeLessThanOrEqual(QUEUE_BYTES + 200);
      expect(await registry.getSingleMetricAsString('metal_bmc_console_events_total')).toMatch(/event="client-dropped-slow"\} 1/);

      // closed, not ended: all 4 sessions of the connection can be opened again
      const again = [];
      for (let i = 0; i < 4; i++) again.push(await exec(stuckClient, 'bash'));
      expect(again).toHaveLength(4);
    } finally {
      stuckClient.end();
      taker.end();
    }
    await waitFor(() => servers.hub.sessionCount() === 0, 10_000, 'the console closed after both left');
  });
});

describe('console SSH: the close of a channel metal-bmc ended', () => {
  /** the wait for the client's close, short for the test */
  const CLOSE_ANSWER_MS = 1000;
  let idle: ConsoleServers;
  const idleLog = captureLog();
  const idleRegistry = new Registry();
  /** the serial line of the console opened last */
  let idleSerial: PassThrough | undefined;
  const UNANSWERED = 'console connection closed: the client did not answer the close of a session channel metal-bmc ended';
  const unansweredCount = async () => Number(/listener="ssh",reason="close-unanswered"\} (\d+)/.exec(await idleRegistry.getSingleMetricAsString('metal_bmc_console_refused_total'))?.[1] ?? 0);

  beforeAll(async () => {
    // an idle console ends after 300 ms: metal-bmc ends the channel, then waits for the client's close
    const openBackend = (): Promise<Duplex> => Promise.resolve((idleSerial = new PassThrough()));
    idle = await startConsoleServers({ host: '127.0.0.1', port: 0, wsPort: null, caCertFile: pki.ca, certFile: pki.serverCert, keyFile: pki.serverKey, openBackend, logger: idleLog.logger, registry: idleRegistry, idleTimeoutMs: 300, sshCloseAnswerMs: CLOSE_ANSWER_MS });
  });

  afterAll(async () => {
    await idle?.close();
  });

  /** a console opened on `client`, once it joined; its stderr so far */
  async function joined(client: ssh2.Client) {
    const channel = await exec(client, 'bash');
    const seen = { err: '', closed: false };
    channel.stderr.on('data', (d: Buffer) => (seen.err += d.toString()));
    channel.on('data', () => undefined);
    channel.once('close', () => (seen.closed = true));
    await waitFor(() => seen.err.includes('connected to the console'), 8000, 'the client joined');
    return { channel, seen };
  }

  it('loses its connection once the close went unanswered; a client that answers keeps its connection', async () => {
    const polite = await connectTo(idle);
    const mute = await connectTo(idle);
    // the mute client's ssh2 never sends CHANNEL_CLOSE, neither as an answer nor on its own
    (mute.client as unknown as { _protocol: { channelClose(chan: number): void } })._protocol.channelClose = () => undefined;
    let muteSocketClosed = false;
    mute.socket.once('close', () => (muteSocketClosed = true));
    let politeSocketClosed = false;
    polite.socket.once('close', () => (politeSocketClosed = true));
    try {
      const ended = async (client: ssh2.Client) => {
        const channel = await exec(client, 'bash');
        let err = '';
        channel.stderr.on('data', (d: Buffer) => (err += d.toString()));
        channel.on('data', () => undefined);
        await waitFor(() => err.includes('console closed'), 8000, 'the idle console to end the channel');
        return channel;
      };
      await ended(polite.client);
      await ended(mute.client);
      await waitFor(() => muteSocketClosed, 8000, 'the mute client’s connection to be dropped');
      const dropped = idleLog.find(UNANSWERED);
      expect(dropped).toHaveLength(1);
      expect(dropped[0]!.timeoutMs).toBe(CLOSE_ANSWER_MS);
      expect(await unansweredCount()).toBe(1);
      // the polite client answered its close: its connection stays and opens a console again
      expect(politeSocketClosed).toBe(false);
      await ended(polite.client);
      expect(politeSocketClosed).toBe(false);
      expect(idleLog.find(UNANSWERED)).toHaveLength(1);
    } finally {
      polite.client.end();
      mute.client.end();
    }
  });

  it('a mute client with two ended channels is dropped once: one log line, one count', async () => {
    const before = idleLog.find(UNANSWERED).length;
    const countBefore = await unansweredCount();
    const mute = await connectTo(idle);
    (mute.client as unknown as { _protocol: { channelClose(chan: number): void } })._protocol.channelClose = () => undefined;
    let socketClosed = false;
    mute.socket.once('close', () => (socketClosed = true));
    try {
      // both consoles end together when the session goes idle: two closes unanswered at once
      await Promise.all([joined(mute.client), joined(mute.client)]);
      await waitFor(() => socketClosed, 10_000, 'the mute client’s connection to be dropped');
      // the second channel's wait ran out together with the first's, or was cleared with the connection
      await waitFor(() => idleLog.find(UNANSWERED).length > before, 5000, 'the drop logged');
    } finally {
      mute.client.end();
    }
    expect(idleLog.find(UNANSWERED).length - before).toBe(1);
    expect((await unansweredCount()) - countBefore).toBe(1);
  });

  it('a channel whose window stays shut when its console ends is closed without the rest of its output after the drain bound; the client answers and keeps its connection', async () => {
    const before = idleLog.find(UNANSWERED).length;
    const shut = await connectTo(idle, STUCK_WINDOW);
    let socketClosed = false;
    shut.socket.once('close', () => (socketClosed = true));
    try {
      const { seen } = await joined(shut.client);
      // output past the window waits on the channel; the console then goes idle and ends it
      idleSerial!.write(Buffer.alloc(STUCK_WINDOW * 8, 'y'));
      // end() would wait for that output for ever: after CLOSE_ANSWER_MS without any of it moving, the channel is closed
      await waitFor(() => seen.closed, 10_000, 'the ended channel to close');
      expect(socketClosed).toBe(false);
      // the connection is still good: another console opens on it
      const again = await joined(shut.client);
      expect(again.seen.err).toContain('connected to the console');
    } finally {
      shut.client.end();
    }
    expect(idleLog.find(UNANSWERED).length).toBe(before);
  });
});
