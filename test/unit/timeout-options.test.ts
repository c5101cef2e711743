/**
 * Every timeout-type option is checked where it enters, when the object is built: an unusable
 * value is refused with INVALID_ARGUMENT naming the option, before any socket, file or timer.
 * (Options of the IPMI session are checked in src/ipmi/session.ts; the Redfish client, metal-api
 * client, lease watcher and console hub have their own tests.)
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { connectBus } from '../../src/bus/connection.js';
import { subscribeMachineEvents } from '../../src/bus/machine-events.js';
import { createFirmwareJobs } from '../../src/commands/firmware-jobs.js';
import { createEventHandler } from '../../src/commands/handler.js';
import { createCommandRunner, type CommandRunner } from '../../src/commands/runner.js';
import { startConsoleServers } from '../../src/console/index.js';
import { startSshConsoleServer } from '../../src/console/ssh-server.js';
import { startWsConsoleServer } from '../../src/console/ws-server.js';
import { checkDuration } from '../../src/deadline.js';
import { createOutbandPool } from '../../src/outband/pool.js';
import { createReporter } from '../../src/report/reporter.js';
import { captureLog } from '../helpers/log.js';

const BAD = [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31];
const logger = captureLog().logger;
const never = (): never => {
  throw new Error('must not be called');
};

/** the thrown or rejected error, for sync and async builders alike */
async function refusal(build: () => unknown): Promise<unknown> {
  try {
    await build();
  } catch (err) {
    return err;
  }
  return undefined;
}

const BUILDERS: Array<[option: string, build: (ms: number) => unknown]> = [
  ['connectBus: reconnectTimeWaitMs', (ms) => connectBus({ servers: ['nats://127.0.0.1:1'], logger, name: 't', reconnectTimeWaitMs: ms })],
  ['subscribeMachineEvents: maxAgeMs', (ms) => subscribeMachineEvents({ nc: {} as NatsConnection, subject: 's', durableName: 'd', maxAgeMs: ms, logger, handler: never } as never)],
  ['subscribeMachineEvents: ackWaitMs', (ms) => subscribeMachineEvents({ nc: {} as NatsConnection, subject: 's', durableName: 'd', maxAgeMs: 1000, ackWaitMs: ms, logger, handler: never } as never)],
  ['command runner: closeTimeoutMs', (ms) => createCommandRunner({ connect: never, concurrency: 1, timeoutMs: 1000, logger, closeTimeoutMs: ms })],
  ['command runner: ttlMs', (ms) => createCommandRunner({ connect: never, concurrency: 1, timeoutMs: 1000, logger, ttlMs: ms })],
  ['command runner: orderHoldMs', (ms) => createCommandRunner({ connect: never, concurrency: 1, timeoutMs: 1000, logger, orderHoldMs: ms })],
  ['createEventHandler: ttlMs', (ms) => createEventHandler({ runner: {} as CommandRunner, logger, ttlMs: ms })],
  ['firmware jobs: closeTimeoutMs', (ms) => createFirmwareJobs({ connect: never, timeoutMs: 1000, logger, publish: never, closeTimeoutMs: ms })],
  ['createOutbandPool: idleMs', (ms) => createOutbandPool({ idleMs: ms })],
  ['createReporter: intervalMs', (ms) => createReporter({ partitionId: 'p', connect: never, metalApi: { ipmiReport: never }, concurrency: 1, bmcTimeoutMs: 1000, logger, intervalMs: ms, leases: () => [] })],
  ['createReporter: bmcTimeoutMs', (ms) => createReporter({ partitionId: 'p', connect: never, metalApi: { ipmiReport: never }, concurrency: 1, bmcTimeoutMs: ms, logger, intervalMs: 1000, leases: () => [] })],
  ['startConsoleServers: closeGraceMs', (ms) => startConsoleServers({ logger, closeGraceMs: ms } as never)],
  ['startConsoleServers: crlPollMs', (ms) => startConsoleServers({ logger, crlPollMs: ms } as never)],
  ['startSshConsoleServer: handshakeTimeoutMs', (ms) => startSshConsoleServer({ logger, handshakeTimeoutMs: ms } as never)],
  ['startSshConsoleServer: keepaliveIntervalMs', (ms) => startSshConsoleServer({ logger, keepaliveIntervalMs: ms } as never)],
  ['startWsConsoleServer: pingIntervalMs', (ms) => startWsConsoleServer({ logger, pingIntervalMs: ms } as never)],
  ['startWsConsoleServer: handshakeTimeoutMs', (ms) => startWsConsoleServer({ logger, handshakeTimeoutMs: ms } as never)],
  ['startWsConsoleServer: cookieTtlMs', (ms) => startWsConsoleServer({ logger, cookieTtlMs: ms } as never)],
];

describe('timeout options are checked at construction', () => {
  it.each(BUILDERS)('%s', async (option, build) => {
    for (const bad of BAD) {
      const err = await refusal(() => build(bad));
      expect(err, `${option} = ${bad}`).toMatchObject({ code: 'INVALID_ARGUMENT' });
      expect((err as Error).message).toContain(option);
    }
  });

  it('checkDuration takes fractions (a Go duration can have them) and falls back when the option is absent', () => {
    expect(checkDuration('x', 1.5, 10, 100)).toBe(1.5);
    expect(checkDuration('x', undefined, 10, 100)).toBe(10);
    expect(checkDuration('x', 100, 10, 100)).toBe(100);
    expect(() => checkDuration('x', 101, 10, 100)).toThrow(/x must be a number of milliseconds above 0 and up to 100, got 101/);
  });
});
