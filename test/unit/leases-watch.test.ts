import { EventEmitter } from 'node:events';
import { appendFileSync, readFileSync, renameSync, rmSync, statSync, truncateSync, writeFileSync, type FSWatcher } from 'node:fs';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { KEA_HEADER, renderIscLeases, renderKeaLeases, type IscLeaseInput, type KeaLeaseInput } from '../../src/leases/render.js';
import { MARK_BYTES } from '../../src/leases/follow.js';
import { ISC_MARK_BYTES } from '../../src/leases/isc-follow.js';
import { LeaseParseError, type LeaseProblem } from '../../src/leases/types.js';
import { errorKey, LeaseFileTooLargeError, MAX_LEASE_FILE_BYTES, readIfThere, readKea, readLeasesOnce, watchLeases, type LeaseRead, type LeaseView, type LeaseWatcher, type WatchLeasesOptions } from '../../src/leases/watch.js';

const NOW = new Date('2026-01-01T00:00:00Z');
const LATER = new Date('2026-06-01T00:00:00Z');
const lease = (ip: string, mac: string, extra: Partial<IscLeaseInput> = {}): IscLeaseInput => ({ ip, mac, ends: LATER, bindingState: 'active', ...extra });
const A = lease('10.0.0.1', '00:00:00:00:00:0a');
const B = lease('10.0.0.2', '00:00:00:00:00:0b');
const C = lease('10.0.0.3', '00:00:00:00:00:0c');
const ips = (leases: readonly { ip: string }[]): string[] => leases.map((l) => l.ip);

let dir: string;
let path: string;
let watchers: LeaseWatcher[] = [];
let tmpCounter = 0;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'metal-bmc-leases-'));
  path = join(dir, 'dhcpd.leases');
});

afterEach(async () => {
  for (const w of watchers) w.close();
  watchers = [];
  await rm(dir, { recursive: true, force: true });
});

/** How dhcpd rewrites its database: a new file renamed over the old one. */
async function replaceFile(text: string): Promise<void> {
  const tmp = join(dir, `dhcpd.leases.tmp${tmpCounter++}`);
  await writeFile(tmp, text);
  await rename(tmp, path);
}

function start(options: Partial<WatchLeasesOptions> = {}) {
  const views: LeaseView[] = [];
  const errors: BmcError[] = [];
  const skipped: LeaseParseError[] = [];
  const watcher = watchLeases(path, {
    now: () => NOW,
    debounceMs: 20,
    pollMs: 60_000,
    onChange: (v) => views.push(v),
    onError: (e) => errors.push(e),
    onSkipped: (entries) => skipped.push(...entries),
    ...options,
  });
  watchers.push(watcher);
  return { watcher, views, errors, skipped };
}

const until = (cond: () => boolean, timeout = 5000): Promise<void> =>
  vi.waitFor(
    () => {
      if (!cond()) throw new Error('condition not met yet');
    },
    { timeout, interval: 10 },
  );
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A second watcher on the file, slower to react than the one under test (its debounce is longer):
 * once it has seen `expected`, the watcher under test would have seen the change too, had it still
 * been running. Replaces waiting a fixed time to see that nothing happens.
 */
function witness(debounceMs = 100): (expected: string[]) => Promise<void> {
  // fs.watch only (no poll: a poll shorter than the debounce would keep postponing the read)
  const w = start({ debounceMs });
  return (expected) => until(() => ips(w.watcher.current()).join() === expected.join());
}

