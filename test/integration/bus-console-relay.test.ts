/**
 * The console relay (src/bus/console-relay.ts) over a real nats-server: output and input both
 * ways, refusals reach the viewer side, oversized or too fast input is dropped and counted, the
 * open rate and relay count are bounded, and either side ends the relay when the other goes; the
 * owner's notices reach the viewer side (also those sent before the open was answered, and at most
 * their rate), and the viewer side's takeover reaches the owner.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { connect as tcpConnect, createServer, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { openRelay, serveRelays, type RelayedConsole, type RelayNotice, type RelayPort, type RelayServer } from '../../src/bus/console-relay.js';
import { BmcError } from '../../src/errors.js';
import { captureLog } from '../helpers/log.js';
import { startTestNatsServer, type TestNatsServer } from '../helpers/nats-server.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { it } = withPeers('nats-server');

let server: TestNatsServer;
let near: NatsConnection;
let far: NatsConnection;
const cleanup: Array<() => void> = [];
let prefixSeq = 0;

beforeAll(async () => {
  server = await startTestNatsServer({ jetstream: false });
  near = await connect({ servers: server.url });
  far = await connect({ servers: server.url });
}, 30_000);

afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

afterAll(async () => {
  await near?.close();
  await far?.close();
  await server?.dispose();
});

/** an owner whose "console" records input and lets the test send output */
async function owner(o: { refuse?: string; maxRelays?: number; opensPerSecond?: number; inputBytesPerSecond?: number; pingMs?: number; idleMs?: number } = {}) {
  const prefix = `t${++prefixSeq}.console`;
  const inputs: Buffer[] = [];
  const ports: RelayPort[] = [];
  let left = 0;
  let takeovers = 0;
  /** keystrokes and breaks in the order the owner's session got them */
  const order: string[] = [];
  const refused: string[] = [];
  const relays: RelayServer = serveRelays({
    nc: far,
    prefix,
    instanceId: 'far',
    logger: captureLog('warn').logger,
    ...o,
    onRefused: (r) => refused.push(r),
    async join(_machine, _from, port) {
      if (o.refuse) throw new BmcError('BUSY', o.refuse);
      ports.push(port);
      return {
        input: (d) => (inputs.push(d), order.push(d.toString())),
        takeover: () => takeovers++,
        sendBreak: () => (order.push('<break>'), true),
        leave: () => left++,
      };
    },
  });
  cleanup.push(() => relays.close());
  // subscribed means the server has the subscription
  await far.flush();
  return { prefix, inputs, order, ports, refused, relays, left: () => left, takeovers: () => takeovers };
}

function open(prefix: string, o: { pingMs?: number; idleMs?: number; noticesPerSecond?: number; onNoticeDropped?: () => void } = {}): Promise<RelayedConsole> {
  return openRelay({ nc: near, prefix, from: 'near', owner: 'far', machineId: 'm1', signal: new AbortController().signal, ...o });
}

it('relays output to the viewer side and keystrokes back', async () => {
  const f = await owner();
  const s = await open(f.prefix);
  let out = '';
  s.on('data', (d: Buffer) => (out += d.toString()));
  f.ports[0]!.send(Buffer.from('x'.repeat(40_000)));
  await waitFor(() => out.length === 40_000, 10_000, 'output in 16 KiB messages');
  s.write(Buffer.from('ls\r'));
  await waitFor(() => f.inputs.length === 1, 10_000, 'input');
  expect(f.inputs[0]!.toString()).toBe('ls\r');
  s.destroy();
  await waitFor(() => f.left() === 1 && f.relays.count() === 0, 10_000, 'the owner letting go');
});

