/**
 * A benchmark in a process of its own, compiled and under plain node as the daemon runs
 * (bench/console-server-run.ts compiles it): its peak RSS and CPU are then the daemon code's, not
 * tsx's loader (~36 MiB), its source maps and name wrappers, or the other benchmarks the runner
 * imports. Prints its figures itself and sends them to the runner, which writes them with the
 * rest of the run. Usage (by benchInChild): node bench-process.js NAME [N]
 */
import { collector } from './results.js';

/** the benchmarks that run in a child of their own; each is imported only when it runs */
const CHILD_BENCHMARKS: Record<string, () => Promise<(n?: number) => Promise<void>>> = {
  'report-latency': async () => (await import('./report-latency.js')).benchReportLatency,
  'console-capture': async () => (await import('./console-capture.js')).benchConsoleCapture,
};

const [name, size] = process.argv.slice(2);
const load = name === undefined ? undefined : CHILD_BENCHMARKS[name];
if (!load) throw new Error(`bench-process: no benchmark ${JSON.stringify(name)} (${Object.keys(CHILD_BENCHMARKS).join(', ')})`);
collector.expect(name!);
await (await load())(size === undefined ? undefined : Number(size));
process.send!({ type: 'results', results: collector.results });
process.disconnect();
