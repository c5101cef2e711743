/**
 * The capture opens at most `maxOpening` consoles at once (capture.ts): the others wait their
 * turn and are all held in the end; a machine let go while it waits is never opened. The hub and
 * the capture are the real ones; the BMC side is a stream the test opens when it chooses, so the
 * number of opens in flight can be seen.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Duplex } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { createConsoleCapture, type ConsoleCapture } from '../../src/console/capture.js';
import { createConsoleHub, type ConsoleHub } from '../../src/console/hub.js';
import { captureLog } from '../helpers/log.js';
import { waitFor } from '../helpers/wait.js';

interface Opening {
  id: string;
  finish(): void;
}

let dir: string;
let hub: ConsoleHub;
let capture: ConsoleCapture | undefined;
let pending: Opening[];
let opened: string[];
let peak: number;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'capture-opening-'));
  pending = [];
  opened = [];
  peak = 0;
  const { logger } = captureLog('warn');
  hub = createConsoleHub({
    logger,
    openBackend: (id) =>
      new Promise<Duplex>((resolve) => {
        pending.push({
          id,
          finish: () => {
            opened.push(id);
            resolve(new PassThrough());
          },
        });
        peak = Math.max(peak, pending.length);
      }),
  });
});

afterEach(async () => {
  await capture?.close();
  await hub.close();
  rmSync(dir, { recursive: true, force: true });
});

/** opens the oldest console waiting at the BMC side */
function finishOne(): void {
  const next = pending.shift();
  if (!next) throw new Error('nothing is being opened');
  next.finish();
}

describe('console capture: consoles opened at once', () => {
  it('opens at most maxOpening at once and holds every machine in the end', async () => {
    const { logger } = captureLog('warn');
    const c = (capture = createConsoleCapture({ hub, dir, fileBytes: 1 << 20, files: 2, logger, maxOpening: 2 }));
    const ids = Array.from({ length: 7 }, (_, i) => `m${i}`);
    c.setMachines(ids);
    await waitFor(() => pending.length === 2, 5000, 'the first two opens');
    while (opened.length < ids.length) {
      await waitFor(() => pending.length > 0, 5000, 'the next open');
      expect(pending.length).toBeLessThanOrEqual(2);
      finishOne();
    }
    await waitFor(() => c.held() === ids.length, 5000, 'every machine held');
    expect(peak).toBe(2);
    expect(opened.sort()).toEqual(ids.sort());
  });

  it('never opens a machine let go while it waited for its turn', async () => {
    const { logger } = captureLog('warn');
    const c = (capture = createConsoleCapture({ hub, dir, fileBytes: 1 << 20, files: 2, logger, maxOpening: 1 }));
    c.setMachines(['a', 'b', 'c']);
    await waitFor(() => pending.length === 1, 5000, 'the first open');
    c.setMachines(['a', 'c']);
    finishOne();
    await waitFor(() => pending.length === 1, 5000, 'the next open');
    finishOne();
    await waitFor(() => c.held() === 2, 5000, 'a and c held');
    expect(opened).toEqual(['a', 'c']);
  });

  it('refuses a maxOpening that is not a positive integer', () => {
    const { logger } = captureLog('warn');
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      expect(() => createConsoleCapture({ hub, dir, fileBytes: 1 << 20, files: 2, logger, maxOpening: bad })).toThrow(BmcError);
    }
  });
});