it("sends a break to the owner's session after the keystrokes typed before it, and bounds breaks by the relay's input rate", async () => {
  // no refill during the test (the owner refills every pingMs)
  const f = await owner({ inputBytesPerSecond: 1024, pingMs: 60_000, idleMs: 120_000 });
  const s = await open(f.prefix, { pingMs: 60_000, idleMs: 120_000 });
  const notices: RelayNotice[] = [];
  s.onNotice((n) => notices.push(n));
  s.write(Buffer.from('echo b > /proc/sysrq-trigger'));
  expect(s.sendBreak()).toBe(true);
  s.write(Buffer.from('after'));
  await waitFor(() => f.order.length === 3, 10_000, 'keys, the break and the keys after it');
  expect(f.order).toEqual(['echo b > /proc/sysrq-trigger', '<break>', 'after']);
  // a flood of breaks costs the relay's input like keystrokes: most are refused, counted
  for (let i = 0; i < 10; i++) s.sendBreak();
  await waitFor(() => f.refused.filter((r) => r === 'input-limit').length >= 6, 10_000, 'breaks over the rate refused');
  expect(f.order.filter((e) => e === '<break>').length).toBeLessThanOrEqual(4);
  // and the viewer side is told
  await waitFor(() => notices.some((n) => n.type === 'error' && n.message === "break not sent: over this relay's input rate"), 10_000, 'the refusal told');
  s.destroy();
  await waitFor(() => f.left() === 1, 10_000, 'the owner letting go');
  expect(s.sendBreak()).toBe(false);
});

it('tells the viewer side why the owner refused', async () => {
  const f = await owner({ refuse: 'not held here' });
  await expect(open(f.prefix)).rejects.toMatchObject({ code: 'BUSY', message: expect.stringContaining('not held here') });
  expect(f.relays.count()).toBe(0);
});

it('drops input over the size and rate bounds, and counts it', async () => {
  const f = await owner({ inputBytesPerSecond: 8192 });
  const s = await open(f.prefix);
  // the relay's own side cuts writes to 4 KiB messages; a raw oversized message is dropped
  near.publish(`${f.prefix}.relay.${'0'.repeat(32)}.in`, new Uint8Array(10));
  for (let i = 0; i < 4; i++) s.write(Buffer.alloc(4096, 0x61));
  await waitFor(() => f.refused.filter((r) => r === 'input-limit').length === 2, 10_000, 'two messages over the rate');
  expect(f.inputs.reduce((n, b) => n + b.length, 0)).toBe(8192);
  s.destroy();
});

it('bounds the relays at once and the open rate', async () => {
  const f = await owner({ maxRelays: 2 });
  const a = await open(f.prefix);
  const b = await open(f.prefix);
  await expect(open(f.prefix)).rejects.toMatchObject({ code: 'BUSY', message: expect.stringContaining('too many') });
  expect(f.refused).toContain('open-limit');
  a.destroy();
  b.destroy();
  const g = await owner({ opensPerSecond: 1 });
  const results = await Promise.allSettled([open(g.prefix), open(g.prefix), open(g.prefix)]);
  expect(results.filter((r) => r.status === 'rejected').length).toBeGreaterThanOrEqual(1);
  for (const r of results) if (r.status === 'fulfilled') r.value.destroy();
  // an open request that is not one is refused
  const reply = await near.request(`${g.prefix}.open.far`, Buffer.from('{"machine":"m1"}'), { timeout: 5000 });
  expect(reply.string()).toContain('invalid open request');
});

it('ends the relay on the viewer side when the owner goes silent, and on the owner side when the viewer does', async () => {
  // the owner's process dies: its connection goes without a word
  const dying = await connect({ servers: server.url });
  const prefix = `t${++prefixSeq}.console`;
  serveRelays({ nc: dying, prefix, instanceId: 'far', logger: captureLog('warn').logger, pingMs: 100, idleMs: 600, join: async () => ({ input: () => undefined, takeover: () => undefined, sendBreak: () => false, leave: () => undefined }) });
  await dying.flush();
  const s = await open(prefix, { pingMs: 100, idleMs: 600 });
  const ended = new Promise<Error | undefined>((resolve) => s.on('error', resolve).on('close', () => resolve(undefined)));
  await dying.close();
  expect(await ended).toMatchObject({ code: 'TIMEOUT' });
  // a viewer side that vanishes without a word: the owner lets go after the idle time
  const g = await owner({ pingMs: 100, idleMs: 600 });
  const rogue = await open(g.prefix, { pingMs: 60_000, idleMs: 60_000 });
  rogue.on('error', () => undefined);
  await waitFor(() => g.left() === 1, 10_000, 'the owner letting go of a silent viewer');
  rogue.destroy();
});

