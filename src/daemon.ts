/**
 * Wiring of `metal-bmc serve`: configuration → lease watcher → reporter → metal-api, the machine
 * command consumer on NATS, the console servers, and the operations listener. Start order is
 * listed in `start()`; `stop()` stops the parts at once, each within the shutdown timeout.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { collectDefaultMetrics, Counter, Registry } from 'prom-client';
import type { Config } from './config/config.js';
import { redactConfig } from './config/redact.js';
import { closeAllSessions } from './ipmi/session.js';
import { watchLeases, type LeaseWatcher } from './leases/watch.js';
import type { Lease } from './leases/types.js';
import type { Logger } from './log.js';
import { createMetalApiClient, type MetalApiClient } from './metalapi/client.js';
import { createMetalApiWatch } from './metalapi/metrics.js';
import { startOpsServer, type OpsServer, type ReadinessCheck } from './ops/http.js';
import { createGuidMemory } from './outband/guid-memory.js';
import { createHedgeMemory } from './outband/hedge-memory.js';
import { openRedfishSessionFile, REDFISH_SESSIONS_FILE } from './outband/redfish-sessions.js';
import { connectOutband } from './outband/connect.js';
import { createBmcTrust, openTrustStore, TRUST_FILE, usesTrustOnFirstUse, type BmcTrust, type TrustMetrics } from './outband/trust.js';
import type { Outband } from './outband/types.js';
import type { SecondConnectionSwitch } from './redfish/second-connection.js';
import { createReportMetrics, createTrustMetrics, registerRedfishSessionMetrics, registerReportWorkerMetrics, registerStateFileMetrics, registerStateWriteMetrics } from './report/metrics.js';
import { openUuidOwnersFile, UUID_OWNERS_FILE } from './report/owners.js';
import { createLedMemory, type LedMemory } from './report/led-memory.js';
import { createReporter, type Reporter } from './report/reporter.js';
import { createReportWorkerPool } from './report/worker-pool.js';
import type { ReportConnectSettings } from './report/worker-protocol.js';
import { createStatusHttp } from './status/http.js';
import { registerStatusMetrics, statusStreamRefusals } from './status/metrics.js';
import { createStatusStore, type StatusStore } from './status/store.js';

/** A part of the daemon with a graceful stop, started after the reporter (bus, console). */
export interface DaemonPart {
  name: string;
  ready?: ReadinessCheck;
  stop(deadlineMs: number): Promise<void>;
}

export interface DaemonContext {
  config: Config;
  logger: Logger;
  registry: Registry;
  metalApi: MetalApiClient;
  connectBmc: (host: string, options: { signal?: AbortSignal; user?: string; password?: string; port?: number; readAhead?: boolean; onAnswer?: () => void; secondConnection?: SecondConnectionSwitch }) => Promise<Outband>;
  /** the current lease of the BMC with this IP address (its MAC, normalised), or undefined when none holds one */
  leaseAt: (ip: string) => Pick<Lease, 'mac'> | undefined;
  /**
   * whether the lease file has been read successfully at least once: before that `leaseAt` knows
   * nothing (not "no lease"), and a target that needs a lease is handed back, not refused
   * (commands/targets.ts); absent, the leases count as read
   */
  leasesRead?: () => boolean;
  /** the status of every BMC (GET /v1/status): parts tell it command results and console viewers */
  status?: StatusStore;
  /** the identify LED reported for a machine whose BMC cannot tell it: parts tell it the LED commands a BMC accepted */
  ledMemory?: LedMemory;
  /**
   * The daemon cannot go on (its NATS connection is gone for good): the owner stops it gracefully
   * and exits for a restart. Without one, the part that finds out exits the process itself.
   */
  onFatal?: (why: string) => void;
}

export interface DaemonOptions {
  /** see DaemonContext.onFatal; `serve` stops the daemon and exits with code 1 */
  onFatal?: (why: string) => void;
}

/** lease file entries left out that one read logs one by one; the rest of them in one line */
const SKIPPED_ENTRIES_LOGGED = 10;

const optional = <K extends string, V>(k: K, v: V | undefined): Partial<Record<K, V>> => (v === undefined ? {} : ({ [k]: v } as Record<K, V>));

export type PartFactory = (ctx: DaemonContext) => Promise<DaemonPart>;

export interface Daemon {
  opsPort: number;
  context: DaemonContext;
  reporter: Reporter;
  status: StatusStore;
  leases(): readonly Lease[];
  stop(): Promise<void>;
}

