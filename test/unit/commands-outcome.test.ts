/**
 * Which failures make a command's outcome unknown: only a non-idempotent action that was under way
 * (sent, then no answer or a cut one). A failure before it, a refusal by the BMC, or an idempotent
 * action stays an ordinary failure, tried once more by the runner. The Outband is a fake whose
 * actions fail as told.
 */
import { describe, expect, it } from 'vitest';
import type { MachineCommand } from '../../src/commands/actions.js';
import { decodeMachineEvent, planEvent, type Plan } from '../../src/commands/event.js';
import { dispositionOf } from '../../src/commands/handler.js';
import { createCommandRunner, isIdempotent } from '../../src/commands/runner.js';
import { BmcError, NotSentError, showsNotActed, type BmcErrorCode } from '../../src/errors.js';
import type { Outband } from '../../src/outband/types.js';
import { captureLog } from '../helpers/log.js';

const plan = (command: MachineCommand, actions: MachineCommand[] = [command]): Plan => ({
  machineId: 'm1',
  key: 'm1',
  type: 'command',
  command,
  ipmi: { address: '10.0.0.1:623', host: '10.0.0.1', port: 623 },
  actions: actions.map((c) => ({ kind: 'command' as const, command: c })),
});

function failingBmc(code: BmcErrorCode, httpStatus?: number): Outband {
  const fail = () => Promise.reject(new BmcError(code, `${code} from the fake BMC`, httpStatus ? { httpStatus } : {}));
  return { address: 'fake', vendor: 'fake', powerOn: fail, powerOff: fail, powerReset: fail, powerCycle: fail, bootFrom: fail, identify: fail, close: async () => undefined } as unknown as Outband;
}

async function run(p: Plan, connect: () => Promise<Outband>, timeoutMs = 5000) {
  const runner = createCommandRunner({ connect, concurrency: 1, timeoutMs, logger: captureLog().logger, retryDelayMs: 1 });
  return runner.submit(p);
}

