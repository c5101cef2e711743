/**
 * The console as a part of `metal-bmc serve` (a PartFactory for startDaemon): off with a
 * warning when the console TLS files are not configured, otherwise both listeners with the
 * metal-api backend over the daemon's BMC connector. With METAL_BMC_CONSOLE_CAPTURE=all the
 * console of every machine the report cycle found (by its UUID, the machine id) is held and
 * logged (console/capture.ts), new viewers get their scrollback from that log, and the history
 * is served on the HTTPS listener (console/capture-routes.ts). IPMI SOL consoles run in worker
 * threads (console/worker-pool.ts) unless METAL_BMC_CONSOLE_WORKERS is 0.
 */
import { consoleListening } from '../config/config.js';
import { endedWithin } from '../deadline.js';
import type { DaemonPart, PartFactory } from '../daemon.js';
import { metalApiConsoleBackend } from '../console/backend.js';
import { createTargetGuard } from '../commands/targets.js';
import { createConsoleCapture, type ConsoleCapture } from '../console/capture.js';
import { isSafeMachineId } from '../console/capture-files.js';
import { createCaptureMetrics } from '../console/capture-metrics.js';
import { tailBytes } from '../console/capture-read.js';
import { captureViewerRoutes } from '../console/capture-routes.js';
import { startConsoleServers } from '../console/index.js';
import { combineViewerRoutes } from '../console/viewer-routes.js';
import { ownedBackend, type OwnedBackend } from '../console/owned-backend.js';
import { registerWorkerMetrics } from '../console/worker-metrics.js';
import { createConsoleWorkerPool } from '../console/worker-pool.js';
import type { SolTarget } from '../console/worker-protocol.js';
import type { StatusStore } from '../status/store.js';
import { createStatusHttp } from '../status/http.js';
import { statusStreamRefusals } from '../status/metrics.js';
import { statusViewerRoutes } from '../status/page.js';
import { openRelay, serveRelays, type RelayNotice, type RelayServer } from '../bus/console-relay.js';
import type { ConsoleNotice } from '../console/types.js';
import { sanitizeName } from '../bus/jetstream.js';
import { BmcError } from '../errors.js';
import type { ConsoleHub } from '../console/hub.js';
import { Counter, Gauge } from 'prom-client';
import { startConsoleOwners, type ConsoleOwners } from './console-owners.js';

/** how often the capture looks at the report cycle's machines */
const CAPTURE_SYNC_MS = 5000;

/** how long letting go of the console claims may take at a stop (NATS may be gone) */
const OWNERS_CLOSE_MS = 5000;

/** machine ids (UUIDs) of the BMCs the report cycle read and whose lease is current */
export function reportedMachines(status: StatusStore): string[] {
  return status
    .document()
    .bmcs.filter((b) => b.state !== 'vanished' && b.uuid)
    .map((b) => b.uuid as string);
}

/** A notice of this hub to a relay's client, as the other instance's session takes it (console-relay-codec.ts). */
function relayNotice(n: ConsoleNotice): RelayNotice {
  if (n.type === 'error') return n;
  const { machineId: _machine, ...status } = n;
  return status;
}

/** The owner's side of a relayed console: the other instance's viewer joins this hub as a client, and gets its notices. */
export function relayJoin(hub: ConsoleHub, owners: Pick<ConsoleOwners, 'holder'>): Parameters<typeof serveRelays>[0]['join'] {
  return async (machineId, from, port) => {
    if (owners.holder(machineId).kind !== 'self') throw new BmcError('BUSY', `metal-bmc instance does not hold the console of machine ${machineId}`);
    const handle = await hub.join(machineId, {
      identity: { subject: `metal-bmc ${from}`, remote: `nats:${from}`, transport: 'relay' },
      send: (data) => (port.send(data), true),
      notify: (notice) => port.notify(relayNotice(notice)),
      end: (reason) => port.end(reason.message),
    });
    return { input: (data) => handle.input(data), takeover: () => handle.takeover(), sendBreak: () => handle.sendBreak(), leave: () => handle.leave() };
  };
}