describe('watchLeases', () => {
  it('reports the first view, then a rename-replace as added and removed (fs.watch alone, no poll)', async () => {
    await replaceFile(renderIscLeases([A, B]));
    const { watcher, views, errors } = start();
    await until(() => views.length === 1);
    expect(ips(views[0]?.leases ?? [])).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(ips(views[0]?.added ?? [])).toEqual(['10.0.0.1', '10.0.0.2']);

    await replaceFile(renderIscLeases([A, B, C, lease('10.0.0.1', '00:00:00:00:00:0a', { bindingState: 'free' })]));
    await until(() => views.length === 2);
    expect(views[1]).toMatchObject({ added: [{ ip: '10.0.0.3' }], removed: [{ ip: '10.0.0.1' }], changed: [] });
    expect(ips(watcher.current())).toEqual(['10.0.0.2', '10.0.0.3']);
    expect(errors).toEqual([]);
  });

  it('reports a MAC that moved to another IP as changed', async () => {
    await replaceFile(renderIscLeases([A, B]));
    const { views } = start();
    await until(() => views.length === 1);
    await replaceFile(renderIscLeases([A, B, lease('10.0.0.9', '00:00:00:00:00:0b')]));
    await until(() => views.length === 2);
    expect(views[1]).toMatchObject({ added: [], removed: [], changed: [{ ip: '10.0.0.9', mac: '00:00:00:00:00:0b' }] });
  });

  it('falls back to polling the file when fs.watch is off', async () => {
    await replaceFile(renderIscLeases([A]));
    const { views } = start({ fsWatch: false, pollMs: 40 });
    await until(() => views.length === 1);
    await replaceFile(renderIscLeases([A, C]));
    await until(() => views.length === 2);
    expect(ips(views[1]?.added ?? [])).toEqual(['10.0.0.3']);
  });

  it('a file left half-written (unchanged for a poll interval): keeps the last good view and reports the error with its line', async () => {
    const good = renderIscLeases([A, B]);
    await replaceFile(good);
    const { watcher, views, errors } = start({ pollMs: 40 });
    await until(() => views.length === 1);

    const full = renderIscLeases([A, B, C]);
    const cLine = full.split('\n').indexOf('lease 10.0.0.3 {') + 1;
    writeFileSync(path, full.slice(0, full.indexOf('binding state', full.indexOf('lease 10.0.0.3')))); // written in place, cut short, and left so
    await until(() => errors.length === 1); // no error on the read itself: dhcpd may be writing it; one at the poll that finds it unchanged
    const err = errors[0];
    expect(err).toBeInstanceOf(LeaseParseError);
    expect((err as LeaseParseError).line).toBe(cLine);
    expect(err?.message).toContain(`${path} line ${cLine}:`);
    expect(err?.message).toContain('unterminated block of lease 10.0.0.3');
    expect(ips(watcher.current())).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(views).toHaveLength(1);

    const broken = readFileSync(path, 'utf8');
    await sleep(60); // the stimulus: a later modification time, so the rewrite is a change on every file system
    const readsBefore = watcher.reads();
    writeFileSync(path, broken); // the same broken text again: a new read, the same error, reported once, not ended by that read
    await until(() => watcher.reads() > readsBefore);
    expect(errors).toHaveLength(1);
    expect(views).toHaveLength(1);

    writeFileSync(path, full); // the writer finishes
    await until(() => views.length === 2);
    expect(ips(views[1]?.added ?? [])).toEqual(['10.0.0.3']);
    expect(ips(watcher.current())).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
  });

  it('takes in dhcpd\'s appends by reading only what was appended; a rewrite renamed over the file is read whole', async () => {
    const many = Array.from({ length: 100 }, (_, i) => lease(`10.0.1.${i + 1}`, `00:00:00:00:01:${(i + 1).toString(16).padStart(2, '0')}`));
    await replaceFile(renderIscLeases(many));
    const size = () => statSync(path).size;
    const reads: LeaseRead[] = [];
    const { views, errors } = start({ onRead: (r) => reads.push(r) });
    await until(() => views.length === 1);
    expect(reads).toEqual([{ mode: 'full', bytes: size() }]);

    // dhcpd appends a renewal and a new lease
    const added = renderIscLeases([lease('10.0.1.1', '00:00:00:00:01:01', { ends: new Date('2026-07-01T00:00:00Z') }), C]).slice(renderIscLeases([]).length);
    appendFileSync(path, added);
    await until(() => views.length === 2);
    expect(views[1]).toMatchObject({ added: [{ ip: '10.0.0.3' }], removed: [], changed: [] });
    // the bytes before where the last read stopped (unchanged, or the file is read whole), the newline after it, and the new ones
    expect(reads.at(-1)).toEqual({ mode: 'tail', bytes: ISC_MARK_BYTES + 1 + Buffer.byteLength(added) });
    expect(reads.at(-1)!.bytes).toBeLessThan(size() / 2);

    // dhcpd's hourly rewrite: a new file renamed over the old one
    await replaceFile(renderIscLeases([A, B]));
    await until(() => views.length === 3);
    expect(reads.at(-1)).toEqual({ mode: 'full', bytes: size() });
    expect(ips(views[2]!.leases)).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(errors).toEqual([]);
  });

  it('a block dhcpd is still writing at the end is not an error and not logged; it is taken in once whole', async () => {
    await replaceFile(renderIscLeases([A, B]));
    const reads: LeaseRead[] = [];
    const { watcher, views, errors } = start({ onRead: (r) => reads.push(r) });
    await until(() => views.length === 1);
    const block = renderIscLeases([C]).slice(renderIscLeases([]).length);
    for (const part of [block.slice(0, block.indexOf('ends') + 8), block.slice(block.indexOf('ends') + 8, -3)]) {
      const readsBefore = watcher.reads();
      appendFileSync(path, part); // cut mid-date, then just before the block's end
      await until(() => watcher.reads() > readsBefore);
      expect(errors).toEqual([]);
      expect(views).toHaveLength(1);
      expect(reads.at(-1)?.mode).toBe('tail');
    }
    appendFileSync(path, block.slice(-3));
    await until(() => views.length === 2);
    expect(views[1]).toMatchObject({ added: [{ ip: '10.0.0.3' }] });
    expect(reads.at(-1)?.mode).toBe('tail');
    expect(errors).toEqual([]);
  });

  it("dhcpd's DHCPv6 lease file given instead of the DHCPv4 one: one error naming its first ia-na, read whole or appended to one that held only its header, not a silent empty view", async () => {
    const header = `${renderIscLeases([])}server-duid "\\000\\001\\000\\001-\\3155\\365RT";\n\n`;
    const iaNa = 'ia-na "\\001\\000\\000\\000" {\n  cltt 4 2026/01/08 14:44:02;\n  iaaddr 2001:db8::107 {\n    binding state active;\n    ends 4 2026/01/08 14:54:02;\n  }\n}\n';
    const line = header.split('\n').length;
    const message = `${path} line ${line}: an ISC dhcpd DHCPv6 lease file (dhcpd -6: an 'ia-*' declaration here and no lease declaration), not the DHCPv4 one BMCs lease from`;
    await replaceFile(header + iaNa);
    const whole = start();
    await until(() => whole.errors.length === 1);
    expect(whole.errors[0]).toMatchObject({ line, problem: 'structure', message });
    expect(whole.views).toEqual([]);
    whole.watcher.close();

    // dhcpd -6 started: its header and server-duid (as dhcpd -4 writes them), then its first lease appended
    await replaceFile(header);
    const followed = start();
    await until(() => followed.views.length === 1);
    expect(followed.views[0]?.leases).toEqual([]);
    appendFileSync(path, iaNa);
    await until(() => followed.errors.length === 1);
    expect(followed.errors[0]).toMatchObject({ line, problem: 'structure', message });
    expect(followed.views).toHaveLength(1);
  });

  it('a lease dhcpd appended that cannot be read is left out and told once through onSkipped with its line, no error; the leases after it are taken', async () => {
    await replaceFile(renderIscLeases([A, B]));
    const { watcher, views, errors, skipped } = start();
    await until(() => views.length === 1);
    const line = readFileSync(path, 'utf8').split('\n').length;
    appendFileSync(path, `lease 10.0.0.4 {\n  ends 4 2026/02/30 00:00:00;\n}\n${renderIscLeases([C]).slice(renderIscLeases([]).length)}`);
    await until(() => views.length === 2);
    expect(views[1]).toMatchObject({ added: [{ ip: '10.0.0.3' }], removed: [], changed: [] });
    expect(skipped.map((e) => e.message)).toEqual([`${path} line ${line + 1}: bad date in 'ends' statement "ends 4 2026/02/30 00:00:00"`]);
    // renewals after it: read, the entry not told again
    for (let i = 1; i <= 3; i++) {
      const reads = watcher.reads();
      appendFileSync(path, renderIscLeases([{ ...B, ends: new Date(LATER.getTime() + i * 60_000) }]).slice(renderIscLeases([]).length));
      await until(() => watcher.reads() > reads);
    }
    expect(skipped).toHaveLength(1);
    expect(errors).toEqual([]);
    expect(ips(watcher.current())).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
  });

  it('a directory watch that fails (the inotify limit: ENOSPC) is told once apart from the lease file\'s errors and tried again with growing waits; the poll reads every change, renewals call no onChange; once a watch worked, a new failure is told again', async () => {
    await replaceFile(renderIscLeases([A, B]));
    const attempts: number[] = [];
    let failing = true;
    let started: FSWatcher | undefined;
    // once the limit is raised: a watch that runs and reports nothing, so that every read after it is a poll's
    const quiet = (): FSWatcher => Object.assign(new EventEmitter(), { close: () => undefined }) as unknown as FSWatcher;
    const watchDirectory = (): FSWatcher => {
      attempts.push(Date.now());
      if (failing) throw Object.assign(new Error('ENOSPC: System limit for number of file watchers reached, watch'), { code: 'ENOSPC', syscall: 'watch' });
      started = quiet();
      return started;
    };
    const watchErrors: BmcError[] = [];
    const { watcher, views, errors } = start({ pollMs: 20, watchDirectory, onWatchError: (e) => watchErrors.push(e) });
    await until(() => views.length === 1);
    // twenty renewals of A (only its end moves: no change of the view), each read by the poll
    for (let i = 1; i <= 20; i++) {
      const reads = watcher.reads();
      appendFileSync(path, renderIscLeases([{ ...A, ends: new Date(LATER.getTime() + i * 60_000) }]).slice(renderIscLeases([]).length));
      await until(() => watcher.reads() > reads);
    }
    appendFileSync(path, renderIscLeases([C]).slice(renderIscLeases([]).length));
    await until(() => ips(watcher.current()).includes('10.0.0.3'));
    expect(errors).toEqual([]);
    expect(views).toHaveLength(2);
    expect(views[1]).toMatchObject({ added: [{ ip: '10.0.0.3' }], removed: [], changed: [] });
    expect(watchErrors).toHaveLength(1);
    expect(watchErrors[0]).toMatchObject({ code: 'CONFIG', message: expect.stringContaining(`cannot watch directory ${dir}: ENOSPC`) });
    // each wait twice the one before, from the poll interval on
    expect(attempts.length).toBeGreaterThanOrEqual(3);
    attempts.slice(1).forEach((at, i) => expect(at - attempts[i]!).toBeGreaterThanOrEqual(20 * 2 ** i));

    // the inotify limit raised: the watch starts at its next attempt (the wait so far is at most the time so far) and works: a poll after it finds it running
    failing = false;
    await until(() => started !== undefined, 60_000);
    // two renewals, each waited for in the view (not by the read count: a read asked for before the
    // watch started may still end after it): the second is read only after a poll that came after
    // the watch started, which found it running
    for (const hours of [1, 2]) {
      const ends = new Date(LATER.getTime() + hours * 3_600_000);
      appendFileSync(path, renderIscLeases([{ ...A, ends }]).slice(renderIscLeases([]).length));
      await until(() => watcher.current().some((l) => l.ip === '10.0.0.1' && l.expires !== 'never' && l.expires.getTime() === ends.getTime()));
    }
    const tried = attempts.length;
    // it fails later on (its directory went away): told again, once
    failing = true;
    started!.emit('error', Object.assign(new Error('EPERM: operation not permitted, watch'), { code: 'EPERM' }));
    await until(() => attempts.length > tried);
    expect(watchErrors).toHaveLength(2);
    expect(watchErrors[1]?.message).toContain('EPERM');
    expect(errors).toEqual([]);
    expect(views).toHaveLength(2);
  });

  it('a lease block dhcpd never closed (a full disk), with leases appended after it: left out and told once, every lease appended after it taken, no error', async () => {
    await replaceFile(renderIscLeases([A, B]));
    const { watcher, views, errors, skipped } = start({ pollMs: 40 });
    await until(() => views.length === 1);
    const line = readFileSync(path, 'utf8').split('\n').length;
    appendFileSync(path, 'lease 10.0.0.9 {\n  starts 4 2026/01/08 14:44:02;\n  ends 4 2026/0'); // the disk full
    // space freed: dhcpd appends on after what it wrote
    const more = Array.from({ length: 60 }, (_, i) => lease(`10.0.1.${i + 1}`, `00:00:00:00:01:${(i + 1).toString(16).padStart(2, '0')}`));
    for (const l of more) {
      const reads = watcher.reads();
      appendFileSync(path, renderIscLeases([l]).slice(renderIscLeases([]).length)); // right after what it wrote: `ends 4 2026/0lease 10.0.1.1 {`
      await until(() => watcher.reads() > reads);
    }
    await until(() => watcher.current().length === 62);
    expect(skipped.map((e) => e.message)).toEqual([`${path} line ${line}: lease 10.0.0.9 not closed before the lease declaration on line ${line + 2} (its writer stopped inside it)`]);
    expect(errors).toEqual([]);
  });

  it("a lease file copied over in place (a sidecar's cp), read mid-copy: no BMC drops out; left cut for good, the view becomes what it holds once cutHoldMs is over; written whole, every BMC is back", async () => {
    const eight = Array.from({ length: 8 }, (_, i) => lease(`10.0.0.${i + 1}`, `00:00:00:00:00:${(i + 1).toString(16).padStart(2, '0')}`));
    const whole = renderIscLeases(eight);
    await replaceFile(whole);
    const { watcher, views, errors } = start({ pollMs: 40, cutHoldMs: 400 });
    await until(() => views.length === 1);
    expect(views[0]?.leases).toHaveLength(8);

    // the copy truncated the file and wrote it up to inside the fifth lease
    const cut = whole.slice(0, whole.indexOf('binding', whole.indexOf('lease 10.0.0.5 ')));
    const readsBefore = watcher.reads();
    const cutAt = Date.now();
    writeFileSync(path, cut);
    await until(() => watcher.reads() > readsBefore);
    expect(views).toHaveLength(1);
    expect(watcher.current()).toHaveLength(8);

    // never finished: once the hold is over, the four complete leases are the view
    await until(() => views.length === 2);
    expect(Date.now() - cutAt).toBeGreaterThanOrEqual(400);
    expect(ips(views[1]!.removed)).toEqual(['10.0.0.5', '10.0.0.6', '10.0.0.7', '10.0.0.8']);
    expect(ips(watcher.current())).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
    expect(errors).toHaveLength(1); // the declaration left cut, reported once it stayed so for a poll interval
    expect(errors[0]).toMatchObject({ problem: 'cut-short', line: whole.split('\n').indexOf('lease 10.0.0.5 {') + 1 });

    writeFileSync(path, whole); // the next copy, whole
    await until(() => views.length === 3);
    expect(ips(views[2]!.added)).toEqual(['10.0.0.5', '10.0.0.6', '10.0.0.7', '10.0.0.8']);
  });

  it('started on a file that ends inside a declaration (dhcpd writing it): the complete leases at once, no error; the one cut short reported once it stays so for a poll interval, with its line; finished, it is taken and the error ends', async () => {
    const whole = renderIscLeases([A, B, C]);
    const cLine = whole.split('\n').indexOf('lease 10.0.0.3 {') + 1;
    const cut = whole.slice(0, whole.indexOf('ends', whole.indexOf('lease 10.0.0.3')) + 13); // `  ends 1 2026/0`
    await replaceFile(cut);
    // (a poll interval long enough that the first view is seen before it ends)
    const { watcher, views, errors } = start({ pollMs: 400 });
    await until(() => views.length === 1);
    expect(ips(views[0]!.leases)).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(errors).toEqual([]);
    await until(() => errors.length === 1);
    expect(errors[0]).toMatchObject({ line: cLine, problem: 'cut-short', message: `${path} line ${cLine}: unterminated block of lease 10.0.0.3 (end of file at line ${cLine + 1})` });
    appendFileSync(path, whole.slice(cut.length)); // dhcpd finishes it
    await until(() => views.length === 2);
    expect(views[1]).toMatchObject({ added: [{ ip: '10.0.0.3' }], removed: [] });
    expect(ips(watcher.current())).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    expect(errors).toHaveLength(1);
  });

  it('reports a missing file as BmcError CONFIG and picks the file up when it appears', async () => {
    const { views, errors } = start({ pollMs: 40 });
    await until(() => errors.length === 1);
    expect(errors[0]?.code).toBe('CONFIG');
    expect(errors[0]?.message).toContain(path);
    expect(views).toEqual([]);
    await replaceFile(renderIscLeases([B]));
    await until(() => views.length === 1);
    expect(ips(views[0]?.leases ?? [])).toEqual(['10.0.0.2']);
  });

  it('drops leases that expire while the file stands still', async () => {
    await replaceFile(renderIscLeases([A, lease('10.0.0.2', '00:00:00:00:00:0b', { ends: new Date('2026-01-01T00:10:00Z') })]));
    let now = NOW;
    const { views } = start({ now: () => now, pollMs: 40, fsWatch: false });
    await until(() => views.length === 1);
    expect(ips(views[0]?.leases ?? [])).toEqual(['10.0.0.1', '10.0.0.2']);
    now = new Date('2026-01-01T00:10:01Z');
    await until(() => views.length === 2);
    expect(views[1]).toMatchObject({ added: [], removed: [{ ip: '10.0.0.2' }], changed: [] });
  });

  it('debounces a burst of writes into one read', async () => {
    await replaceFile(renderIscLeases([A]));
    const { watcher, views } = start({ debounceMs: 400 });
    await until(() => views.length === 1);
    for (const extra of [[B], [B, C], [C]]) {
      writeFileSync(path, renderIscLeases([A, ...extra]));
      await sleep(40); // the stimulus: each write within the quiet time (400 ms) of the previous one
    }
    await until(() => views.length === 2);
    // the last write is what the watcher holds: had it read in between, [A B] and [A B C] would be views too
    await until(() => ips(watcher.current()).join() === '10.0.0.1,10.0.0.3');
    expect(views).toHaveLength(2);
    expect(views[1]).toMatchObject({ added: [{ ip: '10.0.0.3' }], removed: [] });
  });

  it('reads a file that keeps changing no later than maxWaitMs after the first change, not only once the changes stop', async () => {
    await replaceFile(renderIscLeases([A]));
    const { views } = start({ debounceMs: 300, maxWaitMs: 600 });
    await until(() => views.length === 1);
    // the stimulus: a server appending every 50 ms (each write within the quiet time of the last) until the watcher reads
    let writes = 0;
    const writer = setInterval(() => {
      writes++;
      writeFileSync(path, renderIscLeases([A, ...(writes % 2 === 1 ? [B] : [B, C])]));
    }, 50);
    try {
      await until(() => views.length === 2 || writes >= 200, 15_000);
    } finally {
      clearInterval(writer);
    }
    // without the bound the burst of 10 s would hold the read back until it ends
    expect(views).toHaveLength(2);
    expect(writes).toBeLessThan(200);
  });

  it('follows a Kea CSV with the format detected', async () => {
    const kea = (ip: string, mac: string) => ({ ip, mac, validLifetime: 3600, expire: LATER, state: 0 });
    await replaceFile(renderKeaLeases([kea('10.2.0.1', '00:00:00:00:00:01')]));
    const { views } = start();
    await until(() => views.length === 1);
    await replaceFile(renderKeaLeases([kea('10.2.0.1', '00:00:00:00:00:01'), { ...kea('10.2.0.1', '00:00:00:00:00:01'), validLifetime: 0 }]));
    await until(() => views.length === 2);
    expect(ips(views[1]?.removed ?? [])).toEqual(['10.2.0.1']);
  });

  it('a Kea row left cut short (short of fields, no newline; unchanged for a poll interval): keeps the last good view and reports it with its line, once; Kea finishing it ends the error', async () => {
    const kea = (ip: string, mac: string) => ({ ip, mac, validLifetime: 3600, expire: LATER, state: 0 });
    await replaceFile(renderKeaLeases([kea('10.2.0.1', '00:00:00:00:00:01')]));
    const reads: LeaseRead[] = [];
    const { watcher, views, errors } = start({ pollMs: 40, onRead: (r) => reads.push(r) });
    await until(() => views.length === 1);

    const row = renderKeaLeases([kea('10.2.0.2', '00:00:00:00:00:02')]).slice(KEA_HEADER.length + 1);
    appendFileSync(path, row.slice(0, 30)); // Kea stopped mid-row
    await until(() => errors.length === 1); // no error on the read itself: Kea may be writing it; one at the poll that finds it unchanged
    const err = errors[0];
    expect(err).toBeInstanceOf(LeaseParseError);
    expect((err as LeaseParseError).line).toBe(3);
    expect(err?.message).toBe(`${path} line 3: unterminated row (4 of the header's 12 fields, no newline at the end of the file): ${JSON.stringify(row.slice(0, 30))}`);
    expect(ips(watcher.current())).toEqual(['10.2.0.1']);
    expect(views).toHaveLength(1);
    expect(reads.at(-1)?.mode).toBe('tail');

    appendFileSync(path, row.slice(30)); // the writer finishes the row
    await until(() => views.length === 2);
    expect(views[1]).toMatchObject({ added: [{ ip: '10.2.0.2' }], removed: [], changed: [] });
    expect(reads.at(-1)?.mode).toBe('tail');
    expect(errors).toHaveLength(1);

    // a later row cut short is reported in turn
    appendFileSync(path, row.replace('10.2.0.2', '10.2.0.3').slice(0, 30));
    await until(() => errors.length === 2);
    expect((errors[1] as LeaseParseError).line).toBe(4);
  });

  it('keeps every Kea lease through a lease file cleanup (kea-lfc), as Kea loads its files', async () => {
    const kea = (ip: string, mac: string) => ({ ip, mac, validLifetime: 3600, expire: LATER, state: 0 });
    const [k1, k2, k3, k4] = [kea('10.2.0.1', '00:00:00:00:00:01'), kea('10.2.0.2', '00:00:00:00:00:02'), kea('10.2.0.3', '00:00:00:00:00:03'), kea('10.2.0.4', '00:00:00:00:00:04')];
    await replaceFile(renderKeaLeases([k1, k2]));
    const { watcher, views, errors } = start();
    await until(() => views.length === 1);
    // the cleanup starts: Kea moves its lease file to .1 (kea-lfc's copy) and starts a new one with
    // the header only (Memfile_LeaseMgr::lfcExecute), then appends a renewal of k3 to it
    let reads = watcher.reads();
    await rename(path, `${path}.1`);
    await writeFile(path, `${KEA_HEADER}\n`);
    await until(() => watcher.reads() > reads);
    await writeFile(path, renderKeaLeases([k3]));
    await until(() => ips(watcher.current()).length === 3);
    expect(ips(watcher.current())).toEqual(['10.2.0.1', '10.2.0.2', '10.2.0.3']);
    // kea-lfc writes the merge as .completed, removes .2 (none yet) and .1, renames .completed to .2
    // (LFCController::fileRotate)
    reads = watcher.reads();
    await writeFile(`${path}.completed`, renderKeaLeases([k1, k2]));
    await rm(`${path}.2`, { force: true });
    await rm(`${path}.1`);
    await rename(`${path}.completed`, `${path}.2`);
    await until(() => watcher.reads() > reads);
    await writeFile(path, renderKeaLeases([k3, k4]));
    await until(() => ips(watcher.current()).length === 4);
    // no lease was ever reported as gone, nothing was an error
    expect(views.flatMap((v) => v.removed)).toEqual([]);
    expect(errors).toEqual([]);
    // .completed alone stands for .1 and .2 while it exists: a stale .1 does not count beside it
    await writeFile(`${path}.1`, renderKeaLeases([kea('10.2.0.9', '00:00:00:00:00:09')]));
    await writeFile(`${path}.completed`, renderKeaLeases([k1, k2]));
    expect(ips(await readLeasesOnce(path, { now: NOW }))).toEqual(['10.2.0.1', '10.2.0.2', '10.2.0.3', '10.2.0.4']);
  });

  it('takes in Kea\'s appended rows by reading only them; each step of a kea-lfc cycle is a full read, no lease lost, and the new lease file is followed after it', async () => {
    const kea = (i: number): KeaLeaseInput => ({ ip: `10.2.1.${i}`, mac: `00:00:00:00:02:${i.toString(16).padStart(2, '0')}`, validLifetime: 3600, expire: LATER, state: 0 });
    const keaRow = (i: number): string => renderKeaLeases([kea(i)]).slice(KEA_HEADER.length + 1);
    const many = Array.from({ length: 200 }, (_, i) => kea(i + 1));
    await replaceFile(renderKeaLeases(many));
    const size = () => statSync(path).size;
    const reads: LeaseRead[] = [];
    const { watcher, views, errors } = start({ onRead: (r) => reads.push(r) });
    await until(() => views.length === 1);
    expect(reads).toEqual([{ mode: 'full', bytes: size() }]);

    // Kea appends a row: the header, the bytes before where the last read stopped and the row are read
    appendFileSync(path, keaRow(201));
    await until(() => watcher.current().length === 201);
    expect(reads.at(-1)).toEqual({ mode: 'tail', bytes: KEA_HEADER.length + 1 + MARK_BYTES + Buffer.byteLength(keaRow(201)) });
    expect(reads.at(-1)!.bytes).toBeLessThan(size() / 2);

    // the cleanup starts: Kea moves its lease file to .1 and starts a new one with the header (in one
    // go here, so that no read falls between them: the read after them sees both)
    let n = reads.length;
    renameSync(path, `${path}.1`);
    writeFileSync(path, `${KEA_HEADER}\n`);
    await until(() => reads.length > n);
    expect(reads[n]).toEqual({ mode: 'full', bytes: KEA_HEADER.length + 1 });
    expect(watcher.current()).toHaveLength(201);
    // Kea appends to its new file: followed again, while .1 stays as it is
    appendFileSync(path, keaRow(202));
    await until(() => watcher.current().length === 202);
    expect(reads.at(-1)).toEqual({ mode: 'tail', bytes: KEA_HEADER.length + 1 + Buffer.byteLength(keaRow(202)) });

    // kea-lfc merges .2 (none) and .1 into .completed, removes .1 and renames .completed to .2
    n = reads.length;
    writeFileSync(`${path}.completed`, renderKeaLeases([...many, kea(201)]));
    rmSync(`${path}.1`);
    renameSync(`${path}.completed`, `${path}.2`);
    await until(() => reads.length > n);
    expect(reads[n]?.mode).toBe('full');
    expect(watcher.current()).toHaveLength(202);
    appendFileSync(path, keaRow(203));
    await until(() => watcher.current().length === 203);
    expect(reads.at(-1)?.mode).toBe('tail');
    expect(ips(watcher.current())).toEqual(Array.from({ length: 203 }, (_, i) => `10.2.1.${i + 1}`));
    expect(views.flatMap((v) => v.removed)).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('an address moved to another MAC since the last cleanup: the copy (.1) wins over the last cleanup\'s result (.2), as Kea loads them', async () => {
    const moved = (mac: string) => ({ ip: '10.2.0.5', mac, validLifetime: 3600, expire: LATER, state: 0 });
    await writeFile(`${path}.2`, renderKeaLeases([moved('00:00:00:00:00:0a')]));
    await writeFile(`${path}.1`, renderKeaLeases([moved('00:00:00:00:00:0b')]));
    await writeFile(path, `${KEA_HEADER}\n`);
    const parsed = await readKea(path, readFileSync(path, 'utf8'));
    expect(parsed.leases.at(-1)).toMatchObject({ ip: '10.2.0.5', mac: '00:00:00:00:00:0b' });
    expect((await readLeasesOnce(path, { now: NOW })).map((l) => l.mac)).toEqual(['00:00:00:00:00:0b']);
  });

  it('a row of a Kea cleanup file that cannot be read is told naming that file and its line, not the lease file; the other rows read', async () => {
    const kea = (ip: string, mac: string) => ({ ip, mac, validLifetime: 3600, expire: LATER, state: 0 });
    await writeFile(`${path}.1`, `${renderKeaLeases([kea('10.2.0.1', '00:00:00:00:00:01')])}10.2.0.2,00:00:00:00:00:02,,3600,bad,1,0,0,,0,,\n`);
    await writeFile(path, renderKeaLeases([kea('10.2.0.3', '00:00:00:00:00:03')]));
    const { views, errors, skipped } = start();
    await until(() => views.length === 1);
    expect(ips(views[0]!.leases)).toEqual(['10.2.0.1', '10.2.0.3']);
    expect(skipped.map((e) => e.message)).toEqual([`${path}.1 line 3: invalid expire "bad"`]);
    expect(errors).toEqual([]);
  });

  it('a Kea row cut short by a power loss and merged with the next row Kea appends is left out and told once; every other row is read, no error', async () => {
    const kea = (i: number): KeaLeaseInput => ({ ip: `10.2.0.${i}`, mac: `00:00:00:00:00:0${i}`, validLifetime: 3600, expire: LATER, state: 0 });
    const keaRow = (i: number): string => renderKeaLeases([kea(i)]).slice(KEA_HEADER.length + 1);
    await replaceFile(renderKeaLeases([kea(1)]));
    const { watcher, views, errors, skipped } = start();
    await until(() => views.length === 1);
    // the power went out while Kea wrote row 2; restarted, Kea appends rows 3 and 4 after what was written
    appendFileSync(path, keaRow(2).slice(0, 20));
    appendFileSync(path, keaRow(3) + keaRow(4));
    await until(() => ips(watcher.current()).includes('10.2.0.4'));
    expect(ips(watcher.current())).toEqual(['10.2.0.1', '10.2.0.4']);
    expect(skipped.map((e) => e.line)).toEqual([3]);
    expect(skipped[0]?.message).toMatch(/line 3: invalid hwaddr/);
    // Kea goes on appending: read, the merged row not told again
    const reads = watcher.reads();
    appendFileSync(path, keaRow(5));
    await until(() => watcher.reads() > reads && ips(watcher.current()).includes('10.2.0.5'));
    expect(skipped).toHaveLength(1);
    expect(errors).toEqual([]);
  });

  it.each(['', 'address,hw', '  \n'.slice(0, 2)])('auto format, Kea\'s new lease file without a whole header yet (%j) beside its cleanup files: read as Kea, its leases kept; without cleanup files an empty file is ISC with none', async (partial) => {
    const k1 = { ip: '10.2.0.1', mac: '00:00:00:00:00:01', validLifetime: 3600, expire: LATER, state: 0 };
    await writeFile(`${path}.2`, renderKeaLeases([k1]));
    await writeFile(path, partial);
    expect(ips(await readLeasesOnce(path, { now: NOW }))).toEqual(['10.2.0.1']);
    await rm(`${path}.2`);
    await writeFile(path, '');
    expect(await readLeasesOnce(path, { now: NOW })).toEqual([]);
  });

  it('kea-lfc ending between the reads of .2 and .1 (both removed, .completed not yet .2): its files are read again, no lease missing', async () => {
    const kea = (ip: string, mac: string) => ({ ip, mac, validLifetime: 3600, expire: LATER, state: 0 });
    const [k1, k2, k3] = [kea('10.2.0.1', '00:00:00:00:00:01'), kea('10.2.0.2', '00:00:00:00:00:02'), kea('10.2.0.3', '00:00:00:00:00:03')];
    await writeFile(`${path}.1`, renderKeaLeases([k1]));
    await writeFile(`${path}.2`, renderKeaLeases([k2]));
    await writeFile(path, renderKeaLeases([k3]));
    let step = 0;
    // the file reads as the daemon does them, with kea-lfc's last steps in between on the first pass
    const reader = async (file: string) => {
      const text = await readIfThere(file);
      if (file.endsWith('.2') && step === 0) {
        step = 1; // .2 read: kea-lfc writes its merge and removes .2 and .1
        await writeFile(`${path}.completed`, renderKeaLeases([k1, k2]));
        await rm(`${path}.2`);
        await rm(`${path}.1`);
      } else if (file.endsWith('.1') && step === 1) {
        step = 2; // .1 read (gone): the merge becomes .2
        await rename(`${path}.completed`, `${path}.2`);
      }
      return text;
    };
    const parsed = await readKea(path, readFileSync(path, 'utf8'), reader);
    expect(step).toBe(2);
    expect(parsed.leases.map((l) => l.ip).sort()).toEqual(['10.2.0.1', '10.2.0.2', '10.2.0.3']);
    // the lease file gone for the moment of the read again (Kea between its rename and its new
    // file): the read made stands, no error
    step = 0;
    await writeFile(`${path}.1`, renderKeaLeases([k1]));
    await writeFile(`${path}.2`, renderKeaLeases([k2]));
    const gone = async () => {
      throw Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });
    };
    const first = await readKea(path, readFileSync(path, 'utf8'), reader, gone);
    expect(first.leases.map((l) => l.ip).sort()).toEqual(['10.2.0.2', '10.2.0.3']);
  });

  it('a lease file beyond the size bound is told once while it stays so, however it grows; back under, its end is told once and the file read; beyond again, told again', async () => {
    await replaceFile(renderIscLeases([A, B]));
    const recovered: BmcError[] = [];
    const { watcher, views, errors } = start({ onRecovered: (err) => recovered.push(err) });
    await until(() => views.length === 1);
    // a file growing without cleanup, each change read (sparse: the size counts, nothing is written to disk)
    for (let grown = 1; grown <= 4; grown++) {
      const readsBefore = watcher.reads();
      truncateSync(path, MAX_LEASE_FILE_BYTES + grown);
      await until(() => watcher.reads() > readsBefore);
    }
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'CONFIG', file: path, message: `lease file ${path} holds ${MAX_LEASE_FILE_BYTES + 1} bytes, more than the ${MAX_LEASE_FILE_BYTES} a lease file may hold; not read (does its DHCP server clean it up?)` });
    expect(recovered).toEqual([]);
    expect(ips(watcher.current())).toEqual(['10.0.0.1', '10.0.0.2']);

    await replaceFile(renderIscLeases([A, B, C])); // cleaned up
    await until(() => views.length === 2);
    expect(recovered).toEqual([errors[0]]);
    expect(ips(watcher.current())).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    const readsBefore = watcher.reads();
    appendFileSync(path, renderIscLeases([C]).slice(renderIscLeases([]).length));
    await until(() => watcher.reads() > readsBefore);
    expect(recovered).toHaveLength(1);

    truncateSync(path, MAX_LEASE_FILE_BYTES + 1);
    await until(() => errors.length === 2);
    expect(errors[1]).toMatchObject({ code: 'CONFIG', file: path });
    expect(recovered).toHaveLength(1);
  });

  it('the first good read after an error is told even when the leases did not change (a readiness problem it set ends with it)', async () => {
    await replaceFile('');
    const { views, errors } = start();
    await until(() => views.length === 1);
    expect(views[0]!.leases).toEqual([]);
    await replaceFile('lease 10.0.0.1 {\n  ends never;\n}\n}\n');
    await until(() => errors.length === 1);
    await replaceFile('');
    await until(() => views.length === 2);
    expect(views[1]).toMatchObject({ leases: [], added: [], removed: [], changed: [] });
  });

  it('applies the CIDR and ignored-MAC filters', async () => {
    await replaceFile(renderIscLeases([A, B, lease('192.168.0.1', '00:00:00:00:00:0d')]));
    const { views } = start({ allowedCidrs: [{ network: 0x0a000000, prefix: 8, mask: 0xff000000, text: '10.0.0.0/8' }], ignoreMacs: ['00-00-00-00-00-0A'] });
    await until(() => views.length === 1);
    expect(ips(views[0]?.leases ?? [])).toEqual(['10.0.0.2']);
  });

  it('stops on close(): later replacements are not read', async () => {
    await replaceFile(renderIscLeases([A]));
    const { watcher, views, errors } = start({ pollMs: 30 });
    await until(() => views.length === 1);
    watcher.close();
    watcher.close(); // idempotent
    const seen = witness();
    await replaceFile(renderIscLeases([A, B]));
    await seen(['10.0.0.1', '10.0.0.2']);
    expect(views).toHaveLength(1);
    expect(errors).toEqual([]);
    expect(ips(watcher.current())).toEqual(['10.0.0.1']);
  });

  it('stops when its AbortSignal fires, and never starts on an aborted one', async () => {
    await replaceFile(renderIscLeases([A]));
    const controller = new AbortController();
    const { views } = start({ pollMs: 30, signal: controller.signal });
    await until(() => views.length === 1);
    controller.abort();
    const seen = witness();
    await replaceFile(renderIscLeases([A, B]));
    await seen(['10.0.0.1', '10.0.0.2']);
    expect(views).toHaveLength(1);

    const dead = start({ pollMs: 30, signal: AbortSignal.abort() });
    // a watcher started after it has read the file: the dead one would have read it by now too
    await witness()(['10.0.0.1', '10.0.0.2']);
    expect(dead.views).toEqual([]);
    expect(dead.watcher.current()).toEqual([]);
  });

  it('survives an onChange that throws, reporting it', async () => {
    await replaceFile(renderIscLeases([A]));
    const errors: BmcError[] = [];
    let calls = 0;
    const watcher = watchLeases(path, {
      debounceMs: 20,
      now: () => NOW,
      onChange: () => {
        calls++;
        throw new Error('consumer bug');
      },
      onError: (e) => errors.push(e),
    });
    watchers.push(watcher);
    await until(() => errors.length === 1);
    expect(errors[0]?.message).toContain('consumer bug');
    await replaceFile(renderIscLeases([A, B]));
    await until(() => calls === 2);
    expect(ips(watcher.current())).toEqual(['10.0.0.1', '10.0.0.2']);
  });

  it('checks its options when created', () => {
    const onChange = (): void => undefined;
    for (const options of [{ debounceMs: -1 }, { pollMs: 0 }, { pollMs: 1.5 }, { ignoreMacs: ['nope'] }]) {
      expect(() => watchLeases(path, { onChange, ...options })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
  });
});