describe('outcome unknown', () => {
  it('RESET, CYCLE and REINSTALL are not idempotent; ON, OFF, boot devices and the LED are', () => {
    const of = (c: MachineCommand) => isIdempotent({ kind: 'command', command: c });
    expect(['RESET', 'CYCLE', 'REINSTALL'].map((c) => of(c as MachineCommand))).toEqual([false, false, false]);
    expect(['ON', 'OFF', 'PXE', 'DISK', 'BIOS', 'LED-ON', 'LED-OFF'].map((c) => of(c as MachineCommand))).toEqual(Array(7).fill(true));
  });

  it('a REINSTALL that fails while setting PXE is an ordinary failure, tried again (its cycle never went out); one whose cycle fails after it was sent is outcome unknown', async () => {
    const reinstall = planEvent(decodeMachineEvent(Buffer.from(JSON.stringify({ type: 'command', cmd: { target: 'm1', cmd: 'REINSTALL', ipmi: { address: '10.0.0.1:623', user: 'u', password: 'p' } } }))));
    let cycles = 0;
    const pxeTimesOut = await run(reinstall, async () => ({ ...failingBmc('TIMEOUT'), powerCycle: () => (cycles++, Promise.resolve()) }) as Outband);
    expect(pxeTimesOut).toMatchObject({ command: 'REINSTALL', ok: false, code: 'TIMEOUT' });
    expect(pxeTimesOut.outcomeUnknown).toBeUndefined();
    expect(cycles).toBe(0);
    const cycleTimesOut = await run(reinstall, async () => ({ ...failingBmc('TIMEOUT'), bootFrom: () => Promise.resolve() }) as Outband);
    expect(cycleTimesOut).toMatchObject({ command: 'REINSTALL', ok: false, code: 'OUTCOME_UNKNOWN', outcomeUnknown: true });
  });

  it('a CYCLE that failed before its request went out (a 500 to the read of the System, a handshake timeout: NotSentError) is an ordinary failure, tried again', async () => {
    let tries = 0;
    const notSentYet = () => (tries++, Promise.reject(new NotSentError(new BmcError('HTTP', 'GET /redfish/v1/Systems/1: HTTP 500', { httpStatus: 500 }))));
    const result = await run(plan('CYCLE'), async () => ({ ...failingBmc('TIMEOUT'), powerCycle: notSentYet }) as Outband);
    expect(result).toMatchObject({ ok: false, code: 'HTTP' });
    expect(result.outcomeUnknown).toBeUndefined();
    expect(tries).toBe(2);
  });

  it('a CYCLE the command\'s deadline caught before its request went out (still reading the System) is an ordinary failure, tried again; one the deadline caught after it is unknown', async () => {
    let reads = 0;
    /** reads the System until the signal ends it, then fails as beforeActing does: not sent */
    const readingWhenAborted = (o?: { signal?: AbortSignal }) => {
      reads++;
      // the Redfish client fails an aborted request with the signal's reason (the deadline's TIMEOUT)
      return new Promise<void>((_resolve, reject) => o?.signal?.addEventListener('abort', () => reject(new NotSentError(o.signal!.reason as BmcError)), { once: true }));
    };
    const caughtBefore = await run(plan('CYCLE'), async () => ({ ...failingBmc('TIMEOUT'), powerCycle: readingWhenAborted }) as Outband, 150);
    expect(caughtBefore.outcomeUnknown).toBeUndefined();
    expect(caughtBefore).toMatchObject({ ok: false, code: 'TIMEOUT', attempts: 2 });
    expect(reads).toBe(2);
    // sent, and its answer still on the way at the deadline: the abort ends it without a NotSentError
    const sentWhenAborted = (o?: { signal?: AbortSignal }) => new Promise<void>((_resolve, reject) => o?.signal?.addEventListener('abort', () => reject(o.signal!.reason), { once: true }));
    const caughtAfter = await run(plan('CYCLE'), async () => ({ ...failingBmc('TIMEOUT'), powerCycle: sentWhenAborted }) as Outband, 150);
    expect(caughtAfter).toMatchObject({ ok: false, code: 'OUTCOME_UNKNOWN', outcomeUnknown: true });
  });

  it.each(['TIMEOUT', 'CLOSED', 'PROTOCOL', 'DECODE'] as const)('a CYCLE that ends in %s after it was sent: outcome unknown, not tried again, terminated', async (code) => {
    let cycles = 0;
    const result = await run(plan('CYCLE'), async () => ({ ...failingBmc(code), powerCycle: () => (cycles++, Promise.reject(new BmcError(code, `${code} from the fake BMC`))) }) as Outband);
    expect(result).toMatchObject({ ok: false, code: 'OUTCOME_UNKNOWN', outcomeUnknown: true });
    expect(result.attempts).toBeUndefined();
    expect(cycles).toBe(1);
    expect(dispositionOf(result)).toBe('term');
  });

  it.each([
    ['HTTP 500', () => new BmcError('HTTP', 'POST .../ComputerSystem.Reset: HTTP 500', { httpStatus: 500 })],
    ['an error of our own', () => new TypeError("Cannot read properties of undefined (reading 'Members')")],
  ] as const)('a CYCLE that ends in %s after it was sent: outcome unknown, not tried again (a second try may reboot twice)', async (_what, error) => {
    let cycles = 0;
    const result = await run(plan('CYCLE'), async () => ({ ...failingBmc('TIMEOUT'), powerCycle: () => (cycles++, Promise.reject(error())) }) as Outband);
    expect(result).toMatchObject({ ok: false, code: 'OUTCOME_UNKNOWN', outcomeUnknown: true });
    expect(cycles).toBe(1);
    expect(dispositionOf(result)).toBe('term');
  });

  it.each([
    ['an IPMI completion code', () => new BmcError('COMPLETION_CODE', 'Chassis Control: node busy', { completionCode: 0xc0 })],
    ['IPMI 0xD5', () => new BmcError('COMPLETION_CODE', 'Chassis Control: command not supported in the present state', { completionCode: 0xd5 })],
    ['IPMI 0xD4', () => new BmcError('COMPLETION_CODE', 'Chassis Control: insufficient privilege level', { completionCode: 0xd4 })],
    ['HTTP 409', () => new BmcError('HTTP', 'HTTP 409', { httpStatus: 409 })],
    ['HTTP 503', () => new BmcError('HTTP', 'HTTP 503', { httpStatus: 503 })],
  ] as const)('a CYCLE the BMC refused with %s did not happen: tried again', async (_what, error) => {
    let cycles = 0;
    const result = await run(plan('CYCLE'), async () => ({ ...failingBmc('TIMEOUT'), powerCycle: () => (cycles++, Promise.reject(error())) }) as Outband);
    expect(result.outcomeUnknown).toBeUndefined();
    expect(result.attempts).toBe(2);
    expect(cycles).toBe(2);
  });

  it.each([
    ['0xC3 (timeout while processing the command)', 0xc3],
    ['0xCE (command response could not be provided)', 0xce],
    ['0xCF (cannot execute a duplicated request)', 0xcf],
    ['0xFF (unspecified error)', 0xff],
    ['0x01 (an OEM code)', 0x01],
    ['0x80 (a command-specific code)', 0x80],
  ] as const)('a CYCLE answered with IPMI completion code %s may have happened: outcome unknown, not tried again', async (what, completionCode) => {
    let cycles = 0;
    const answered = () => (cycles++, Promise.reject(new BmcError('COMPLETION_CODE', `Chassis Control (cycle): ${what}`, { completionCode })));
    const result = await run(plan('CYCLE'), async () => ({ ...failingBmc('TIMEOUT'), powerCycle: answered }) as Outband);
    expect(result).toMatchObject({ ok: false, code: 'OUTCOME_UNKNOWN', outcomeUnknown: true });
    expect(cycles).toBe(1);
    expect(dispositionOf(result)).toBe('term');
  });

  it('which IPMI completion codes prove a request refused: the refusals of IPMI 2.0 table 5-2; 0xC3, 0xCE, 0xCF, 0xFF and codes outside the table do not', () => {
    const refusedBy = (completionCode: number | undefined) => showsNotActed(new BmcError('COMPLETION_CODE', 'x', completionCode === undefined ? {} : { completionCode }));
    const refusals = [0xc0, 0xc1, 0xc2, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6];
    for (let code = 0; code <= 0xff; code++) expect([code, refusedBy(code)]).toEqual([code, refusals.includes(code)]);
    expect(refusedBy(undefined)).toBe(false); // a completion code nobody named proves nothing
    // before the acting request (the Get Chassis Status of a cycle): not sent, whatever the code
    expect(showsNotActed(new NotSentError(new BmcError('COMPLETION_CODE', 'x', { completionCode: 0xff })))).toBe(true);
  });

  it('a delete whose RESET step times out is unknown; its PXE step timing out is not', async () => {
    const result = await run(plan('RESET', ['PXE', 'RESET']), async () => {
      const bmc = failingBmc('TIMEOUT');
      return { ...bmc, bootFrom: async () => undefined } as Outband;
    });
    expect(result.code).toBe('OUTCOME_UNKNOWN');
    expect(result.attempts).toBeUndefined();
    const early = await run(plan('PXE', ['PXE', 'RESET']), async () => failingBmc('TIMEOUT'));
    // tried again by the runner (nothing was sent that may have happened), then final
    expect(early).toMatchObject({ ok: false, code: 'TIMEOUT', attempts: 2 });
    expect(early.outcomeUnknown).toBeUndefined();
    expect(dispositionOf(early)).toBe('term');
  });

  it('not unknown, so tried again by the runner: a failure before the action (connect), a refusal by the BMC, an idempotent action', async () => {
    const connectFailed = await run(plan('RESET'), () => Promise.reject(new BmcError('TIMEOUT', 'connect timed out')));
    expect(connectFailed).toMatchObject({ code: 'TIMEOUT', attempts: 2 });
    expect(dispositionOf(connectFailed)).toBe('term');
    const refused = await run(plan('CYCLE'), async () => failingBmc('HTTP', 409));
    expect(refused).toMatchObject({ code: 'HTTP', attempts: 2 });
    expect(refused.outcomeUnknown).toBeUndefined();
    const on = await run(plan('ON'), async () => failingBmc('TIMEOUT'));
    expect(on).toMatchObject({ code: 'TIMEOUT', attempts: 2 });
    expect(dispositionOf(on)).toBe('term');
  });

  it('a machine queue holds at most maxQueuePerMachine plans; one more is refused with a result', async () => {
    const results: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = { ...failingBmc('TIMEOUT'), powerOn: () => gate } as Outband;
    const runner = createCommandRunner({ connect: async () => slow, concurrency: 1, timeoutMs: 5000, logger: captureLog().logger, maxQueuePerMachine: 2, onResult: (r) => results.push(r.code ?? 'ok') });
    const first = runner.submit(plan('ON'));
    const second = runner.submit(plan('ON'));
    const third = await runner.submit(plan('ON'));
    expect(third).toMatchObject({ ok: false, code: 'QUEUE_FULL', dropped: 'overflow' });
    expect(dispositionOf(third)).toBe('term');
    expect(results).toEqual(['QUEUE_FULL']);
    release();
    await Promise.all([first, second]);
    expect(results).toEqual(['QUEUE_FULL', 'ok', 'ok']);
  });
});
