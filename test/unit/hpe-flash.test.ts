/**
 * iLO's flash state: the wire parser of UpdateService Oem.Hpe (total over any JSON), and the
 * follower's rules that the simulator's straight Idle→Verifying→Updating→Complete run does not
 * reach: the last flash's Complete or Error read before this one shows, a flash that never starts,
 * an UpdateService without Oem.Hpe.State, iLO unreachable and back Idle.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { followHpeFlash, followHpeFlashAgain, hpeFlashPhase } from '../../src/outband/hpe-flash.js';
import { MAX_STATE, parseHpeFlashState, type HpeFlashState } from '../../src/redfish/hpe-flash-state.js';
import { parseUpdateService } from '../../src/redfish/parse.js';
import type { RedfishReply } from '../../src/redfish/session.js';
import { TaskFailedError, TaskLostError, UntracedUpdateError, type TaskProgress } from '../../src/redfish/task.js';

const SERVICE = '/redfish/v1/UpdateService';

describe('parseHpeFlashState', () => {
  it('reads State, FlashProgressPercent and Result as iLO writes them', () => {
    const body = { Oem: { Hpe: { State: 'Error', FlashProgressPercent: 42, Result: { MessageId: 'iLO.2.25.UpdateInvalidFile', MessageArgs: ['a', 7, null] } } } };
    expect(parseHpeFlashState(body)).toEqual({ state: 'Error', percent: 42, resultMessageId: 'iLO.2.25.UpdateInvalidFile', resultMessageArgs: ['a', '7'] });
    expect(parseUpdateService(body).hpeFlash?.state).toBe('Error');
    expect(parseHpeFlashState({ Oem: { Hpe: { State: '  ' } } })).toBeUndefined();
    expect(parseHpeFlashState({ Oem: { Hpe: { State: 'Updating', FlashProgressPercent: 101 } } })).toEqual({ state: 'Updating' });
  });

  it('is total: any JSON gives undefined or a bounded state, a percent 0..100 and string arguments', () => {
    const json = fc.jsonValue();
    const hpeish = fc.record({ State: fc.oneof(fc.string(), json), FlashProgressPercent: fc.oneof(fc.double(), fc.integer(), json), Result: fc.oneof(fc.record({ MessageId: fc.oneof(fc.string(), json), MessageArgs: fc.oneof(fc.array(json), json) }), json) }, { requiredKeys: [] });
    fc.assert(
      fc.property(fc.oneof(json, hpeish.map((Hpe) => ({ Oem: { Hpe } }))), (body) => {
        const flash = parseHpeFlashState(body);
        if (flash === undefined) return;
        expect(flash.state.trim()).not.toBe('');
        expect(flash.state.length).toBeLessThanOrEqual(MAX_STATE + 1);
        if (flash.percent !== undefined) expect(Number.isInteger(flash.percent) && flash.percent >= 0 && flash.percent <= 100).toBe(true);
        for (const a of flash.resultMessageArgs ?? []) expect(typeof a).toBe('string');
      }),
    );
  });
});

describe('hpeFlashPhase', () => {
  it('maps HPE\'s states in any letter case; an unknown one (or a prototype key) is running, never an end', () => {
    expect(['Idle', 'Uploading', 'Verifying', 'Writing', 'Updating', 'Complete', 'Error'].map(hpeFlashPhase)).toEqual(['idle', 'running', 'running', 'running', 'running', 'done', 'failed']);
    expect(hpeFlashPhase('COMPLETED')).toBe('done');
    expect(hpeFlashPhase('AwaitingSomething')).toBe('running');
    expect(hpeFlashPhase('constructor')).toBe('running');
  });
});

/** A stand-in iLO whose UpdateService answers the given states in turn (the last one again); `away` is a reset connection. */
function ilo(answers: Array<HpeFlashState | 'away' | 'no-state'>) {
  let n = 0;
  return {
    getReply: async (path: string): Promise<RedfishReply> => {
      expect(path).toBe(SERVICE);
      const a = answers[Math.min(n++, answers.length - 1)]!;
      if (a === 'away') throw new BmcError('CLOSED', 'connection reset');
      const hpe = a === 'no-state' ? {} : { State: a.state, ...(a.percent === undefined ? {} : { FlashProgressPercent: a.percent }), ...(a.resultMessageId ? { Result: { MessageId: a.resultMessageId } } : {}) };
      return { status: 200, headers: {}, body: { Oem: { Hpe: hpe } } } as unknown as RedfishReply;
    },
  };
}

const untraced = new UntracedUpdateError('accepted (HTTP 202); the BMC named no task to follow');
const fast = { pollMs: 1, unreachablePollMs: 1 };

async function follow(answers: Parameters<typeof ilo>[0], o: { before?: HpeFlashState; restartsBmc?: boolean; startWaitMs?: number; resumed?: boolean } = {}) {
  const progress: TaskProgress[] = [];
  try {
    await followHpeFlash(ilo(answers), SERVICE, untraced, { ...fast, restartsBmc: o.restartsBmc ?? false, onProgress: (p) => progress.push(p), ...(o.before ? { before: o.before } : {}), ...(o.startWaitMs ? { startWaitMs: o.startWaitMs } : {}), ...(o.resumed ? { resumed: true } : {}) });
    return { progress };
  } catch (error) {
    return { error, progress };
  }
}

