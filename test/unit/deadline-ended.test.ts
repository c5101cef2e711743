/** endedWithin (deadline.ts): a bounded wait that tells whether the work ended in time, and throws nothing of it. */
import { describe, expect, it } from 'vitest';
import { endedWithin } from '../../src/deadline.js';

describe('endedWithin', () => {
  it('true for work that ends in time, fulfilled or rejected (its error is not thrown here)', async () => {
    await expect(endedWithin(Promise.resolve(1), 1000)).resolves.toBe(true);
    await expect(endedWithin(Promise.reject(new Error('closing failed')), 1000)).resolves.toBe(true);
  });

  it('false once the time runs out, and a later rejection of the work is not an unhandled one', async () => {
    let fail!: (err: Error) => void;
    const work = new Promise<void>((_, reject) => (fail = reject));
    await expect(endedWithin(work, 20)).resolves.toBe(false);
    fail(new Error('late'));
    // vitest fails the run on an unhandled rejection; this turn lets one surface
    await new Promise((resolve) => setImmediate(resolve));
  });

  it('does not wait out its time once the work ended', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    await endedWithin(Promise.resolve(), 60_000);
    // a timer left running would hold the process (a CLI's exit) for its minute: it is cleared
    expect(timers()).toBe(before);
  });
});
