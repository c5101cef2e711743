/** createStopper and runDaemon (src/cli/serve.ts): how `metal-bmc serve` ends, on a signal and when the daemon cannot go on, also while it starts. */
import { EventEmitter } from 'node:events';
import { afterEach, expect, it, vi } from 'vitest';
import { EXIT_BUS_LOST } from '../../src/bus/connection.js';
import { createStopper, runDaemon } from '../../src/cli/serve.js';
import { captureLog } from '../helpers/log.js';

afterEach(() => vi.useRealTimers());

function stopperWith(stop: () => Promise<void>, shutdownTimeoutMs = 30_000) {
  const log = captureLog();
  const spy = vi.fn(stop);
  return { log, stop: spy, stopper: createStopper({ stop: spy, shutdownTimeoutMs, logger: log.logger }) };
}

it('a signal stops the daemon gracefully, then exit code 0', async () => {
  const { stop, stopper, log } = stopperWith(async () => undefined);
  stopper.signal('SIGTERM');
  await expect(stopper.exitCode).resolves.toBe(0);
  expect(stop).toHaveBeenCalledOnce();
  expect(log.find('shutting down')).toHaveLength(1);
});

it('a fatal condition stops the daemon gracefully too, then exit code 1 for systemd to restart it', async () => {
  let finish!: () => void;
  const { stop, stopper, log } = stopperWith(() => new Promise<void>((r) => (finish = r)));
  stopper.fatal('the NATS connection closed for good');
  let code: number | undefined;
  void stopper.exitCode.then((c) => (code = c));
  await Promise.resolve();
  expect(code).toBeUndefined(); // not before the daemon has stopped
  finish();
  await expect(stopper.exitCode).resolves.toBe(EXIT_BUS_LOST);
  expect(EXIT_BUS_LOST).toBe(1);
  expect(stop).toHaveBeenCalledOnce();
  expect(log.find('shutting down to be restarted')[0]).toMatchObject({ why: 'the NATS connection closed for good', exitCode: 1 });
});

it('a second request while stopping exits at once with 1', async () => {
  const { stop, stopper, log } = stopperWith(() => new Promise<void>(() => undefined));
  stopper.signal('SIGTERM');
  stopper.signal('SIGINT');
  await expect(stopper.exitCode).resolves.toBe(1);
  expect(stop).toHaveBeenCalledOnce();
  expect(log.find('asked to stop again: exiting now')).toHaveLength(1);
});

it('a failed stop, or one that overruns the shutdown timeout and 5 s, exits with 1', async () => {
  const failed = stopperWith(() => Promise.reject(new Error('part refused to stop')));
  failed.stopper.signal('SIGTERM');
  await expect(failed.stopper.exitCode).resolves.toBe(1);
  expect(failed.log.find('shutdown failed')).toHaveLength(1);

  vi.useFakeTimers();
  const stuck = stopperWith(() => new Promise<void>(() => undefined), 1000);
  stuck.stopper.signal('SIGTERM');
  await vi.advanceTimersByTimeAsync(5999);
  let code: number | undefined;
  void stuck.stopper.exitCode.then((c) => (code = c));
  await Promise.resolve();
  expect(code).toBeUndefined();
  await vi.advanceTimersByTimeAsync(1);
  await expect(stuck.stopper.exitCode).resolves.toBe(1);
  expect(stuck.log.find('graceful shutdown took too long: exiting')).toHaveLength(1);
});

/** runDaemon over a start the test ends, and signals it sends through an emitter */
function daemonStarting() {
  const log = captureLog();
  const signals = new EventEmitter();
  const stop = vi.fn(async () => undefined);
  let started!: () => void;
  let failed!: (err: Error) => void;
  const exit = runDaemon({
    start: () => new Promise((resolve, reject) => ((started = () => resolve({ stop })), (failed = reject))),
    shutdownTimeoutMs: 30_000,
    logger: log.logger,
    signals,
  });
  let code: number | undefined;
  exit.then((c) => (code = c), () => undefined);
  return { log, signals, stop, exit, started: () => started(), failed: (err: Error) => failed(err), code: () => code };
}

