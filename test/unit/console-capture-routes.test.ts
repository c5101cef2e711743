/**
 * The history route's wait for a slow client (capture-routes.ts): a response that never takes
 * more than one event at a time must not collect a listener per wait.
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { captureViewerRoutes, drainedOrClosed } from '../../src/console/capture-routes.js';
import { openMachineLog } from '../../src/console/capture-store.js';
import { captureLog } from '../helpers/log.js';

const MACHINE = 'slow-follower-machine';

/** A response whose buffer is always full: every write returns false and 'drain' comes on the next turn. */
class BackpressuredResponse extends EventEmitter {
  headersSent = false;
  writes = 0;
  /** the most 'close' listeners seen while a write was waiting */
  mostCloseListeners = 0;
  readonly ended: Promise<void>;
  private markEnded!: () => void;

  constructor() {
    super();
    this.ended = new Promise((resolve) => (this.markEnded = resolve));
  }

  writeHead(): this {
    this.headersSent = true;
    return this;
  }

  write(): boolean {
    this.writes += 1;
    setImmediate(() => {
      this.mostCloseListeners = Math.max(this.mostCloseListeners, this.listenerCount('close'));
      this.emit('drain');
    });
    return false;
  }

  end(): this {
    this.markEnded();
    return this;
  }

  destroy(): this {
    this.markEnded();
    return this;
  }
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'capture-routes-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('console history route under backpressure', () => {
  it('streams 120 events to a client that drains after each one, with at most two close listeners at any time', async () => {
    const log = await openMachineLog({ dir, machineId: MACHINE, fileBytes: 1 << 20, files: 2, logger: captureLog().logger });
    for (let i = 0; i < 60; i++) {
      log.gapStart(`outage ${i}`);
      log.gapEnd();
    }
    await log.close();

    const res = new BackpressuredResponse();
    const req = { method: 'GET', url: `/v1/machine/${MACHINE}/console/log` } as IncomingMessage;
    captureViewerRoutes({ dir }).handle(req, res as unknown as ServerResponse, { subject: 'CN=test', mayOpen: () => true });
    await res.ended;
    expect(res.writes).toBe(120);
    // the route's own 'gone' listener plus the one of the wait in progress
    expect(res.mostCloseListeners).toBeGreaterThan(0);
    expect(res.mostCloseListeners).toBeLessThanOrEqual(2);
    expect(res.listenerCount('drain')).toBe(0);
  });
});

describe('drainedOrClosed', () => {
  it('leaves no listener behind after 100 drains', async () => {
    const res = new EventEmitter();
    for (let i = 0; i < 100; i++) {
      const waited = drainedOrClosed(res);
      res.emit('drain');
      await waited;
    }
    expect(res.listenerCount('close')).toBe(0);
    expect(res.listenerCount('drain')).toBe(0);
  });

  it('ends the wait when the client goes, without a drain listener left', async () => {
    const res = new EventEmitter();
    const waited = drainedOrClosed(res);
    res.emit('close');
    await waited;
    expect(res.listenerCount('drain')).toBe(0);
    expect(res.listenerCount('close')).toBe(0);
  });
});
