import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createMachineState, SimMachine } from '../../src/sim/machine.js';
import { SerialLine } from '../../src/sim/serial.js';

function machine(power: 'on' | 'off'): SimMachine {
  return new SimMachine({ ...createMachineState('serial', 2), power });
}

function collect(line: SerialLine): () => string {
  const chunks: Buffer[] = [];
  line.on('data', (d) => chunks.push(d));
  return () => Buffer.concat(chunks).toString('latin1');
}

describe('SerialLine', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('has the boot log and prompt in its history when the machine already runs', () => {
    const m = machine('on');
    const line = new SerialLine(m);
    const history = line.history().toString('latin1');
    expect(history).toContain(`${m.state.manufacturer} ${m.state.model}`);
    expect(history).toContain(`BIOS Version ${m.state.biosVersion}`);
    expect(history.endsWith('machine-2 login: ')).toBe(true);
    line.close();
  });

  it('says what it booted: a one-time PXE override once, then the BIOS order', () => {
    const m = machine('off');
    const line = new SerialLine(m, { hostname: 'box' });
    const output = collect(line);
    m.setBoot('pxe', false, true);
    m.setPower('on', 'up');
    vi.advanceTimersByTime(5_000);
    expect(output()).toContain('Booting from the network (PXE) (boot override)');
    m.state.bootOrder = ['Boot0002', 'Boot0001'];
    m.setPower('on', 'reset');
    vi.advanceTimersByTime(5_000);
    expect(output()).toContain('Booting from disk (boot order)');
    expect(m.state.lastBoot).toEqual({ device: 'disk', via: 'boot-order', count: 2 });
    line.close();
  });

  it('prints the boot log when the machine powers on, paced at 115200 baud', () => {
    const m = machine('off');
    const line = new SerialLine(m, { hostname: 'box' });
    const output = collect(line);
    expect(line.history().length).toBe(0);
    m.setPower('on', 'up');
    vi.advanceTimersByTime(10);
    const afterOneTick = output().length;
    expect(afterOneTick).toBeGreaterThan(0);
    expect(afterOneTick).toBeLessThanOrEqual(115); // 11,520 bytes/s in 10 ms ticks
    vi.advanceTimersByTime(2000);
    expect(output()).toContain('Linux version');
    expect(output().endsWith('box login: ')).toBe(true);
    expect(line.history().toString('latin1')).toBe(output());
    line.close();
  });

  it('boots again on reset, and stays silent on power off', () => {
    const m = machine('on');
    const line = new SerialLine(m);
    const output = collect(line);
    m.setPower('off', 'down');
    vi.advanceTimersByTime(1000);
    expect(output()).toBe('');
    m.setPower('on', 'reset');
    vi.advanceTimersByTime(1000);
    expect(output()).toContain('BIOS Version');
    line.close();
  });

  it('echoes typing, answers a newline with a new prompt and handles backspace', () => {
    const m = machine('on');
    const line = new SerialLine(m, { hostname: 'box' });
    const output = collect(line);
    line.write(Buffer.from('roox\x7ft\r\n'));
    vi.advanceTimersByTime(100);
    expect(output()).toBe('roox\b \bt\r\nbox login: ');
    line.close();
  });

  it('does not echo while the machine is off, and counts breaks', () => {
    const m = machine('off');
    const line = new SerialLine(m);
    const output = collect(line);
    line.write(Buffer.from('hello\r'));
    line.sendBreak();
    vi.advanceTimersByTime(100);
    expect(output()).toBe('');
    expect(line.breaks).toBe(1);
    line.close();
  });

  it('keeps only the latest output as history', () => {
    const m = machine('on');
    const line = new SerialLine(m, { historyBytes: 64 });
    expect(line.history().length).toBe(64);
    expect(line.history().toString('latin1').endsWith('login: ')).toBe(true);
    line.close();
  });

  it('streams at the line speed while streaming, with echoes in between, and stops when asked', () => {
    const m = machine('on');
    const line = new SerialLine(m, { hostname: 'box' });
    const output = collect(line);
    const chunks: Buffer[] = [];
    line.on('data', (d) => chunks.push(d));
    line.setStreaming(true);
    expect(line.isStreaming).toBe(true);
    vi.advanceTimersByTime(1000);
    const oneSecond = output().length;
    expect(oneSecond).toBeGreaterThanOrEqual(11_400); // 115200 baud, 8N1: 11,520 bytes/s
    expect(oneSecond).toBeLessThanOrEqual(11_520);
    expect(output()).toMatch(/\r\n *\[ *\d+\.\d{6}\] stream: line 00 /); // CLOCK_MONOTONIC when the line started to leave
    expect(chunks.filter((c) => /\[[ \d.]*\]? ?s?t?r?e?a?m?$/.test(c.toString('latin1')))).toEqual([]); // a stamp leaves whole, with ' stream'
    expect(output()).not.toContain('#');
    line.write(Buffer.from('#m1#'));
    expect(output().endsWith('#m1#')).toBe(true); // the echo goes out at once
    vi.advanceTimersByTime(1000);
    expect(output().length - oneSecond).toBeLessThanOrEqual(11_520 + 4);
    expect(line.outputBytes).toBe(output().length);
    line.setStreaming(false);
    const stopped = output().length;
    vi.advanceTimersByTime(1000);
    expect(output().length).toBe(stopped);
    expect(line.history().length).toBe(4096);
    line.close();
  });

  it('does not stream while the machine is off', () => {
    const m = machine('off');
    const line = new SerialLine(m);
    const output = collect(line);
    line.setStreaming(true);
    vi.advanceTimersByTime(500);
    expect(output()).toBe('');
    line.close();
  });

  it('stops listening to the machine when closed', () => {
    const m = machine('off');
    const line = new SerialLine(m);
    const output = collect(line);
    line.close();
    m.setPower('on', 'up');
    vi.advanceTimersByTime(1000);
    expect(output()).toBe('');
    expect(m.listenerCount('change')).toBe(0);
  });
});

describe('boot storm lines', () => {
  it('carry their number and a checksum that catches a changed byte (property)', async () => {
    const { default: fc } = await import('fast-check');
    const { parseStormLine, stormLine } = await import('../../src/sim/serial.js');
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 25_000 }), fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 25 }), (of, at, add) => {
        const n = Math.max(1, of - add);
        const line = stormLine('m7', n, of).replace(/\r\n$/, '');
        expect(parseStormLine(line)).toEqual({ id: 'm7', n, of });
        const i = at % line.length;
        const changed = line.slice(0, i) + (line[i] === 'x' ? 'y' : 'x') + line.slice(i + 1);
        expect(parseStormLine(changed)).toBeUndefined();
      }),
    );
  });

  it('a storm prints every line in order at the line speed', async () => {
    vi.useFakeTimers();
    const { parseStormLine } = await import('../../src/sim/serial.js');
    const m = new SimMachine({ ...createMachineState('serial', 3), power: 'on' });
    const line = new SerialLine(m);
    const output = collect(line);
    line.storm(200);
    vi.advanceTimersByTime(100);
    const early = output().length;
    expect(early).toBeLessThan(2000); // ~11.5 bytes per ms, not all at once
    vi.advanceTimersByTime(10_000);
    const lines = output().split('\r\n').filter((l) => l !== '');
    expect(lines.map((l) => parseStormLine(l)?.n)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(() => line.storm(0)).toThrow(RangeError);
    line.close();
    vi.useRealTimers();
  });
});
