/**
 * A viewer served by the instance that does not hold the machine gets the owner's notices, as a
 * viewer of the owner does (issue 13): two console hubs over a real nats-server, the owner's with
 * the BMC (a stream the test drives), the other's through the relay (src/bus/console-relay.ts,
 * joined by src/parts/console.ts `relayJoin`). The relayed viewer sees who holds the keyboard at
 * the owner, is told when its input is refused there, takes the keyboard there, sends a break
 * there (after the keys typed before it), and sees the
 * owner's session reconnecting to its BMC, and ending.
 */
import { PassThrough } from 'node:stream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, expect } from 'vitest';
import { openRelay, serveRelays, type RelayServer } from '../../src/bus/console-relay.js';
import { createConsoleHub, type ConsoleHub } from '../../src/console/hub.js';
import type { ClientPort, ConsoleHandle, ConsoleNotice, EndReason } from '../../src/console/types.js';
import { BmcError } from '../../src/errors.js';
import { relayJoin } from '../../src/parts/console.js';
import { captureLog } from '../helpers/log.js';
import { startTestNatsServer, type TestNatsServer } from '../helpers/nats-server.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { it } = withPeers('nats-server');
const PREFIX = 'notices.console';

let server: TestNatsServer;
let nearNc: NatsConnection;
let farNc: NatsConnection;
let farHub: ConsoleHub;
let nearHub: ConsoleHub;
let relays: RelayServer;
/** the owner's BMC consoles, newest last; opening fails while `bmcDown` */
const bmcs: PassThrough[] = [];
let bmcDown = false;

beforeAll(async () => {
  server = await startTestNatsServer({ jetstream: false });
  nearNc = await connect({ servers: server.url });
  farNc = await connect({ servers: server.url });
  const { logger } = captureLog('warn');
  farHub = createConsoleHub({
    logger,
    reconnect: { initialMs: 50, maxMs: 100, maxAttempts: 3 },
    openBackend: async () => {
      if (bmcDown) throw new BmcError('TIMEOUT', 'the BMC does not answer');
      // a SOL console's break goes into the stream where it falls among the keys, as a mark
      const b = Object.assign(new PassThrough(), { sendBreak: () => b.write('<break>') || true });
      bmcs.push(b);
      return b;
    },
  });
  relays = serveRelays({ nc: farNc, prefix: PREFIX, instanceId: 'far', logger, join: relayJoin(farHub, { holder: () => ({ kind: 'self' }) }) });
  await farNc.flush();
  nearHub = createConsoleHub({
    logger,
    reconnect: { initialMs: 5000, maxMs: 5000, maxAttempts: 1 },
    openBackend: (machineId, { signal }) => openRelay({ nc: nearNc, prefix: PREFIX, from: 'near', owner: 'far', machineId, signal }),
  });
}, 30_000);

afterAll(async () => {
  relays?.close();
  await nearHub?.close();
  await farHub?.close();
  await nearNc?.close();
  await farNc?.close();
  await server?.dispose();
});

interface Viewer {
  port: ClientPort;
  notices: ConsoleNotice[];
  ended: EndReason[];
  status(): Extract<ConsoleNotice, { type: 'status' }> | undefined;
  said(text: string): boolean;
}

function viewer(subject: string): Viewer {
  const notices: ConsoleNotice[] = [];
  const ended: EndReason[] = [];
  return {
    port: { identity: { subject, remote: '127.0.0.1:1', transport: 'ws' }, send: () => true, notify: (n) => notices.push(n), end: (r) => ended.push(r) },
    notices,
    ended,
    status: () => notices.filter((n) => n.type === 'status').at(-1) as Extract<ConsoleNotice, { type: 'status' }> | undefined,
    said: (text) => notices.some((n) => n.message?.includes(text)),
  };
}

