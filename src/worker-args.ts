/**
 * The first argument that makes src/cli/main.ts run a worker thread of that kind (worker-entry.ts
 * starts them). A module of its own, with no imports: the CLI's entry reads it on every start, and
 * a one-shot command must not load node:worker_threads.
 */
export const WORKER_ARGS = {
  console: '--metal-bmc-console-worker',
  report: '--metal-bmc-report-worker',
} as const;

export type WorkerKind = keyof typeof WORKER_ARGS;
