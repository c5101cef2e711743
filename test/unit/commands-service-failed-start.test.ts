/**
 * A start of the command path that fails after recover() (parts/commands.ts startCommandService:
 * the machine event subscription throws while JetStream is not ready) is tried again by the daemon
 * every 2 s with a new set of firmware jobs, which resumes the jobs of the state file again. The
 * failed start must end what its recover() began: one watcher per job, whatever the attempts.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import type { MachineEventSubscription } from '../../src/bus/machine-events.js';
import type { FirmwareJob } from '../../src/commands/firmware-jobs.js';
import type { ConnectBmc } from '../../src/commands/runner.js';
import { BmcError } from '../../src/errors.js';
import type { Outband } from '../../src/outband/types.js';
import { startCommandService, type CommandService } from '../../src/parts/commands.js';
import { captureLog } from '../helpers/log.js';
import { waitFor } from '../helpers/wait.js';

let dir: string | undefined;
let service: CommandService | undefined;
afterEach(async () => {
  await service?.stop(100);
  service = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A BMC whose update is still running: a watch goes on until it is aborted. */
function fakeBmcs() {
  const watching = new Set<AbortSignal>();
  let connects = 0;
  const connect: ConnectBmc = (ipmi) => {
    connects += 1;
    return {
      address: ipmi.host,
      vendor: 'fake',
      watchFirmware: (_kind: string, _watch: unknown, x?: { signal?: AbortSignal }) =>
        new Promise<void>((_resolve, reject) => {
          const signal = x!.signal!;
          watching.add(signal);
          signal.addEventListener('abort', () => (watching.delete(signal), reject(new BmcError('ABORTED', 'aborted'))), { once: true });
        }),
      close: async () => undefined,
    } as unknown as Outband;
  };
  return { connect, watching, connects: () => connects };
}

const subscription: MachineEventSubscription = {
  leading: () => true,
  onLeading: () => () => undefined,
  leaderless: () => false,
  consumerProblem: () => undefined,
  stop: async () => undefined,
} as unknown as MachineEventSubscription;

describe('a command path start that fails after recover()', () => {
  it('stops the jobs it resumed: the start tried again is the only one watching', async () => {
    dir = mkdtempSync(join(tmpdir(), 'failed-start-'));
    const stateFile = join(dir, 'firmware-jobs.json');
    const now = new Date().toISOString();
    const job: FirmwareJob = { id: 'j1', machineId: 'm1', key: 'm1', kind: 'bios', bmc: '10.0.0.1:623', image: 'https://images.example/bios.bin', state: 'running', acceptedAt: now, updatedAt: now, taskUri: '/redfish/v1/TaskService/Tasks/1', target: '/redfish/v1/Systems/1' };
    writeFileSync(stateFile, JSON.stringify({ version: 1, jobs: [job] }));
    const bmcs = fakeBmcs();
    const nc = { publish: () => undefined } as unknown as NatsConnection;
    const options = {
      nc,
      subject: 'machine',
      resultSubject: 'result',
      ttlMs: 30_000,
      durableName: 'test',
      mode: 'core' as const,
      connect: bmcs.connect,
      concurrency: 1,
      timeoutMs: 5000,
      logger: captureLog().logger,
      firmware: { timeoutMs: 600_000, stateFile },
    };
    const notReady = () => Promise.reject(new BmcError('UNAVAILABLE', 'JetStream not ready'));
    await expect(startCommandService({ ...options, subscribe: notReady })).rejects.toThrow('JetStream not ready');
    // its job stays running in the state file, for the next start to take up
    expect((JSON.parse(readFileSync(stateFile, 'utf8')) as { jobs: FirmwareJob[] }).jobs[0]).toMatchObject({ id: 'j1', state: 'running' });
    service = await startCommandService({ ...options, subscribe: async () => subscription });
    await waitFor(() => bmcs.connects() >= 2 && bmcs.watching.size === 1, 5000, 'one watch: the second start\'s');
    expect(service.firmware?.activeFor({ key: 'm1', ipmi: { address: job.bmc, host: '10.0.0.1', port: 623 } })).toMatchObject({ id: 'j1' });
  });
});