it('brings the owner\'s notices to the viewer side, those before the open answer too, and takeovers back', async () => {
  const f = await owner();
  const early: RelayNotice = { type: 'status', state: 'open', keyboard: true, owner: 'metal-bmc near', clients: 1, message: 'connected to the console of machine m1' };
  // the owner's session greets its new client while joining: before the open is answered
  const greetingPrefix = `t${++prefixSeq}.console`;
  const greeting = serveRelays({
    nc: far,
    prefix: greetingPrefix,
    instanceId: 'far',
    logger: captureLog('warn').logger,
    async join(_machine, _from, port) {
      port.notify(early);
      return { input: () => undefined, takeover: () => undefined, sendBreak: () => false, leave: () => undefined };
    },
  });
  cleanup.push(() => greeting.close());
  await far.flush();
  const s = await open(greetingPrefix);
  const seen: RelayNotice[] = [];
  s.onNotice((n) => seen.push(n));
  expect(seen).toEqual([early]);
  expect(s.via).toBe('far');
  s.destroy();

  const t = await open(f.prefix);
  const got: RelayNotice[] = [];
  t.onNotice((n) => got.push(n));
  const taken: RelayNotice = { type: 'status', state: 'open', keyboard: false, owner: 'CN=ops\u001b[2J', clients: 2, message: 'keyboard taken over by CN=ops' };
  f.ports[0]!.notify(taken);
  f.ports[0]!.notify({ type: 'error', message: 'input ignored: the keyboard is held by CN=ops; take it over to type' });
  await waitFor(() => got.length === 2, 10_000, 'two notices');
  // text from the other side loses its control characters (it reaches a terminal)
  expect(got[0]).toEqual({ ...taken, owner: 'CN=ops [2J' });
  expect(got[1]).toMatchObject({ type: 'error', message: expect.stringContaining('input ignored') });
  t.takeover();
  await waitFor(() => f.takeovers() === 1, 10_000, 'the takeover at the owner');
  t.destroy();
});

it('drops the owner\'s notices over their rate on the viewer side, and counts them', async () => {
  const f = await owner();
  let dropped = 0;
  const s = await open(f.prefix, { noticesPerSecond: 5, onNoticeDropped: () => dropped++ });
  let got = 0;
  s.onNotice(() => got++);
  for (let i = 0; i < 40; i++) f.ports[0]!.notify({ type: 'error', message: `n${i}` });
  await waitFor(() => got + dropped === 40, 10_000, 'every notice taken or dropped');
  expect(got).toBeGreaterThanOrEqual(10);
  expect(got).toBeLessThan(20);
  expect(dropped).toBe(40 - got);
  s.destroy();
});

it('a relay the owner ends while its console still opens fails the open (no stray error event); a slow open is kept alive by the viewer side\'s pings', async () => {
  const prefix = `t${++prefixSeq}.console`;
  let joins = 0;
  let finishJoin: (() => void) | undefined;
  const relays = serveRelays({
    nc: far,
    prefix,
    instanceId: 'far',
    logger: captureLog('warn').logger,
    pingMs: 100,
    idleMs: 600,
    // the owner's console takes its time to open (up to 30 s in the daemon)
    join: () => {
      joins++;
      return new Promise((resolve) => (finishJoin = () => resolve({ input: () => undefined, takeover: () => undefined, sendBreak: () => false, leave: () => undefined })));
    },
  });
  cleanup.push(() => relays.close());
  await far.flush();
  // a join slower than the owner's idle time: the viewer side's pings keep the relay
  const slow = open(prefix, { pingMs: 100, idleMs: 600 });
  await waitFor(() => joins === 1, 5000, 'the owner joining');
  const joinStarted = Date.now();
  await waitFor(() => Date.now() - joinStarted > 1500, 5000, 'past the owner idle time'); // nothing to happen meanwhile: the relay stays
  expect(relays.count()).toBe(1);
  finishJoin!();
  const stream = await slow;
  stream.on('error', () => undefined);
  stream.destroy();
  // the owner ends a relay whose open it has not answered (the machine moved, a restart)
  const ending = open(prefix, { pingMs: 100, idleMs: 600 });
  await waitFor(() => joins === 2, 5000, 'the second join');
  relays.endWhere(() => true, 'the console moved to another instance');
  await expect(ending).rejects.toMatchObject({ code: 'CLOSED', message: expect.stringMatching(/the owning instance ended the console: the console moved to another instance/) });
  finishJoin!();
});

/**
 * A TCP hop between the clients and nats-server that can hold a drain in its last step: the client
 * unsubscribes (a round trip), from then on refuses to publish, and closes after a second round
 * trip. Once `holdDrains()` was called, the server's answer to a PING sent while no other was
 * outstanding (that second round trip) is held, with all that follows, until `release()`.
 */
