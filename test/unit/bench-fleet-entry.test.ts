import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { getPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { simulatorEntry, startFleetProcess } from '../../bench/fleet-process.js';

describe('bench: how the simulator process starts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-entry-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs the compiled simulator beside a compiled benchmark', () => {
    mkdirSync(join(dir, 'bench'), { recursive: true });
    mkdirSync(join(dir, 'src', 'cli'), { recursive: true });
    writeFileSync(join(dir, 'src', 'cli', 'main.js'), '');
    expect(simulatorEntry(join(dir, 'bench', 'fleet-process.js'))).toEqual([join(dir, 'src', 'cli', 'main.js')]);
  });

  it('runs the sources under tsx when the benchmark runs from its sources', () => {
    expect(simulatorEntry(join(dir, 'bench', 'fleet-process.ts'))).toEqual(['--import', 'tsx', 'src/cli/main.ts']);
  });

  it('runs the sources under tsx when no compiled simulator is beside a compiled benchmark', () => {
    const other = mkdtempSync(join(tmpdir(), 'fleet-entry-none-'));
    try {
      expect(simulatorEntry(join(other, 'bench', 'fleet-process.js'))).toEqual(['--import', 'tsx', 'src/cli/main.ts']);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});

/** the nice value of every thread of process `pid` (field 19 of /proc/<pid>/task/<tid>/stat) */
function threadNices(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).map((t) => Number(readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]));
}

describe.runIf(process.platform === 'linux')('bench: the simulator process at a lower CPU priority (BENCH_SIM_NICE)', () => {
  it('runs every thread of the simulator the given nice steps below this process, and at its priority without the option', async () => {
    const own = getPriority();
    // a runner already at the lowest priority could not tell the two apart
    expect(own).toBeLessThan(19);
    const lowered = await startFleetProcess({ count: 2, second: 197, redfish: false, nice: 7 });
    try {
      const nices = threadNices(lowered.child.pid!);
      expect(nices.length).toBeGreaterThan(1);
      expect(new Set(nices)).toEqual(new Set([Math.min(19, own + 7)]));
    } finally {
      await lowered.stop();
    }
    const plain = await startFleetProcess({ count: 2, second: 197, redfish: false });
    try {
      expect(new Set(threadNices(plain.child.pid!))).toEqual(new Set([own]));
    } finally {
      await plain.stop();
    }
  }, 120_000);
});
