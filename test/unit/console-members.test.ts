/**
 * The clients of a console session, without sockets: keyboard hand-over, slow clients dropped,
 * everyone ended together, and a session held elsewhere (a relayed console) merged into what the
 * clients are shown.
 */
import { describe, expect, it } from 'vitest';
import { createMembers, type MembersOptions } from '../../src/console/members.js';
import { createTakeoverBudget } from '../../src/console/takeover-budget.js';
import type { ClientPort, ConsoleNotice, EndReason, HubEvent } from '../../src/console/types.js';
import { captureLog } from '../helpers/log.js';

interface FakePort extends ClientPort {
  output: string[];
  notices: ConsoleNotice[];
  ended: EndReason[];
  full: boolean;
}

function fakePort(subject: string, onEnd?: () => void, remote = '127.0.0.1:1'): FakePort {
  const port: FakePort = {
    identity: { subject, remote, transport: 'ws' },
    output: [],
    notices: [],
    ended: [],
    full: false,
    send(data) {
      port.output.push(data.toString());
      return !port.full;
    },
    notify: (n) => void port.notices.push(n),
    end(reason) {
      port.ended.push(reason);
      onEnd?.();
    },
  };
  return port;
}

function setup(over: Partial<MembersOptions> = {}) {
  const events: HubEvent[] = [];
  let empty = 0;
  const budget = createTakeoverBudget();
  const members = createMembers({
    machineId: 'm1',
    log: captureLog().logger,
    maxClientQueueBytes: 10,
    takeovers: (identity) => budget('m1', identity),
    onEvent: (e) => void events.push(e),
    state: () => 'open',
    onEmpty: () => void empty++,
    ...over,
  });
  return { members, events, empties: () => empty };
}

const lastStatus = (p: FakePort) => p.notices.filter((n) => n.type === 'status').at(-1) as Extract<ConsoleNotice, { type: 'status' }> | undefined;

