/**
 * What a firmware job holds its machine on at its deadline (commands/firmware-jobs.ts): a task
 * progress that waitForTask would go on polling (redfish/task.ts taskStillRuns), and a task the BMC
 * ended in failure, told apart from a BMC that could not be read (TaskFailedError).
 */
import { describe, expect, it } from 'vitest';
import { isBmcError } from '../../src/errors.js';
import { STAGED_STATE, TaskFailedError, taskStillRuns, waitForTask } from '../../src/redfish/task.js';

const TASK = '/redfish/v1/TaskService/Tasks/1';

describe('taskStillRuns', () => {
  it('is true for the states waitForTask polls on, false for those that end it', () => {
    for (const state of ['New', 'Starting', 'Running', 'Pending', 'Suspended', 'Service', 'Stopping', 'Cancelling', 'Interrupted']) expect(taskStillRuns({ state, percent: 40 }), state).toBe(true);
    for (const state of ['Completed', 'Exception', 'Killed', 'Cancelled', 'Failed', 'Scheduled', STAGED_STATE]) expect(taskStillRuns({ state }), state).toBe(false);
    // iDRAC's UserIntervention ends the wait at 100 % only (staged), below it is still working
    expect(taskStillRuns({ state: 'UserIntervention', percent: 100 })).toBe(false);
    expect(taskStillRuns({ state: 'UserIntervention', percent: 60 })).toBe(true);
  });
});

describe('a task the BMC ended in failure', () => {
  it('is a TaskFailedError, code PROTOCOL as before, with the BMC\'s state and messages', async () => {
    const task = { '@odata.type': '#Task.v1_4_3.Task', '@odata.id': TASK, TaskState: 'Exception', TaskStatus: 'Critical', Messages: [{ Message: 'flash failed' }] };
    const client = { getReply: async () => ({ status: 200, headers: {}, body: task }) };
    const err = await waitForTask(client as unknown as Parameters<typeof waitForTask>[0], TASK).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TaskFailedError);
    expect(isBmcError(err, 'PROTOCOL')).toBe(true);
    expect((err as Error).message).toBe(`task ${TASK} ended in Exception (Critical): flash failed`);
  });
});
