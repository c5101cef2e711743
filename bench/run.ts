/**
 * Runs the benchmarks: `npm run bench` for all, `npm run bench -- NAME [N]` for one.
 * Each prints our figure beside a reference measured in the same run.
 */
import { benchCliStartup } from './cli-startup.js';
import { benchConsoleStreaming } from './console-streaming.js';
import { benchIpmiPowerStatus } from './ipmi-power-status.js';
import { benchOutbandInfo } from './outband-info.js';
import { benchReportCycle } from './report-cycle.js';
import { benchSimFootprint } from './sim-footprint.js';

const BENCHMARKS: Record<string, (n?: number) => Promise<void>> = {
  'ipmi-power-status': benchIpmiPowerStatus,
  'sim-footprint': benchSimFootprint,
  'outband-info': benchOutbandInfo,
  'report-cycle': benchReportCycle,
  'console-streaming': benchConsoleStreaming,
  'cli-startup': benchCliStartup,
};

const [name, count] = process.argv.slice(2);
const selected = name ? { [name]: BENCHMARKS[name] } : BENCHMARKS;
for (const [key, bench] of Object.entries(selected)) {
  if (!bench) {
    console.error(`unknown benchmark ${key}; known: ${Object.keys(BENCHMARKS).join(', ')}`);
    process.exit(2);
  }
  await bench(count ? Number(count) : undefined);
}