describe('console members', () => {
  it('the first live client gets the keyboard, the scrollback before live output, and the keyboard passes on when it leaves', () => {
    const { members, empties } = setup();
    const a = fakePort('A');
    const b = fakePort('B');
    const ma = members.add(a);
    const mb = members.add(b);
    members.broadcast(Buffer.from('not yet live'));
    members.goLive(ma, Buffer.from('scroll'), false);
    members.goLive(mb, Buffer.alloc(0), false);
    members.broadcast(Buffer.from('live'));
    expect(a.output).toEqual(['scroll', 'live']);
    expect(b.output).toEqual(['live']);
    expect([members.keyboard, lastStatus(a)?.keyboard, lastStatus(b)?.keyboard]).toEqual([ma, true, false]);
    expect(members.mayType(mb)).toBe(false);
    expect(b.notices.at(-1)).toMatchObject({ type: 'error', message: expect.stringMatching(/held by A/) });

    members.remove(ma, 'left');
    expect(members.keyboard).toBe(mb);
    expect(lastStatus(b)).toMatchObject({ keyboard: true, message: 'keyboard passed to B (A left)' });
    expect(empties()).toBe(0);
    members.remove(mb, 'left');
    members.remove(mb, 'left');
    expect([members.count, empties()]).toEqual([0, 1]);
  });

  it('takeover moves the keyboard and tells everyone', () => {
    const { members, events } = setup();
    const a = fakePort('A');
    const b = fakePort('B');
    const ma = members.add(a);
    members.goLive(ma, Buffer.alloc(0), false);
    const mb = members.add(b);
    members.goLive(mb, Buffer.alloc(0), true);
    expect(members.keyboard).toBe(mb);
    expect(lastStatus(a)).toMatchObject({ keyboard: false, owner: 'B', message: 'keyboard taken over by B' });
    expect(members.mayType(ma)).toBe(false);
    expect(members.mayType(mb)).toBe(true);
    expect(events.filter((e) => e === 'takeover')).toHaveLength(1);
  });

  it('two clients trading the keyboard in a loop: a few takeovers a second each, so every client gets a few notices, not one per request', () => {
    const { members, events } = setup();
    const [a, b, c] = [fakePort('A'), fakePort('B'), fakePort('C')];
    const [ma, mb, mc] = [members.add(a), members.add(b), members.add(c)];
    for (const m of [ma, mb, mc]) members.goLive(m, Buffer.alloc(0), false);
    for (let i = 0; i < 1000; i++) members.takeover(i % 2 === 0 ? mb : ma);
    // the burst of each (5), within the same instant
    expect(events.filter((e) => e === 'takeover').length).toBeLessThanOrEqual(10);
    // a viewer is told each takeover that happened (10 and its own join); the two in the loop get their refusals besides, at most 20 at once
    expect(c.notices.length).toBeLessThanOrEqual(15);
    for (const p of [a, b]) expect(p.notices.length).toBeLessThanOrEqual(40);
    expect(b.notices.some((n) => n.type === 'error' && /takeover ignored: too many takeovers/.test(n.message))).toBe(true);
  });

  it('a holder (the capture) gets every notice, and a status always goes: only error notices are bounded', () => {
    const { members } = setup();
    const holder = fakePort('capture');
    const viewer = fakePort('V');
    const mh = members.add(holder, true);
    const mv = members.add(viewer);
    members.goLive(mh, Buffer.alloc(0), false);
    members.goLive(mv, Buffer.alloc(0), false);
    for (let i = 0; i < 100; i++) {
      mh.port.notify({ type: 'error', message: `e${i}` });
      mv.port.notify({ type: 'error', message: `e${i}` });
    }
    mv.port.notify({ type: 'status', machineId: 'm1', state: 'open', keyboard: true, owner: 'V', clients: 1, message: 'BMC connection re-established' });
    expect(holder.notices.filter((n) => n.type === 'error')).toHaveLength(100);
    expect(viewer.notices.filter((n) => n.type === 'error')).toHaveLength(20);
    expect(viewer.notices.at(-1)).toMatchObject({ type: 'status', message: 'BMC connection re-established' });
  });

  it('drops a client that falls more than the limit behind, and only that one', () => {
    const { members, events } = setup();
    const slow = fakePort('slow');
    const fast = fakePort('fast');
    const ms = members.add(slow);
    const mf = members.add(fast);
    members.goLive(ms, Buffer.alloc(0), false);
    members.goLive(mf, Buffer.alloc(0), false);
    slow.full = true;
    members.broadcast(Buffer.from('12345')); // taken; the port is full from now on
    members.broadcast(Buffer.from('67890')); // waits: 5 bytes
    expect(slow.ended).toEqual([]);
    members.broadcast(Buffer.from('abcdef')); // 11 bytes wait: too slow
    expect(slow.ended).toMatchObject([{ code: 'slow', error: true }]);
    expect(events).toContain('client-dropped-slow');
    expect([members.count, members.keyboard]).toEqual([1, mf]);
    expect(fast.output).toEqual(['12345', '67890', 'abcdef']);
  });

  it('notices count against the bound with what the transport holds unsent: a client whose SSH window stays shut while takeovers go on is dropped, holding at most the bound', () => {
    const { members, events } = setup({ maxClientQueueBytes: 1000 });
    // the transport takes every notice (write() says yes) and sends none of it: an SSH channel whose window the client never opens
    let unsent = 0;
    const stuck: FakePort = { ...fakePort('stuck'), unsentBytes: () => unsent };
    stuck.notify = (n) => {
      stuck.notices.push(n);
      unsent += JSON.stringify(n).length;
    };
    const ms = members.add(stuck);
    members.goLive(ms, Buffer.alloc(0), false);
    // other clients join with `exec takeover` and leave, each from a new source port
    for (let i = 0; i < 100 && !ms.gone; i++) {
      const m = members.add(fakePort(`T${i % 3}`, undefined, `127.0.0.1:${1000 + i}`));
      members.goLive(m, Buffer.alloc(0), true);
      members.remove(m, 'left');
    }
    expect(stuck.ended).toMatchObject([{ code: 'slow', error: true }]);
    expect(events).toContain('client-dropped-slow');
    // what it held when dropped: the bound and the notice that went over it
    expect(unsent).toBeLessThanOrEqual(1000 + 200);
    const held = unsent;
    members.takeover(members.add(fakePort('late')));
    expect(unsent).toBe(held);
  });

  it('a scrollback larger than the bound, held unsent by the transport right after the one send, does not drop a joining viewer; one that then stops reading is dropped', () => {
    const { members, events } = setup({ maxClientQueueBytes: 1000 });
    // a WebSocket: send() takes everything, bufferedAmount counts it until the peer read it
    const transport = (subject: string) => {
      const port: FakePort & { unsent: number } = { ...fakePort(subject), unsent: 0, unsentBytes: () => port.unsent };
      port.send = (data) => {
        port.output.push(data.toString());
        port.unsent += data.length;
        return true;
      };
      return port;
    };
    const scrollback = Buffer.alloc(4000, 's'); // METAL_BMC_CONSOLE_SCROLLBACK above the client bound
    const reader = transport('reader');
    const stopped = transport('stopped');
    const mr = members.add(reader);
    const ms = members.add(stopped);
    members.goLive(mr, scrollback, false);
    members.goLive(ms, scrollback, false);
    expect([reader.ended, stopped.ended]).toEqual([[], []]);
    expect(events).not.toContain('client-dropped-slow');
    // the reader takes the scrollback and then stops reading: the bound alone holds again
    reader.unsent = 0;
    const line = Buffer.alloc(100, 'o');
    // the other never reads even the scrollback: it may hold the bound and the scrollback
    for (let i = 0; i < 10; i++) members.broadcast(line);
    expect([reader.ended, stopped.ended]).toEqual([[], []]);
    expect([reader.unsent, stopped.unsent]).toEqual([1000, 5000]);
    members.broadcast(line);
    expect(reader.ended).toMatchObject([{ code: 'slow', error: true }]);
    expect(stopped.ended).toMatchObject([{ code: 'slow', error: true }]);
  });

  it('a notice to a client whose port is full waits behind its output and counts against the bound', () => {
    const { members } = setup({ maxClientQueueBytes: 200 });
    const slow = fakePort('slow');
    const ms = members.add(slow);
    members.goLive(ms, Buffer.alloc(0), false);
    slow.full = true;
    members.broadcast(Buffer.from('taken')); // the port is full from now on
    members.broadcast(Buffer.from('waits'));
    const told = slow.notices.length;
    members.tellAll('BMC connection re-established');
    expect(slow.notices).toHaveLength(told);
    expect(ms.queue.queuedBytes).toBeGreaterThan(5);
    slow.full = false;
    ms.queue.drain();
    expect(slow.output.at(-1)).toBe('waits');
    expect(slow.notices.at(-1)).toMatchObject({ message: 'BMC connection re-established' });
    slow.full = true;
    members.broadcast(Buffer.from('taken'));
    members.tellAll('one');
    members.tellAll('two');
    expect(slow.ended).toMatchObject([{ code: 'slow' }]);
  });

  it("a principal's takeovers from one address draw on one bucket: joining again does not refill it; another address has its own", () => {
    const { members, events } = setup();
    const holder = members.add(fakePort('H', undefined, '10.0.0.9:1'));
    members.goLive(holder, Buffer.alloc(0), false);
    for (let i = 0; i < 20; i++) {
      const m = members.add(fakePort('T', undefined, `10.0.0.1:${2000 + i}`));
      members.goLive(m, Buffer.alloc(0), true);
      members.remove(m, 'left');
    }
    // the burst (5); one more at most should the clock have moved a second
    expect(events.filter((e) => e === 'takeover').length).toBeLessThanOrEqual(6);
    const other = members.add(fakePort('T', undefined, '10.0.0.2:2000'));
    members.goLive(other, Buffer.alloc(0), true);
    expect(members.keyboard).toBe(other);
  });

  it('endAll lets every client go together: each is told once, no keyboard passes on, a leave() while ending is a no-op', () => {
    const { members, empties } = setup();
    const ports: FakePort[] = [];
    const handles = ['A', 'B', 'C'].map((name) => {
      const port = fakePort(name, () => members.remove(handle, 'left'));
      ports.push(port);
      const handle = members.add(port);
      members.goLive(handle, Buffer.alloc(0), false);
      return handle;
    });
    const before = ports.map((p) => p.notices.length);
    members.endAll({ code: 'shutdown', message: 'bye', error: false });
    expect(ports.map((p) => p.ended.length)).toEqual([1, 1, 1]);
    expect(ports.map((p) => p.notices.length)).toEqual(before);
    expect([members.count, members.keyboard, empties()]).toEqual([0, undefined, 0]);
    expect(handles.every((h) => h.gone)).toBe(true);
  });

  it('merges the notices of a session held elsewhere into every status, and forgets them when the relay goes', () => {
    const { members } = setup();
    const a = fakePort('A');
    const b = fakePort('B');
    const ma = members.add(a);
    const mb = members.add(b);
    members.goLive(ma, Buffer.alloc(0), false);
    members.goLive(mb, Buffer.alloc(0), false);
    members.setForeign('far');
    // there, a viewer of its own holds the keyboard; this session's client is one of its 3 viewers
    members.foreign({ type: 'status', state: 'open', keyboard: false, owner: 'CN=ops', clients: 3, message: 'keyboard taken over by CN=ops' });
    expect(lastStatus(a)).toEqual({ type: 'status', machineId: 'm1', state: 'open', keyboard: false, owner: 'CN=ops', clients: 4, message: 'metal-bmc far: keyboard taken over by CN=ops' });
    expect(lastStatus(b)).toMatchObject({ keyboard: false, owner: 'CN=ops' });
    expect(members.holdsForeignKeyboard()).toBe(false);
    // a refusal there goes to the keyboard holder here, whose input it was
    members.foreign({ type: 'error', message: 'input ignored' });
    expect(a.notices.at(-1)).toEqual({ type: 'error', message: 'metal-bmc far: input ignored' });
    expect(b.notices.at(-1)?.type).toBe('status');
    // its state is the clients' while the relay is open; a status without a message is kept, not told
    const told = a.notices.length;
    members.foreign({ type: 'status', state: 'reconnecting', keyboard: true, owner: 'metal-bmc near', clients: 1 });
    expect(a.notices).toHaveLength(told);
    members.takeover(mb);
    expect(lastStatus(b)).toMatchObject({ state: 'reconnecting', keyboard: true, owner: 'B', clients: 2 });
    expect(lastStatus(a)).toMatchObject({ keyboard: false, owner: 'B' });
    // the relay is gone: this session's own view again, and notices of the old one are not taken
    members.setForeign(undefined);
    members.foreign({ type: 'status', state: 'open', keyboard: false, owner: 'CN=late', clients: 9, message: 'late' });
    members.takeover(ma);
    expect(lastStatus(a)).toMatchObject({ state: 'open', keyboard: true, owner: 'A', clients: 2, message: 'keyboard taken over by A' });
    expect(a.notices.some((n) => n.type === 'status' && n.message?.includes('late'))).toBe(false);
  });
});