/** How every BMC is connected, in this thread and in the report workers: the configuration's part of connectOutband's options (`redfishCa`: the PEM of METAL_BMC_REDFISH_CA_FILE). */
export function bmcConnectSettings(config: Config, redfishCa?: string): ReportConnectSettings {
  return {
    user: config.ipmi.user,
    password: config.ipmi.password,
    protocol: config.protocol,
    ipmiPort: config.ipmi.port,
    ipmiCipherSuite: config.ipmi.cipherSuite,
    ...(Object.keys(config.ipmi.guidOrders).length > 0 ? { guidEncodingByVendor: config.ipmi.guidOrders } : {}),
    redfishPort: config.redfish.port,
    sshPort: config.bmcSsh.port,
    redfishInsecure: config.redfish.insecure,
    redfishLegacyTls: config.redfish.legacyTls,
    redfishRequestTimeoutMs: config.redfish.requestTimeoutMs,
    redfishOpenConnectionAfterMs: config.redfish.secondConnectionAfterMs,
    ...(config.redfish.hedgeAfterMs > 0 ? { redfishHedgeAfterMs: config.redfish.hedgeAfterMs } : {}),
    ...(redfishCa ? { redfishCa } : {}),
    timeoutMs: config.report.bmcTimeoutMs,
  };
}

/**
 * The daemon's trust gate: always over the trust file, for an SSH console's host key is pinned on
 * first use whatever verifies Redfish; certificates are trusted on first use too unless a CA (or
 * the system store) verifies them (`redfishVerified`: no certificate recorded). Report reads in
 * workers get it only with trust on first use: they open no console, and a CA needs no record.
 */
export function createDaemonTrust(config: Pick<Config, 'stateDir' | 'trust'> & { redfish: Pick<Config['redfish'], 'insecure' | 'caFile'> }, o: { logger?: Logger; metrics?: TrustMetrics } = {}): BmcTrust {
  return createBmcTrust({
    store: openTrustStore({ file: join(config.stateDir, TRUST_FILE), ...(o.logger ? { logger: o.logger } : {}) }),
    ...(o.logger ? { logger: o.logger } : {}),
    ...(o.metrics ? { metrics: o.metrics } : {}),
    resetHint: true,
    requireProof: config.trust.requireProof,
    redfishVerified: !usesTrustOnFirstUse(config.redfish),
  });
}

