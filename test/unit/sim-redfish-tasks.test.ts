/**
 * A simulated task's effect happens no later than a client can read it ended: a client that
 * reads Completed and then looks at the machine finds the firmware recorded, even when the
 * task's timer is late (a loaded machine), and the effect happens once.
 */
import { describe, expect, it } from 'vitest';
import { TaskStore } from '../../src/sim/redfish/tasks.js';

describe('TaskStore.view', () => {
  it('a task seen ended has run its completion, once; a failed one never', () => {
    let now = 1_000;
    const store = new TaskStore(60_000, 32, () => now);
    const done: string[] = [];
    const good = store.start('BIOS firmware update', [], false, () => done.push('good'));
    const bad = store.start('BMC firmware update', [], true, () => done.push('bad'));
    expect(store.view(good).state).toBe('Running');
    expect(done).toEqual([]);
    now += 60_000; // the tasks' time is up; their timers (a minute of real time) have not fired
    expect(store.view(good).state).toBe('Completed');
    expect(store.view(bad).state).toBe('Exception');
    expect(store.view(good).state).toBe('Completed');
    expect(done).toEqual(['good']);
    store.stop();
  });
});
