/**
 * The report-latency benchmark in a process of its own, compiled and under plain node as the
 * daemon runs (bench/console-server-run.ts compiles it): its peak RSS and CPU are then the report
 * cycle's, not tsx's loader (~36 MiB) or the other benchmarks the runner imports. Prints its
 * figures itself and sends them to the runner, which writes them with the rest of the run.
 * Usage (by bench/report-latency.ts): node report-latency-process.js [N]
 */
import { benchReportLatency } from './report-latency.js';
import { collector } from './results.js';

const n = process.argv[2] === undefined ? undefined : Number(process.argv[2]);
collector.expect('report-latency');
await benchReportLatency(n);
process.send!({ type: 'results', results: collector.results });
process.disconnect();