describe('followHpeFlash', () => {
  it('the last flash\'s Complete, read before this flash shows, is not its end: it ends on the Complete after Updating', async () => {
    const before = { state: 'Complete' };
    const r = await follow([before, before, { state: 'Updating', percent: 50 }, { state: 'Complete' }], { before });
    expect(r.error).toBeUndefined();
    expect(r.progress.map((p) => p.state)).toEqual(['Running', 'Updating', 'Completed']);
    expect(r.progress[1]).toMatchObject({ percent: 50 });
  });

  it('the last flash\'s Error is not this one\'s failure; a new Error is, with its MessageId', async () => {
    const before = { state: 'Error', resultMessageId: 'iLO.2.25.UpdateInterrupted' };
    const r = await follow([before, { state: 'Verifying', percent: 3 }, { state: 'Error', resultMessageId: 'iLO.2.25.FWFlashTPMOverrideFlagRequired' }], { before });
    // iLO's own failure, as a task's: a hold after an outcome unknown ends on it (the flash is over)
    expect(r.error).toBeInstanceOf(TaskFailedError);
    expect((r.error as BmcError).code).toBe('PROTOCOL');
    expect((r.error as BmcError).message).toContain('MessageId iLO.2.25.FWFlashTPMOverrideFlagRequired');
    // FlashProgressPercent counts only while Updating (HPE's reference)
    expect(r.progress.find((p) => p.state === 'Verifying')?.percent).toBeUndefined();
  });

  it('a flash that never leaves Idle fails after the start wait, never Completed', async () => {
    const r = await follow([{ state: 'Idle' }], { startWaitMs: 30 });
    expect((r.error as BmcError).code).toBe('PROTOCOL');
    expect((r.error as BmcError).message).toMatch(/stayed Idle .* the flash never started \(outcome unverified\)/);
    expect(r.progress.map((p) => p.state)).not.toContain('Completed');
  });

  it('an UpdateService without Oem.Hpe.State keeps the answer without a task as it was (UntracedUpdateError)', async () => {
    expect((await follow(['no-state'])).error).toBe(untraced);
  });

  it('a BIOS flash that ran and went back Idle is done (proliantutils), unless iLO was unreachable in between (unverified)', async () => {
    expect((await follow([{ state: 'Updating', percent: 90 }, { state: 'Idle' }])).progress.at(-1)?.state).toBe('Completed');
    const across = await follow([{ state: 'Updating', percent: 90 }, 'away', { state: 'Idle' }]);
    expect((across.error as BmcError).message).toContain("iLO's UpdateService is Idle after iLO was unreachable (last seen: Updating); outcome unverified");
    expect(across.error).not.toBeInstanceOf(TaskLostError);
  });

  it('resumed after a restart of metal-bmc: Complete or Error at once is this flash\'s end; Idle is an end not seen (unverified, an iLO image by its version)', async () => {
    expect((await follow([{ state: 'Complete' }], { resumed: true })).progress.at(-1)?.state).toBe('Completed');
    expect(((await follow([{ state: 'Error', resultMessageId: 'iLO.2.25.UpdateFailed' }], { resumed: true })).error as BmcError).message).toContain('iLO.2.25.UpdateFailed');
    const idle = await follow([{ state: 'Idle' }], { resumed: true });
    expect((idle.error as BmcError).message).toContain("iLO's UpdateService is Idle (last seen: the flash sent before metal-bmc restarted); outcome unverified");
    expect((await follow([{ state: 'Idle' }], { resumed: true, restartsBmc: true })).error).toBeInstanceOf(TaskLostError);
  });

  it('tells once that the flash started, at its first running state (kept for a follow after a restart)', async () => {
    let started = 0;
    await followHpeFlash(ilo([{ state: 'Idle' }, { state: 'Verifying' }, { state: 'Updating', percent: 5 }, { state: 'Complete' }]), SERVICE, untraced, { ...fast, restartsBmc: false, onStarted: () => started++ });
    expect(started).toBe(1);
  });

  it('followed again after a restart before iLO was seen flashing: the last flash\'s Complete is not taken for this one\'s end', async () => {
    const before = { state: 'Complete' };
    const answers = [before, before, { state: 'Updating', percent: 20 }, { state: 'Complete' }];
    // the service root names the UpdateService; the UpdateService's own read (Oem.Hpe.State) comes through getReply
    const get = async (path: string) => (path === SERVICE ? { '@odata.id': SERVICE } : { UpdateService: { '@odata.id': SERVICE } });
    const client = { ...ilo(answers), get };
    const progress: TaskProgress[] = [];
    await followHpeFlashAgain(client as never, 'firmware update (bios) of BMC x', { ...fast, restartsBmc: false, started: false, before, onProgress: (p) => progress.push(p) });
    expect(progress.map((p) => p.state)).toEqual(['Running', 'Updating', 'Completed']);
    // seen flashing before the restart: its Complete is this flash's end at once
    const seen: TaskProgress[] = [];
    await followHpeFlashAgain({ ...ilo([before]), get } as never, 'firmware update (bios) of BMC x', { ...fast, restartsBmc: false, started: true, before, onProgress: (p) => seen.push(p) });
    expect(seen.map((p) => p.state)).toEqual(['Completed']);
  });

  it('an iLO image back Idle after it ran is a lost task, for the FirmwareVersion to decide', async () => {
    const r = await follow([{ state: 'Updating', percent: 10 }, 'away', 'away', { state: 'Idle' }], { restartsBmc: true });
    expect(r.error).toBeInstanceOf(TaskLostError);
  });
});