it('gives a relayed viewer the owner\'s keyboard holder, refusals, takeover, its break, reconnecting and end', async () => {
  const farOps = viewer('CN=far-ops');
  const farHandle: ConsoleHandle = await farHub.join('m1', farOps.port);
  expect(farHandle.hasKeyboard).toBe(true);

  // the relayed viewer: the keyboard is the far viewer's, not its own, though it is alone here
  const nearOps = viewer('CN=near-ops');
  const nearHandle = await nearHub.join('m1', nearOps.port);
  // (the owner's notices that came before the relay was open are in its first status)
  expect(nearOps.status()).toMatchObject({ machineId: 'm1', state: 'open', keyboard: false, owner: 'CN=far-ops', clients: 2, message: 'connected to the console of machine m1' });

  // its input is refused at the owner, and it is told so
  nearHandle.input(Buffer.from('x'));
  await waitFor(() => nearOps.notices.some((n) => n.type === 'error' && n.message.startsWith('metal-bmc far: input ignored: the keyboard is held by CN=far-ops')), 10_000, 'the refusal');

  // nor does its break go out: refused here, since the owner's keyboard is another's
  expect(nearHandle.sendBreak()).toBe(false);
  expect(nearOps.notices.some((n) => n.type === 'error' && /^break ignored: another client holds the keyboard at the instance that holds this console/.test(n.message))).toBe(true);

  // it takes the keyboard at the owner; both viewers are told, and its keystrokes reach the BMC
  nearHandle.takeover();
  await waitFor(() => nearOps.status()?.keyboard === true, 10_000, 'the keyboard on the relayed viewer');
  expect(nearOps.status()).toMatchObject({ owner: 'CN=near-ops', message: 'metal-bmc far: keyboard taken over by metal-bmc near' });
  await waitFor(() => farOps.status()?.owner === 'metal-bmc near', 10_000, 'the far viewer told');
  expect(farHandle.hasKeyboard).toBe(false);
  let typed = '';
  bmcs[0]!.on('data', (d: Buffer) => (typed += d.toString()));
  nearHandle.input(Buffer.from('ls\r'));
  await waitFor(() => typed === 'ls\r', 10_000, 'the keystrokes at the BMC');
  // and its break, after the keys typed before it
  nearHandle.input(Buffer.from('x'));
  expect(nearHandle.sendBreak()).toBe(true);
  nearHandle.input(Buffer.from('y'));
  await waitFor(() => typed === 'ls\rx<break>y', 10_000, 'the break at the BMC between the keys');

  // the far viewer takes it back
  farHandle.takeover();
  await waitFor(() => nearOps.status()?.owner === 'CN=far-ops', 10_000, 'the takeover at the owner told');
  expect(nearOps.status()).toMatchObject({ keyboard: false, message: 'metal-bmc far: keyboard taken over by CN=far-ops' });

  // the owner loses its BMC and gets it back: the relayed viewer sees both
  // (the owner reconnects 50 ms later, so the reconnecting status is looked for among the notices
  // since, not as the last one: a busy machine may deliver both before the check runs)
  const beforeReset = nearOps.notices.length;
  const reconnecting = () => nearOps.notices.slice(beforeReset).find((n) => n.type === 'status' && n.state === 'reconnecting');
  bmcs[0]!.destroy(new Error('BMC reset'));
  await waitFor(() => reconnecting() !== undefined, 10_000, 'reconnecting at the owner');
  expect(reconnecting()?.message).toMatch(/^metal-bmc far: BMC connection lost \(BMC reset\); reconnecting in/);
  await waitFor(() => nearOps.said('metal-bmc far: BMC connection re-established'), 10_000, 'reconnected at the owner');
  expect(nearOps.status()?.state).toBe('open');

  // the owner gives up on its BMC: its session ends, and the relayed viewer is told why
  bmcDown = true;
  bmcs[1]!.destroy(new Error('BMC gone'));
  await waitFor(() => nearOps.said('metal-bmc far: BMC connection lost (BMC gone)'), 10_000, 'the loss at the owner');
  await waitFor(() => nearOps.said('the owning instance ended the console: reconnect failed (the BMC does not answer); gave up after 3 attempts'), 20_000, 'the end at the owner');
  expect(farOps.ended.map((r) => r.code)).toEqual(['bmc-gone']);
  nearHandle.leave();
}, 60_000);
