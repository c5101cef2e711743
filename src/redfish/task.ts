/**
 * Following a Redfish task: a Task resource (`TaskState`, `PercentComplete`, `Messages`)
 * or a task monitor (202 while running, then the operation's final answer).
 * Transient failures while polling (a BMC rebooting into new firmware) are tolerated
 * until the overall deadline.
 */
import { BmcError } from '../errors.js';
import { checkMs, deadline, sleep } from '../deadline.js';
import { odataId } from './json.js';
import { isTask, parseTask, type TaskInfo } from './parse.js';
import type { RedfishClient, RedfishReply } from './session.js';

export interface TaskProgress {
  state: string;
  percent?: number;
  message?: string;
}

export interface WaitForTaskOptions {
  signal?: AbortSignal;
  /** Poll interval. Default 2000. */
  pollMs?: number;
  /** Overall deadline. Default one hour. */
  timeoutMs?: number;
  onProgress?: (progress: TaskProgress) => void;
}

const FAILED = new Set(['Exception', 'Killed', 'Cancelled']);

/** The task to follow after an action's answer: its Location header, else the Task in the body. */
export function taskLocation(reply: RedfishReply): string | undefined {
  return reply.headers.location ?? (isTask(reply.body) ? odataId(reply.body) : undefined);
}

function transient(err: unknown): boolean {
  if (!(err instanceof BmcError)) return false;
  if (err.code === 'TIMEOUT' || err.code === 'CLOSED') return true;
  return err.code === 'HTTP' && err.httpStatus !== undefined && err.httpStatus >= 500;
}

export async function waitForTask(
  client: Pick<RedfishClient, 'getReply'>,
  taskMonitorOrTaskUri: string,
  options: WaitForTaskOptions = {},
): Promise<TaskInfo> {
  const pollMs = checkMs('pollMs', options.pollMs, 2000, 600_000);
  const timeoutMs = checkMs('timeoutMs', options.timeoutMs, 3_600_000);
  const what = `task ${taskMonitorOrTaskUri}`;
  const dl = deadline(timeoutMs, what, options.signal);
  let last = '';
  const report = (p: TaskProgress): void => {
    const key = `${p.state}/${p.percent ?? ''}/${p.message ?? ''}`;
    if (key !== last) {
      last = key;
      options.onProgress?.(p);
    }
  };
  try {
    for (;;) {
      let reply: RedfishReply | undefined;
      try {
        reply = await client.getReply(taskMonitorOrTaskUri, { signal: dl.signal });
      } catch (err) {
        if (dl.signal.aborted || !transient(err)) throw err;
      }
      if (reply !== undefined) {
        if (!isTask(reply.body)) {
          if (reply.status !== 202) {
            report({ state: 'Completed', percent: 100 });
            return { path: taskMonitorOrTaskUri, state: 'Completed' };
          }
          report({ state: 'Running' });
        } else {
          const task = parseTask(reply.body);
          const state = task.state ?? 'Running';
          report({ state, percent: task.percent, message: task.messages?.at(-1) });
          if (state === 'Completed') return task;
          if (FAILED.has(state)) {
            const detail = task.messages?.join('; ') ?? 'no message';
            throw new BmcError('PROTOCOL', `${what} ended in ${state} (${task.status ?? 'no status'}): ${detail}`);
          }
        }
      }
      await sleep(pollMs, dl.signal, what);
    }
  } finally {
    dl.dispose();
  }
}
