/**
 * A CPU profile of one stretch of a benchmark, a sampling profile of what it allocated, and a
 * heap snapshot after it, through the inspector in the benchmark's own process (`node --cpu-prof`
 * profiles the whole run, set-up and first cycle included). Off unless `BENCH_PROFILE_DIR` names
 * a folder (made if missing); the files are `NAME.cpuprofile` (open in Chrome DevTools or read with
 * `bench/profile-summary.ts`), `NAME.heapprofile` (allocations by function, sampled every 32 KiB
 * on average and counted whether or not they were collected since: what keeps the GC busy; the
 * same script reads it) and `NAME.heapsnapshot`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';

export interface Profiler {
  /** stops the profile started by `startProfile`, writes it and a heap snapshot */
  stop(): Promise<void>;
}

const NONE: Profiler = { stop: async () => {} };

/** the folder profiles go to, or undefined when profiling is off */
export function profileDir(): string | undefined {
  const dir = process.env.BENCH_PROFILE_DIR;
  return dir === undefined || dir === '' ? undefined : dir;
}

export async function startProfile(name: string): Promise<Profiler> {
  const dir = profileDir();
  if (dir === undefined) return NONE;
  // made before the profiled stretch: a missing folder would otherwise end the run after it
  mkdirSync(dir, { recursive: true });
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  // 1 ms is the default interval; finer sampling costs the profiled loop more
  await session.post('Profiler.setSamplingInterval', { interval: 500 });
  await session.post('Profiler.start');
  // includeObjectsCollectedByMajorGC/MinorGC: count what was allocated, not only what survived
  await session.post('HeapProfiler.enable');
  await session.post('HeapProfiler.startSampling', { samplingInterval: 32_768, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as { samplingInterval: number });
  return {
    stop: async () => {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
      const { profile: allocations } = await session.post('HeapProfiler.stopSampling');
      writeFileSync(join(dir, `${name}.heapprofile`), JSON.stringify(allocations));
      const chunks: string[] = [];
      session.on('HeapProfiler.addHeapSnapshotChunk', (m) => chunks.push(m.params.chunk));
      await session.post('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
      writeFileSync(join(dir, `${name}.heapsnapshot`), chunks.join(''));
      session.disconnect();
    },
  };
}