it('a signal while the daemon starts: the start is waited for, then the daemon is stopped, exit code 0', async () => {
  const d = daemonStarting();
  d.signals.emit('SIGTERM', 'SIGTERM');
  await new Promise((r) => setImmediate(r));
  expect(d.stop).not.toHaveBeenCalled();
  expect(d.code()).toBeUndefined();
  d.started();
  await expect(d.exit).resolves.toBe(0);
  expect(d.stop).toHaveBeenCalledOnce();
  expect(d.log.find('shutting down')).toHaveLength(1);
});

it('a second signal while the daemon starts exits at once with 1, without waiting for the start', async () => {
  const d = daemonStarting();
  d.signals.emit('SIGTERM', 'SIGTERM');
  d.signals.emit('SIGINT', 'SIGINT');
  await expect(d.exit).resolves.toBe(1);
  expect(d.log.find('asked to stop again: exiting now')).toHaveLength(1);
});

it('a start that fails after a signal is thrown as the failure it is, not logged as a failed shutdown', async () => {
  const d = daemonStarting();
  d.signals.emit('SIGTERM', 'SIGTERM');
  d.failed(new Error('console listener: address in use'));
  await expect(d.exit).rejects.toThrow('console listener: address in use');
  await new Promise((r) => setImmediate(r));
  expect(d.stop).not.toHaveBeenCalled();
  expect(d.log.find('shutdown failed')).toHaveLength(0);
});

it('a fatal condition the start reports before its first await: the start is waited for, then stopped, exit code of a fatal stop', async () => {
  const log = captureLog();
  const stop = vi.fn(async () => undefined);
  const exit = runDaemon({
    start: (onFatal) => {
      onFatal('NATS refused the credentials');
      return Promise.resolve({ stop });
    },
    shutdownTimeoutMs: 30_000,
    logger: log.logger,
    signals: new EventEmitter(),
  });
  await expect(exit).resolves.not.toBe(0);
  expect(stop).toHaveBeenCalledOnce();
  expect(log.find('shutdown failed')).toHaveLength(0);
});

it('an uncaught exception or unhandled rejection: logged through the logger, the daemon stopped gracefully, exit code of a fatal stop', async () => {
  for (const origin of ['uncaughtException', 'unhandledRejection'] as const) {
    const log = captureLog();
    const faults = new EventEmitter();
    const stop = vi.fn(async () => undefined);
    const exit = runDaemon({ start: () => Promise.resolve({ stop }), shutdownTimeoutMs: 30_000, logger: log.logger, signals: new EventEmitter(), faults });
    await new Promise((r) => setImmediate(r));
    faults.emit(origin, new TypeError('cannot read properties of undefined'));
    await expect(exit).resolves.toBe(1);
    expect(stop).toHaveBeenCalledOnce();
    const [line] = log.find('uncaught error: stopping to be restarted');
    expect(line).toMatchObject({ origin, err: { message: 'cannot read properties of undefined' } });
    expect(log.find('shutting down to be restarted')).toHaveLength(1);
  }
});

it('more uncaught errors while the daemon stops are logged, not taken as a second request that exits at once', async () => {
  const log = captureLog();
  const faults = new EventEmitter();
  let stopped!: () => void;
  const stop = vi.fn(() => new Promise<void>((resolve) => (stopped = resolve)));
  const exit = runDaemon({ start: () => Promise.resolve({ stop }), shutdownTimeoutMs: 30_000, logger: log.logger, signals: new EventEmitter(), faults });
  await new Promise((r) => setImmediate(r));
  for (let i = 0; i < 15; i++) faults.emit('unhandledRejection', new Error(`read ${i} failed`));
  let code: number | undefined;
  void exit.then((c) => (code = c));
  await vi.waitFor(() => expect(stop).toHaveBeenCalledOnce());
  await new Promise((r) => setImmediate(r));
  expect(code).toBeUndefined();
  expect(log.find('asked to stop again: exiting now')).toHaveLength(0);
  expect(log.find('another uncaught error while stopping')).toHaveLength(9);
  stopped();
  await expect(exit).resolves.toBe(1);
});
