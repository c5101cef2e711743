/** the first argument that makes src/cli/main.ts run a console worker */
export const CONSOLE_WORKER_ARG = '--metal-bmc-console-worker';

/**
 * The script a console worker runs: src/cli/main (which runs the worker when its first argument
 * is CONSOLE_WORKER_ARG). In the single-file bundle every module's import.meta.url is the bundle itself
 * (scripts/bundle.ts), so a worker started from the bundle runs the bundle's code.
 */
export function consoleWorkerEntry(): URL {
  const here = new URL(import.meta.url);
  const ext = here.pathname.endsWith('.ts') ? '.ts' : '.js';
  return here.pathname.endsWith(`/console/worker-entry${ext}`) ? new URL(`../cli/main${ext}`, here) : here;
}