export async function startDaemon(config: Config, logger: Logger, parts: PartFactory[] = [], options: DaemonOptions = {}): Promise<Daemon> {
  logger.info({ config: redactConfig(config) }, 'metal-bmc starting');
  for (const w of config.warnings) logger.warn(w);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'metal_bmc_' });
  const metrics = createReportMetrics(registry);
  registerStateWriteMetrics(registry);
  const metalApiRetries = new Counter({ name: 'metal_bmc_metal_api_retries_total', help: 'metal-api requests sent again after a failure (5xx, 429, no answer), by error code', labelNames: ['code'], registers: [registry] });
  const metalApiWatch = createMetalApiWatch(registry, logger);
  const metalApi = createMetalApiClient({
    baseUrl: config.metalApi.url,
    hmacKey: config.metalApi.hmacKey,
    timeoutMs: config.metalApi.timeoutMs,
    ...(config.metalApi.caFile === undefined ? {} : { ca: readFileSync(config.metalApi.caFile, 'utf8') }),
    onAttemptEnd: metalApiWatch.attemptEnded,
    // a retry stretches a report cycle by its backoff: one line and a count each, not silence
    onRetry: ({ what, attempt, delayMs, error }) => {
      metalApiRetries.inc({ code: error.code });
      logger.warn({ what, attempt, delayMs, code: error.code, err: error.message }, 'metal-api request failed; sending it again after a pause');
    },
  });
  const status = createStatusStore({
    partition: config.partitionId,
    graceMs: config.status.graceMs,
    secrets: [config.ipmi.password, config.metalApi.hmacKey, config.console.token ?? ''],
  });
  registerStatusMetrics(registry, status);
  const redfishCa = config.redfish.caFile ? readFileSync(config.redfish.caFile, 'utf8') : undefined;
  const trustMetrics = createTrustMetrics(registry);
  const trust = createDaemonTrust(config, { logger, metrics: trustMetrics });
  const lateLeases: { current?: () => readonly Lease[] } = {};
  const macOf = (ip: string) => lateLeases.current?.().find((lease) => lease.ip === ip)?.mac;

  const settings = bmcConnectSettings(config, redfishCa);
  // report reads in this thread: a BMC's confirmed IPMI GUID kept between cycles (workers keep their own); with a
  // max age of 0 it spares no IPMI session but still confirms a read over IPMI alone
  const guidMemory = createGuidMemory({ maxAgeMs: config.report.guidMaxAgeMs });
  // report reads in this thread: the Redfish paths per BMC slow when last asked, not hedged again while slow (workers keep their own)
  const redfishHedgeMemory = createHedgeMemory();
  // report reads here and in the workers: each BMC's Redfish session kept for the next read, and over restarts
  const redfishSessions = config.report.redfishSessionMaxAgeMs > 0 ? openRedfishSessionFile({ file: join(config.stateDir, REDFISH_SESSIONS_FILE), maxAgeMs: config.report.redfishSessionMaxAgeMs, logger }) : undefined;
  if (redfishSessions) registerRedfishSessionMetrics(registry, () => redfishSessions.openSessions());
  const connectBmc: DaemonContext['connectBmc'] = (host, o) => {
    const mac = optional('mac', macOf(host));
    return connectOutband({
      ...settings,
      host,
      ...(o.user !== undefined ? { user: o.user } : {}),
      ...(o.password !== undefined ? { password: o.password } : {}),
      ...(o.port !== undefined ? { ipmiPort: o.port } : {}),
      trust: trust.forBmc({ ip: host, ...mac }),
      ...mac,
      firmwareMaxImageBytes: config.firmware.maxImageBytes,
      logger,
      ...(o.readAhead ? { readAhead: true, guidMemory, redfishHedgeMemory, ...(redfishSessions ? { redfishSessions } : {}) } : {}),
      ...(o.onAnswer ? { onAnswer: o.onAnswer } : {}),
      ...(o.secondConnection ? { redfishSecondConnection: o.secondConnection } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    });
  };

  // 1. leases, 2. reporter
  let leaseProblem: string | undefined = 'lease file not read yet';
  /** a good read gave a view (leaseProblem is set again by a later error while the view is empty) */
  let leasesRead = false;
  // the watcher reports changes from its first read on; the reporter exists right after it
  const late: { reporter?: Reporter; started?: boolean } = {};
  const startReporting = () => {
    if (late.started || !late.reporter) return;
    late.started = true;
    late.reporter.start();
  };
  const watcher: LeaseWatcher = watchLeases(config.leases.file, {
    format: config.leases.format,
    allowedCidrs: config.leases.allowedCidrs,
    ignoreMacs: config.leases.ignoreMacs,
    onChange: (view) => {
      leaseProblem = undefined;
      leasesRead = true;
      status.leases(view.leases);
      metrics.bmcsDiscovered.set(view.leases.length);
      const fresh = [...view.added, ...view.changed];
      if (view.added.length + view.removed.length + view.changed.length > 0) {
        logger.info({ active: view.leases.length, added: view.added.map((l) => l.ip), removed: view.removed.map((l) => l.ip), changed: view.changed.map((l) => l.ip) }, 'BMC leases changed');
      }
      // the first view starts the first full cycle; later changes get a quick cycle of their own
      if (!late.started) startReporting();
      else if (fresh.length > 0) late.reporter?.leasesChanged(fresh);
    },
    onError: (err) => {
      if (!late.started) startReporting();
      metrics.leaseErrors.inc();
      // (through lateLeases: an error of the first read comes while watchLeases() has not returned yet)
      if ((lateLeases.current?.() ?? []).length === 0) leaseProblem = err.message;
      logger.error({ file: config.leases.file, err }, 'cannot use the lease file; keeping the last good view');
    },
    // the end of an error logged above, once (a file back under the size bound, written whole)
    onRecovered: (ended) => logger.info({ file: config.leases.file, ended: ended.message }, 'the lease file can be used again'),
    onSkipped: (entries) => {
      metrics.leaseEntriesSkipped.inc(entries.length);
      // each is told once, but a file of many bad entries (a wrong file) must not flood the log
      for (const err of entries.slice(0, SKIPPED_ENTRIES_LOGGED)) logger.warn({ file: err.source, line: err.line, err }, 'lease file entry cannot be read; left out, the rest of the file read');
      const more = entries.slice(SKIPPED_ENTRIES_LOGGED);
      if (more.length > 0) logger.warn({ files: [...new Set(more.map((err) => err.source))], count: more.length }, 'more lease file entries cannot be read; left out, the rest of the file read');
    },
    // no lease file error: the poll reads every change (2 s at most), and readiness does not depend on it
    onWatchError: (err) => logger.warn({ file: config.leases.file, err }, "cannot watch the lease file's folder; its changes are read by the poll, and the watch is tried again"),
  });
  lateLeases.current = () => watcher.current();
  // the BMC reads of report cycles on every core (report/worker-pool.ts); 0: in this thread
  const reportWorkers = config.report.workers > 0 ? createReportWorkerPool({ workers: config.report.workers, settings, logger, guidMaxAgeMs: config.report.guidMaxAgeMs, ...(redfishSessions ? { redfishSessions } : {}), ...(trust.redfishVerified ? {} : { trust, trustMetrics }) }) : undefined;
  if (reportWorkers) registerReportWorkerMetrics(registry, () => reportWorkers.stats());
  // which BMC reports which machine UUID, kept over restarts (a first cycle must not hand a UUID to whoever answers first)
  const uuidOwners = openUuidOwnersFile({ file: join(config.stateDir, UUID_OWNERS_FILE), logger });
  registerStateFileMetrics(registry, { [TRUST_FILE]: trust.store, [UUID_OWNERS_FILE]: uuidOwners });
  const ledMemory = createLedMemory();
  const reporter = createReporter({
    partitionId: config.partitionId,
    ledMemory,
    owners: uuidOwners,
    connect: (ip, signal, onAnswer, secondConnection) => connectBmc(ip, { signal, readAhead: true, onAnswer, ...(secondConnection ? { secondConnection } : {}) }),
    ...(reportWorkers ? { reader: reportWorkers } : {}),
    metalApi,
    concurrency: config.report.concurrency,
    bmcTimeoutMs: config.report.bmcTimeoutMs,
    logger,
    metrics,
    intervalMs: config.report.intervalMs,
    repeatLogIntervalMs: config.report.repeatLogIntervalMs,
    leases: () => watcher.current(),
    observer: status,
  });
  late.reporter = reporter;
  // normally the watcher's first read starts reporting; this covers a watcher that reported before
  if (watcher.current().length > 0 || leaseProblem !== 'lease file not read yet') startReporting();
  const firstReadFallback = setTimeout(startReporting, 5000);
  firstReadFallback.unref();
  const stopReporting = async () => {
    // a stop within the first 5 s: the fallback would start the stopped reporter's interval
    clearTimeout(firstReadFallback);
    late.started = true;
    await reporter.stop();
    await reportWorkers?.close();
    // the sessions stay open on the BMCs: the next start resumes them from the file
    await redfishSessions?.close();
    await uuidOwners.close();
    logger.info('report cycles stopped');
  };

  // 3. bus and console parts, in the order given
  const leaseAt = (ip: string) => watcher.current().find((lease) => lease.ip === ip);
  const context: DaemonContext = { config, logger, registry, metalApi, connectBmc, leaseAt, leasesRead: () => leasesRead, status, ledMemory, ...optional('onFatal', options.onFatal) };
  const started: DaemonPart[] = [];
  // every part at once, each within the one shutdown timeout: one after another, each with the
  // whole timeout, the commands part took events (and started commands) while the console part
  // stopped, and its drain ran past the forced exit at the timeout plus 5 s
  const stopStarted = async () => {
    await Promise.all(started.map((p) => p.stop(config.shutdownTimeoutMs).catch((err: Error) => logger.error({ part: p.name, err }, 'stop failed'))));
  };
  try {
    for (const factory of parts) started.push(await factory(context));
  } catch (err) {
    await stopStarted();
    await stopReporting();
    watcher.close();
    throw err;
  }

  // 4. operations listener
  const readiness: Record<string, ReadinessCheck> = { leases: () => leaseProblem };
  for (const p of started) if (p.ready) readiness[p.name] = p.ready;
  let ops: OpsServer;
  const statusHttp = createStatusHttp(status, { onRefused: statusStreamRefusals(registry, logger, 'ops') });
  try {
    const opsRefused = new Counter({ name: 'metal_bmc_ops_connections_refused_total', help: 'connections to the operations listener (METAL_BMC_HTTP_ADDRESS) refused or closed: per-source, total (over the connection bounds), silent (no request within 10 s); host: a request whose Host header is no name of the listener (421); stalled: an answer none of which the peer took for 30 s', labelNames: ['reason'], registers: [registry] });
    ops = await startOpsServer({ host: config.http.host, port: config.http.port, registry, readiness, routes: (req, res) => statusHttp.handle(req, res), onRefused: (why) => opsRefused.inc({ reason: why }), allowedHosts: config.httpAllowedHosts, logger });
  } catch (err) {
    await stopStarted();
    await stopReporting();
    watcher.close();
    throw err;
  }
  logger.info({ ops: `${config.http.host}:${ops.port}`, leaseFile: config.leases.file }, 'metal-bmc running');

  let stopping: Promise<void> | undefined;
  return {
    opsPort: ops.port,
    context,
    reporter,
    status,
    leases: () => watcher.current(),
    stop() {
      stopping ??= (async () => {
        logger.info('metal-bmc stopping');
        // the reporter beside the parts, not after them: a part may take its whole shutdown
        // timeout (a command running), and the forced exit after that would cut off the
        // reporter's own ending (logouts, Close Session, the report workers' sockets)
        await Promise.all([stopStarted(), stopReporting()]);
        watcher.close();
        await closeAllSessions();
        // the trust file is written in bursts: what the last cycle recorded goes to disk now
        await trust.store.close();
        statusHttp.close();
        await ops.close();
        logger.info('metal-bmc stopped');
      })();
      return stopping;
    },
  };
}
