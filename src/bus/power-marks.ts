/**
 * A power step running on this instance, told to the firmware jobs of the partition's other
 * instances: a job accepted elsewhere (the lead moved during a CYCLE, or
 * METAL_BMC_COMMAND_LEADER_LEASE=0) must not begin its flash in the middle of a RESET running here,
 * and the other instance's runner knows only its own power steps. The step writes a mark in the
 * firmware claims bucket `<durable>-firmware` before it runs and deletes it
 * when it ends; a firmware job, once it holds its claim, brings its claim view up to the bucket and
 * waits (sending the BMC nothing) while a mark names its machine or BMC
 * (firmware-claim-view.ts `powerElsewhere`). The step itself brings the view up to the bucket after
 * writing its mark and looks for a claim (runner.ts firmwareJobSeenLate): of a claim and a mark
 * written at the same time, whichever came second sees the first.
 *
 * A mark's key is `power.<instance>.<machine's claim key hash>`, written again by each step of
 * that instance on that machine (its runner runs one plan per machine at a time): the keys, and
 * the delete markers each leaves in the bucket's stream, stay as many as instances times machines.
 * It names the machine and BMC by their claim keys (firmware-claims.ts claimKeys), so the view
 * matches them as it matches claims. It is not renewed: it counts `holdMs` (the longest the step
 * may run, its retries included) after the server stored it, so an instance that died mid-step
 * holds a job back that long at most. A mark that cannot be written within `writeWithinMs` (NATS
 * slow or away) lets the step run, with a warning at most once a minute: a power command does not
 * wait on NATS; its delete is not waited for either.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { endedWithin } from '../deadline.js';
import type { Logger } from '../log.js';
import { warningsEvery } from '../warnings-every.js';
import { claimKeys } from './firmware-claims.js';
import type { KvBucket } from './kv.js';

/** The value of a mark's key. */
export interface PowerMark {
  instance: string;
  /** the writing process's token: a restarted instance's marks are not taken for its own */
  token: string;
  /** the machine's claim key (`machine.<sha256>`) */
  machine: string;
  /** the BMC's claim key (`bmc.<sha256>`), empty when the event named no BMC */
  bmc: string;
  /** the event's command, shown to the job that waits */
  command: string;
  /** ms after its write the mark stops counting, when it was not deleted (its instance died mid-step) */
  holdMs: number;
}

/** the longest a mark counts, whatever its value says: an hour */
export const MAX_POWER_MARK_MS = 3600_000;

export const POWER_MARK_PREFIX = 'power';

const isString = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max;

/** The mark in a key's value, or undefined for anything else (which does not count). */
export function parsePowerMark(bytes: Uint8Array): PowerMark | undefined {
  if (bytes.length > 1024) return undefined;
  try {
    const v = JSON.parse(Buffer.from(bytes).toString('utf8')) as Partial<PowerMark>;
    const strings = isString(v.instance, 128) && isString(v.token, 128) && isString(v.machine, 128) && isString(v.bmc, 128) && isString(v.command, 64);
    const hold = typeof v.holdMs === 'number' && Number.isFinite(v.holdMs) && v.holdMs > 0;
    return strings && hold ? { ...(v as PowerMark), holdMs: Math.min(v.holdMs!, MAX_POWER_MARK_MS) } : undefined;
  } catch {
    return undefined;
  }
}

export interface PowerMarkSubject {
  machineKey: string;
  /** `host:port`, empty for none */
  bmc: string;
  command: string;
  holdMs: number;
}

export interface PowerMarks {
  /** writes the step's mark; resolves with what deletes it (never rejects), or undefined when it could not be written (warned) */
  mark(subject: PowerMarkSubject): Promise<(() => Promise<void>) | undefined>;
  /** a mark this process wrote (the view leaves them to this instance's own jobs, which know its steps) */
  isOwn(mark: PowerMark): boolean;
}

/** how long a step waits for its mark's write (the claim view's catching up has its own bound) */
const WRITE_WITHIN_MS = 2000;
const WARN_EVERY_MS = 60_000;

export function createPowerMarks(o: { kv: KvBucket; instanceId: string; logger: Logger; writeWithinMs?: number; now?: () => number }): PowerMarks {
  const token = randomBytes(8).toString('hex');
  const writeWithinMs = o.writeWithinMs ?? WRITE_WITHIN_MS;
  const now = o.now ?? (() => performance.now());
  const warnings = warningsEvery(WARN_EVERY_MS, 8, now);
  /** a burst of power steps with NATS away says each thing once a minute */
  const warn = (fields: object, msg: string) => {
    if (warnings.due(msg)) o.logger.warn(fields, `${msg} (said at most once a minute)`);
  };
  const unmark = (key: string, revision: number, command: string) =>
    void o.kv.delete(key, revision).catch((err: unknown) => warn({ err, bucket: o.kv.bucket, command }, "cannot delete a power step's mark; the other instances' firmware jobs wait for it until its hold ends"));
  return {
    async mark(s) {
      const [machine, bmc = ''] = claimKeys(s);
      const key = `${POWER_MARK_PREFIX}.${o.instanceId}.${machine!.slice(machine!.indexOf('.') + 1)}`;
      const value: PowerMark = { instance: o.instanceId, token, machine: machine!, bmc, command: s.command, holdMs: Math.min(Math.max(1, Math.round(s.holdMs)), MAX_POWER_MARK_MS) };
      const notWritten = (err: unknown) => warn({ err, bucket: o.kv.bucket, command: s.command }, "cannot tell the other instances' firmware jobs about a power step (NATS away?); the step runs");
      const written = o.kv.put(key, Buffer.from(JSON.stringify(value)));
      if (await endedWithin(written, writeWithinMs)) {
        let revision: number;
        try {
          revision = await written;
        } catch (err) {
          notWritten(err);
          return undefined;
        }
        return async () => unmark(key, revision, s.command);
      }
      warn({ bucket: o.kv.bucket, command: s.command, waitedMs: writeWithinMs }, "a power step's mark for the other instances' firmware jobs was not written in time (NATS slow?); the step runs");
      // deleted when the step has ended and the write landed, whichever comes last
      let ended = false;
      let late: number | undefined;
      void written.then((r) => {
        late = r;
        if (ended) unmark(key, r, s.command);
      }, notWritten);
      return async () => {
        ended = true;
        if (late !== undefined) unmark(key, late, s.command);
      };
    },
    isOwn: (mark) => mark.token === token && mark.instance === o.instanceId,
  };
}
