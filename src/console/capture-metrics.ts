/** Metrics of the console capture (capture.ts): sessions held, bytes, drops, reconnects, gaps, disk. */
import { Counter, Gauge, type Registry } from 'prom-client';

export interface CaptureMetrics {
  captured(bytes: number): void;
  dropped(bytes: number): void;
  reconnect(): void;
  gapSeconds(seconds: number): void;
  refusedId(): void;
}

export const NO_CAPTURE_METRICS: CaptureMetrics = { captured: () => undefined, dropped: () => undefined, reconnect: () => undefined, gapSeconds: () => undefined, refusedId: () => undefined };

export function createCaptureMetrics(registry: Registry, read: { held(): number; machines(): number; diskBytes(): number }): CaptureMetrics {
  const gauge = (name: string, help: string, value: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(value());
      },
    });
  gauge('metal_bmc_console_capture_sessions', 'console sessions the capture holds open (BMC connected)', read.held);
  gauge('metal_bmc_console_capture_machines', 'machines whose console the capture is to hold', read.machines);
  gauge('metal_bmc_console_capture_log_bytes', 'bytes of captured console logs on disk (raw output and index)', read.diskBytes);
  const counter = (name: string, help: string) => new Counter({ name, help, registers: [registry] });
  const bytes = counter('metal_bmc_console_capture_bytes_total', 'console output bytes written to the capture logs');
  const dropped = counter('metal_bmc_console_capture_dropped_bytes_total', 'console output bytes dropped because the disk did not keep up (recorded as gaps)');
  const reconnects = counter('metal_bmc_console_capture_reconnects_total', 'captured consoles that came back after a gap');
  const gaps = counter('metal_bmc_console_capture_gap_seconds_total', 'seconds of ended gaps in the capture (BMC unreachable, session lost)');
  const refused = counter('metal_bmc_console_capture_refused_ids_total', 'reported machine ids that cannot name a log folder (not captured)');
  return {
    captured: (n) => bytes.inc(n),
    dropped: (n) => dropped.inc(n),
    reconnect: () => reconnects.inc(),
    gapSeconds: (s) => gaps.inc(s),
    refusedId: () => refused.inc(),
  };
}
