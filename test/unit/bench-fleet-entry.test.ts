import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { simulatorEntry } from '../../bench/fleet-process.js';

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
