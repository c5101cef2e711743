/**
 * The console as a part of `metal-bmc serve` (a PartFactory for startDaemon): off with a
 * warning when the console TLS files are not configured, otherwise both listeners with the
 * metal-api backend over the daemon's BMC connector. With METAL_BMC_CONSOLE_CAPTURE=all the
 * console of every machine the report cycle found (by its UUID, the machine id) is held and
 * logged (console/capture.ts), new viewers get their scrollback from that log, and the history
 * is served on the HTTPS listener (console/capture-routes.ts). IPMI SOL consoles run in worker
 * threads (console/worker-pool.ts) unless METAL_BMC_CONSOLE_WORKERS is 0.
 */
import type { DaemonPart, PartFactory } from '../daemon.js';
import { metalApiConsoleBackend } from '../console/backend.js';
import { createConsoleCapture, type ConsoleCapture } from '../console/capture.js';
import { isSafeMachineId } from '../console/capture-files.js';
import { createCaptureMetrics } from '../console/capture-metrics.js';
import { tailBytes } from '../console/capture-read.js';
import { captureViewerRoutes } from '../console/capture-routes.js';
import { startConsoleServers } from '../console/index.js';
import { combineViewerRoutes } from '../console/viewer-routes.js';
import { registerWorkerMetrics } from '../console/worker-metrics.js';
import { createConsoleWorkerPool } from '../console/worker-pool.js';
import type { SolTarget } from '../console/worker-protocol.js';
import type { StatusStore } from '../status/store.js';
import { createStatusHttp } from '../status/http.js';
import { statusViewerRoutes } from '../status/page.js';

/** how often the capture looks at the report cycle's machines */
const CAPTURE_SYNC_MS = 5000;

/** machine ids (UUIDs) of the BMCs the report cycle read and whose lease is current */
export function reportedMachines(status: StatusStore): string[] {
  return status
    .document()
    .bmcs.filter((b) => b.state !== 'vanished' && b.uuid)
    .map((b) => b.uuid as string);
}

export const consolePart: PartFactory = async (ctx): Promise<DaemonPart> => {
  const c = ctx.config.console;
  if (!c.caCertFile || !c.certFile || !c.keyFile) {
    if (c.capture === 'all') ctx.logger.warn('console capture off: it needs the console listeners (METAL_BMC_CONSOLE_CA_CERT_FILE, _CERT_FILE, _KEY_FILE)');
    ctx.logger.warn('console disabled: METAL_BMC_CONSOLE_CA_CERT_FILE, _CERT_FILE and _KEY_FILE are not set');
    return { name: 'console', stop: async () => undefined };
  }
  // IPMI SOL sessions in worker threads (METAL_BMC_CONSOLE_WORKERS; 0: in this thread)
  const workers = c.workers > 0 ? createConsoleWorkerPool({ workers: c.workers, logger: ctx.logger }) : undefined;
  if (workers) {
    registerWorkerMetrics(ctx.registry, () => workers.stats());
    ctx.logger.info({ workers: c.workers }, 'console SOL sessions run in worker threads');
  }
  const openBackend = metalApiConsoleBackend({
    findIpmiMachine: (id, o) => ctx.metalApi.findIpmiMachine(id, o),
    connect: (t) => ctx.connectBmc(t.host, { user: t.user, password: t.password, port: t.port, signal: t.signal }),
    defaultPort: ctx.config.ipmi.port,
    ...(workers ? { openSol: (target: SolTarget, signal: AbortSignal) => workers.open(target, signal) } : {}),
  });
  const capturing = c.capture === 'all';
  // the status page and /v1/status behind the console's authentication
  const statusHttp = ctx.status ? createStatusHttp(ctx.status) : undefined;
  const historyRoutes = capturing ? captureViewerRoutes({ dir: c.logDir }) : undefined;
  const viewerRoutes = combineViewerRoutes(statusHttp ? statusViewerRoutes(statusHttp) : undefined, historyRoutes);
  const servers = await startConsoleServers({
    ...c,
    openBackend,
    logger: ctx.logger,
    registry: ctx.registry,
    ...(viewerRoutes ? { viewerRoutes } : {}),
    ...(capturing ? { hub: { seedScrollback: (id: string) => (isSafeMachineId(id) ? tailBytes(c.logDir, id, c.scrollbackBytes) : Promise.resolve(Buffer.alloc(0))) } } : {}),
  });
  ctx.status?.consoleViewers(() => servers.hub.viewerCounts());
  let capture: ConsoleCapture | undefined;
  let sync: NodeJS.Timeout | undefined;
  if (capturing) {
    const made: ConsoleCapture = createConsoleCapture({ hub: servers.hub, dir: c.logDir, fileBytes: c.logSize.fileBytes, files: c.logSize.files, logger: ctx.logger, metrics: createCaptureMetrics(ctx.registry, { held: () => made.held(), machines: () => made.machines().length, diskBytes: () => made.diskBytes() }) });
    capture = made;
    ctx.status?.consoleCapture(() => made.states());
    const status = ctx.status;
    if (status) {
      const update = () => made.setMachines(reportedMachines(status));
      update();
      sync = setInterval(update, CAPTURE_SYNC_MS);
    }
    ctx.logger.info({ dir: c.logDir, fileBytes: c.logSize.fileBytes, files: c.logSize.files }, 'console capture on: every reported machine\'s console is held and logged');
  }
  return {
    name: 'console',
    async stop(deadlineMs) {
      clearInterval(sync);
      statusHttp?.close();
      historyRoutes?.close();
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, deadlineMs)));
      await Promise.race([(async () => {
        await capture?.close();
        await servers.close();
        await workers?.close();
      })(), deadline]);
      clearTimeout(timer);
    },
  };
};