async function drainHoldingHop(serverPort: number): Promise<{ port: number; holdDrains(): void; release(): void; close(): void }> {
  let armed = false;
  const releases: Array<() => void> = [];
  const sockets = new Set<Socket>();
  const count = (d: Buffer, what: string) => d.toString('latin1').split(what).length - 1;
  const hop = createServer((client) => {
    const upstream = tcpConnect(serverPort, '127.0.0.1');
    let [pings, pongs, pingsArmed, holding] = [0, 0, 0, false];
    let held: Buffer[] = [];
    client.on('data', (d: Buffer) => {
      for (let n = count(d, 'PING\r\n'); n > 0; n--) {
        if (armed && pingsArmed > 0 && pongs === pings) holding = true;
        pings++;
        if (armed) pingsArmed++;
      }
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (holding) return void held.push(d);
      pongs += count(d, 'PONG\r\n');
      client.write(d);
    });
    releases.push(() => {
      holding = false;
      for (const d of held) client.write(d);
      held = [];
    });
    for (const sock of [client, upstream]) {
      sockets.add(sock);
      sock.on('error', () => undefined);
      sock.on('close', () => (client.destroy(), upstream.destroy()));
    }
  });
  await new Promise<void>((resolve) => hop.listen(0, '127.0.0.1', resolve));
  return {
    port: (hop.address() as { port: number }).port,
    holdDrains: () => void (armed = true),
    release() {
      armed = false;
      for (const release of releases) release();
    },
    close() {
      for (const sock of sockets) sock.destroy();
      hop.close();
    },
  };
}

/** whether `nc` refuses to publish (a drain past its unsubscribing) */
function refusesPublish(nc: NatsConnection): boolean {
  try {
    nc.publish('probe.drain', new Uint8Array(0));
    return false;
  } catch {
    return true;
  }
}

it('a relay used while both sides\' NATS connections drain (a shutdown) throws nothing, from its calls or its timers, and ends on both sides', async () => {
  const hop = await drainHoldingHop(server.port);
  cleanup.push(() => hop.close());
  const [nearNc, farNc] = [await connect({ servers: `127.0.0.1:${hop.port}` }), await connect({ servers: `127.0.0.1:${hop.port}` })];
  cleanup.push(() => void nearNc.close(), () => void farNc.close());
  const prefix = `t${++prefixSeq}.console`;
  let port: RelayPort | undefined;
  let left = 0;
  const relays = serveRelays({
    nc: farNc,
    prefix,
    instanceId: 'far',
    logger: captureLog('warn').logger,
    pingMs: 50,
    idleMs: 300,
    join: async (_machine, _from, p) => ((port = p), { input: () => undefined, takeover: () => undefined, sendBreak: () => false, leave: () => void left++ }),
  });
  cleanup.push(() => relays.close());
  await farNc.flush();
  const s = await openRelay({ nc: nearNc, prefix, from: 'near', owner: 'far', machineId: 'm1', signal: new AbortController().signal, pingMs: 50, idleMs: 300 });
  const errors: Error[] = [];
  s.on('error', (e: Error) => errors.push(e));
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown) => uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  try {
    // both drains stay in their last step, where publish throws
    hop.holdDrains();
    const drained = Promise.all([nearNc.drain(), farNc.drain()]);
    await waitFor(() => refusesPublish(nearNc) && refusesPublish(farNc), 10_000, 'both connections refusing to publish');
    // what the console session and the viewer do meanwhile
    port!.send(Buffer.from('output'));
    port!.notify({ type: 'error', message: 'a notice' });
    s.write(Buffer.from('ls\r'));
    s.takeover();
    // the timers ping, then each side ends the relay it hears nothing from
    await waitFor(() => left === 1 && relays.count() === 0 && errors.length > 0, 10_000, 'both sides ending the relay');
    hop.release();
    await drained;
  } finally {
    process.off('uncaughtException', onUncaught);
    hop.release();
  }
  expect(uncaught).toEqual([]);
  expect(errors).toEqual([expect.objectContaining({ code: 'TIMEOUT', message: expect.stringMatching(/metal-bmc instance far went silent/) })]);
  expect(s.destroyed).toBe(true);
});