describe('errorKey', () => {
  it('tells lease file errors apart by file, line and kind, not by their text (which may name where the file ends now), a file too large by the file; any other error by its text', () => {
    const cut = (line: number, end: number, source = '/leases', problem: LeaseProblem = 'cut-short') => new LeaseParseError(line, `unterminated block of lease 10.0.0.2 (end of file at line ${end})`, { source, problem });
    expect(errorKey(cut(12, 20))).toBe(errorKey(cut(12, 31)));
    for (const other of [cut(13, 20), cut(12, 20, '/leases.1'), cut(12, 20, '/leases', 'structure')]) expect(errorKey(other)).not.toBe(errorKey(cut(12, 20)));
    expect(errorKey(new BmcError('CONFIG', 'cannot read lease file /leases: EACCES'))).not.toBe(errorKey(new BmcError('CONFIG', 'cannot read lease file /leases: ENOENT')));
    // a file too large by the file alone: its text names its size, which grows with every write
    expect(errorKey(new LeaseFileTooLargeError('/leases', MAX_LEASE_FILE_BYTES + 1))).toBe(errorKey(new LeaseFileTooLargeError('/leases', MAX_LEASE_FILE_BYTES + 4096)));
    expect(errorKey(new LeaseFileTooLargeError('/leases', MAX_LEASE_FILE_BYTES + 1))).not.toBe(errorKey(new LeaseFileTooLargeError('/leases.1', MAX_LEASE_FILE_BYTES + 1)));
  });
});