export const consolePart: PartFactory = async (ctx): Promise<DaemonPart> => {
  const c = ctx.config.console;
  if (!consoleListening(c)) {
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
  // the BMC metal-api names gets its credentials only where a command would (allowed CIDRs, the lease's MAC)
  const checkTarget = createTargetGuard({ mode: ctx.config.commands.targets, allowedCidrs: ctx.config.leases.allowedCidrs, leaseAt: ctx.leaseAt, ...(ctx.leasesRead ? { leasesRead: ctx.leasesRead } : {}) });
  const bmcBackend = metalApiConsoleBackend({
    findIpmiMachine: (id, o) => ctx.metalApi.findIpmiMachine(id, o),
    checkTarget,
    connect: (t) => ctx.connectBmc(t.host, { user: t.user, password: t.password, port: t.port, signal: t.signal }),
    defaultPort: ctx.config.ipmi.port,
    ...(workers ? { openSol: (target: SolTarget, signal: AbortSignal, takeOver: boolean) => workers.open({ ...target, cipherSuite: ctx.config.ipmi.cipherSuite }, signal, takeOver) } : {}),
  });
  const capturing = c.capture === 'all';
  // several instances on one partition: one owner per console, decided on NATS (console-owners.ts)
  let capture: ConsoleCapture | undefined;
  let wanted: string[] = [];
  const applyOwnership = () => {
    capture?.setMachines(owners ? owners.owned(wanted) : wanted);
    relays?.endWhere((id) => owners?.holder(id).kind !== 'self', 'the console moved to another metal-bmc instance');
    const cut = owned?.cut() ?? 0;
    if (cut > 0) ctx.logger.info({ streams: cut }, 'console streams of machines this instance no longer holds ended');
  };
  const owners: ConsoleOwners | undefined = capturing && c.ownership === 'nats' ? startConsoleOwners(ctx, applyOwnership) : undefined;
  const relayPrefix = `metal-bmc.${sanitizeName(ctx.config.partitionId)}.console`;
  const relayRefused = new Counter({ name: 'metal_bmc_console_relay_refused_total', help: 'relay requests, input and notices between metal-bmc instances refused: open-invalid, open-limit (relays at once or opens a second), input-limit (size or rate), notice-limit (the owner\'s notices over their rate, on the viewer\'s instance)', labelNames: ['reason'], registers: [ctx.registry] });
  let relays: RelayServer | undefined;
  // a viewer of a machine another instance holds is served from that instance, over NATS
  const relay = (instance: string, machineId: string, { signal }: { signal: AbortSignal }) => {
    const bus = owners?.bus();
    if (!bus) throw new BmcError('BUSY', `the console of machine ${machineId} is held by metal-bmc instance ${instance}, and NATS is not connected`);
    return openRelay({ nc: bus.nc, prefix: relayPrefix, from: ctx.config.instanceId, owner: instance, machineId, signal, onNoticeDropped: () => relayRefused.inc({ reason: 'notice-limit' }) });
  };
  const owned: OwnedBackend | undefined = owners ? ownedBackend({ open: bmcBackend, holder: (id) => owners.holder(id), relay }) : undefined;
  const openBackend = owned?.open ?? bmcBackend;
  // the status page and /v1/status behind the console's authentication
  const statusHttp = ctx.status ? createStatusHttp(ctx.status, { onRefused: statusStreamRefusals(ctx.registry, ctx.logger, 'console') }) : undefined;
  const historyRoutes = capturing ? captureViewerRoutes({ dir: c.logDir }) : undefined;
  const viewerRoutes = combineViewerRoutes(statusHttp ? statusViewerRoutes(statusHttp) : undefined, historyRoutes);
  const servers = await startConsoleServers({
    ...c,
    openBackend,
    logger: ctx.logger,
    registry: ctx.registry,
    ...(viewerRoutes ? { viewerRoutes } : {}),
    ...(capturing ? { hub: { seedScrollback: (id: string) => (isSafeMachineId(id) ? tailBytes(c.logDir, id, c.scrollbackBytes) : Promise.resolve(Buffer.alloc(0))) } } : {}),
  }).catch(async (err: unknown) => {
    statusHttp?.close();
    historyRoutes?.close();
    await owners?.close();
    throw err;
  });
  ctx.status?.consoleViewers(() => servers.hub.viewerCounts());
  new Gauge({
    name: 'metal_bmc_console_relays',
    help: 'consoles this instance serves to viewers of other metal-bmc instances',
    registers: [ctx.registry],
    collect() {
      this.set(relays?.count() ?? 0);
    },
  });
  if (owners) {
    void owners.connected.then((bus) => {
      if (bus && !servers.hub.closed) relays = serveRelays({ nc: bus.nc, prefix: relayPrefix, instanceId: ctx.config.instanceId, logger: ctx.logger, join: relayJoin(servers.hub, owners), onRefused: (reason) => relayRefused.inc({ reason }) });
    });
  }
  let sync: NodeJS.Timeout | undefined;
  if (capturing) {
    const made: ConsoleCapture = createConsoleCapture({ hub: servers.hub, dir: c.logDir, fileBytes: c.logSize.fileBytes, files: c.logSize.files, logger: ctx.logger, metrics: createCaptureMetrics(ctx.registry, { held: () => made.held(), machines: () => made.machines().length, diskBytes: () => made.diskBytes() }) });
    capture = made;
    ctx.status?.consoleCapture(() => {
      const states = new Map<string, 'held' | 'gap' | 'elsewhere'>(made.states());
      if (owners) for (const id of wanted) if (!states.has(id) && owners.holder(id).kind === 'other') states.set(id, 'elsewhere');
      return states;
    });
    const status = ctx.status;
    if (status) {
      const update = () => {
        wanted = reportedMachines(status);
        owners?.setWanted(wanted);
        applyOwnership();
      };
      update();
      sync = setInterval(update, CAPTURE_SYNC_MS);
    }
    ctx.logger.info({ dir: c.logDir, fileBytes: c.logSize.fileBytes, files: c.logSize.files, ownership: c.ownership }, c.ownership === 'nats' ? 'console capture on: every reported machine\'s console this instance owns is held and logged' : 'console capture on: every reported machine\'s console is held and logged');
  }
  return {
    name: 'console',
    ...(owners ? { ready: () => owners.ready() } : {}),
    async stop(deadlineMs) {
      clearInterval(sync);
      relays?.close();
      statusHttp?.close();
      historyRoutes?.close();
      const closing = (async () => {
        await capture?.close();
        await servers.close();
        await workers?.close();
      })();
      try {
        if (await endedWithin(closing, deadlineMs)) await closing;
      } finally {
        // the consoles are let go first, then the claims: the next owner finds the SOL payload
        // free; also when closing them failed (else the others wait a lease time), and within a
        // few seconds (NATS may be gone)
        const released = owners ? owners.close().then(() => true, (err: unknown) => (ctx.logger.warn({ err }, 'console claims not released at shutdown; the other instances take them over after a lease time'), false)) : Promise.resolve(true);
        if (!(await endedWithin(released, OWNERS_CLOSE_MS))) ctx.logger.warn({ waitedMs: OWNERS_CLOSE_MS }, 'console claims not released within their bound at shutdown; the other instances take them over after a lease time');
      }
    },
  };
};