describe('readLeasesOnce', () => {
  it('reads, parses and selects', async () => {
    await replaceFile(renderIscLeases([A, B, lease('10.0.0.1', '00:00:00:00:00:0a', { bindingState: 'free' })]));
    expect(await readLeasesOnce(path, { now: NOW })).toEqual([{ ip: '10.0.0.2', mac: '00:00:00:00:00:0b', expires: LATER }]);
    expect(await readLeasesOnce(path, { now: NOW, format: 'isc', ignoreMacs: ['00:00:00:00:00:0b'] })).toEqual([]);
  });

  it('throws LeaseParseError naming the file and line, or BmcError CONFIG for a missing file', async () => {
    await replaceFile('lease 10.0.0.1 {\n  ends 4 2026/02/30 00:00:00;\n}\n}\n');
    await expect(readLeasesOnce(path)).rejects.toThrow(`${path} line 4: unexpected '}'`);
    await expect(readLeasesOnce(path)).rejects.toBeInstanceOf(LeaseParseError);
    await expect(readLeasesOnce(join(dir, 'absent'))).rejects.toMatchObject({ code: 'CONFIG' });
  });

  it('refuses a lease file larger than any partition writes before reading it (a Kea cleanup file too); the next one that fits is read', async () => {
    // sparse: the size counts, nothing is written to disk
    await replaceFile('');
    truncateSync(path, MAX_LEASE_FILE_BYTES + 1);
    await expect(readLeasesOnce(path)).rejects.toMatchObject({ code: 'CONFIG', message: `lease file ${path} holds ${MAX_LEASE_FILE_BYTES + 1} bytes, more than the ${MAX_LEASE_FILE_BYTES} a lease file may hold; not read (does its DHCP server clean it up?)` });
    await replaceFile(renderKeaLeases([]));
    writeFileSync(`${path}.1`, '');
    truncateSync(`${path}.1`, MAX_LEASE_FILE_BYTES + 1);
    await expect(readLeasesOnce(path, { format: 'kea' })).rejects.toThrow(`lease file ${path}.1 holds`);
    await rm(`${path}.1`);
    await replaceFile(renderIscLeases([A, B]));
    expect(await readLeasesOnce(path, { now: NOW })).toHaveLength(2);
  });
});
