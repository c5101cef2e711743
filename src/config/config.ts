/**
 * The daemon's configuration, read once from the environment with the Go metal-bmc's
 * variable names (METAL_BMC_*), validated, and typed. Durations are milliseconds.
 */
import { isIpv6Cidr, parseIpCidr, type Cidr } from '../net/cidr.js';
import { isIP } from 'node:net';
import { availableParallelism, hostname } from 'node:os';
import { isAbsolute } from 'node:path';
import { BmcError } from '../errors.js';
import { DEFAULT_HEAP_GROWTH_PCT, MAX_HEAP_GROWTH_PCT } from '../heap-growth.js';
import { normalOrigin, parseAuthz, type AuthzRule } from './console-access.js';
import { bytesOf, parseLogSize, type LogSize } from './console-capture.js';
import { withCredentialFiles } from './credentials.js';
import { ConfigError } from './error.js';
import { formatDuration } from './duration.js';
import { bool, certificateFile, duration, hostPort, int, list, MAX_TIMER_MS, oneOf, port, readableFile, required, secret, show, text, type Env } from './env.js';
import { applyFallbacks } from './fallback.js';
import { guidOrders, type GuidOrdersByVendor } from './guid-orders.js';
import { parseMqAddress } from './mq.js';
import { urlPrefixEntry } from './url-prefix.js';
import { VARIABLES, IGNORED_GO_VARIABLES, UNPREFIXED_FALLBACKS } from './variables.js';

export type LeaseFormat = 'auto' | 'isc' | 'kea';
/** which protocol metal-bmc speaks to BMCs (METAL_BMC_PROTOCOL): Redfish first with IPMI fallback, or one of them only; the facade takes the same values */
export type Protocol = 'auto' | 'redfish' | 'ipmi';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';
const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error'];

export interface Config {
  partitionId: string;
  /** this instance among those serving the partition (METAL_BMC_INSTANCE_ID): owner of console claims */
  instanceId: string;
  logLevel: LogLevel;
  /** caFile: a PEM bundle that replaces Node's CAs for an https metal-api */
  metalApi: { url: string; hmacKey: string; timeoutMs: number; caFile?: string };
  leases: { file: string; format: LeaseFormat; ignoreMacs: string[]; allowedCidrs: Cidr[] };
  /** workers: threads that read the BMCs (METAL_BMC_REPORT_WORKERS); 0: the main thread */
  /**
   * guidMaxAgeMs: how long a BMC's confirmed IPMI GUID serves its reports (outband/guid-memory.ts); 0: an IPMI session every cycle.
   * redfishSessionMaxAgeMs: how long a Redfish session serves a BMC's report reads (outband/redfish-sessions.ts); 0: a login and a logout every read.
   * repeatLogIntervalMs: how long a BMC's lasting read failure or skip goes without another warning (report/bmc-conditions.ts); 0: one every cycle
   */
  report: { intervalMs: number; concurrency: number; bmcTimeoutMs: number; workers: number; guidMaxAgeMs: number; redfishSessionMaxAgeMs: number; repeatLogIntervalMs: number };
  protocol: Protocol;
  /** `guidOrders`: METAL_BMC_GUID_ENCODING, the Get System GUID byte order per vendor (guid-orders.ts) */
  ipmi: { port: number; user: string; password: string; cipherSuite: IpmiCipherSuite; guidOrders: GuidOrdersByVendor };
  redfish: { port: number; insecure: boolean; caFile?: string; legacyTls: boolean; requestTimeoutMs: number; secondConnectionAfterMs: number; hedgeAfterMs: number };
  /** the SSH service of BMCs whose serial console is an SSH command (Dell iDRAC: `console com2`) */
  bmcSsh: { port: number };
  /** trust on first use: a first contact must prove itself over IPMI (METAL_BMC_TRUST_REQUIRE_PROOF) */
  trust: { requireProof: boolean };
  mq: {
    /** as configured; may carry credentials (redactConfig hides them) */
    address: string;
    /** server URLs without credentials */
    servers: string[];
    user?: string;
    password?: string;
    token?: string;
    caCertFile?: string;
    clientCertFile?: string;
    clientKeyFile?: string;
    machineTopic: string;
    machineTopicTtlMs: number;
    /** max_age of the machine event stream; late create/delete events up to this age still run */
    lifecycleRetentionMs: number;
    /** num_replicas of the machine event stream */
    streamReplicas: number;
    resultTopic: string;
  };
  /** leaderLeaseMs: 0 when every instance takes machine events (METAL_BMC_COMMAND_LEADER_LEASE=0) */
  commands: { concurrency: number; timeoutMs: number; targets: 'leases' | 'any'; queueMax: number; maxInFlight: number; leaderLeaseMs: number };
  firmware: { timeoutMs: number; urlAllow: string[]; allowLoopback: boolean; maxImageBytes: number };
  /** state kept across restarts (firmware jobs) */
  stateDir: string;
  console: {
    port: number;
    caCertFile?: string;
    certFile?: string;
    keyFile?: string;
    wsPort: number;
    token?: string;
    scrollbackBytes: number;
    idleTimeoutMs: number;
    host: string;
    authz: AuthzRule[];
    crlFile?: string;
    allowedOrigins: string[];
    connectionLimits: { perSource: number; total: number };
    maxSessions: number;
    /** hold every reported machine's console and log it (METAL_BMC_CONSOLE_CAPTURE) */
    capture: 'off' | 'all';
    /** who decides which instance holds a captured console: a JetStream KV lease on NATS, or this instance alone */
    ownership: 'nats' | 'local';
    /** an instance without a lease renewal for this long loses its consoles to the others */
    leaseMs: number;
    /** worker threads for IPMI SOL consoles (METAL_BMC_CONSOLE_WORKERS); 0: the main thread */
    workers: number;
    logDir: string;
    logSize: LogSize;
  };
  http: { host: string; port: number };
  /** Host names the operations listener answers besides IP literals, localhost and its own (METAL_BMC_HTTP_ALLOWED_HOSTS; `*`: any) */
  httpAllowedHosts: string[];
  shutdownTimeoutMs: number;
  /** how far the JavaScript heap grows between full garbage collections, percent; 0: V8's own (heap-growth.ts) */
  heapGrowthPct: number;
  /** how long a BMC whose lease vanished stays in the status (GET /v1/status) */
  status: { graceMs: number };
  /** bare names (Go metal-bmc fallbacks such as `MQ_ADDRESS`) whose values were used, for the start log */
  fallbacks: string[];
  /** unknown or ignored METAL_BMC_* variables and lenient readings, one warning each at startup */
  warnings: string[];
}

/** 256 bits, as `openssl rand -hex 32` gives with room to spare; shorter tokens can be guessed offline from a leaked hash or by patient online tries */
const MIN_TOKEN_BYTES = 32;

function ipAddress(env: Env, name: string, fallback: string): string {
  const v = text(env, name) ?? fallback;
  if (isIP(v) === 0) throw new ConfigError(`${show(v)} is not an IP address (examples: 0.0.0.0, 10.1.0.1, ::)`, name);
  return v;
}

/**
 * A folder the daemon writes: absolute, for a relative one is taken from the working folder,
 * which under the systemd unit is / (read-only there: every write would fail).
 */
function absoluteDir(env: Env, name: string, fallback: string): string {
  const v = text(env, name) ?? fallback;
  if (!isAbsolute(v)) throw new ConfigError(`${show(v)} is not an absolute path (a relative one is taken from the working folder, / under systemd); e.g. ${fallback}`, name);
  return v;
}

function logSize(env: Env, name: string): LogSize {
  const parsed = parseLogSize(text(env, name) ?? '8MiB x 4');
  if (typeof parsed === 'string') throw new ConfigError(parsed, name);
  return parsed;
}

const INSTANCE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** The console listeners run: their CA, certificate and key are all set (else the console part, its capture included, stays off). */
export function consoleListening(c: Pick<Config['console'], 'caCertFile' | 'certFile' | 'keyFile'>): boolean {
  return Boolean(c.caCertFile && c.certFile && c.keyFile);
}

/** Every reported machine's console is captured and written under `logDir`: capture on, with the listeners it needs. */
export function consoleCaptured(c: Pick<Config['console'], 'capture' | 'caCertFile' | 'certFile' | 'keyFile'>): boolean {
  return c.capture === 'all' && consoleListening(c);
}

/** The host name as an instance id: characters a NATS subject token or KV key cannot hold become `_`. */
export function defaultInstanceId(host = hostname()): string {
  const id = host.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64);
  return id === '' ? 'metal-bmc' : id;
}

function instanceId(env: Env, name: string): string {
  const v = text(env, name);
  if (v === undefined) return defaultInstanceId();
  if (!INSTANCE_ID.test(v)) throw new ConfigError(`${show(v)} must be 1 to 64 letters, digits, '-' or '_' (it names a NATS key and subject)`, name);
  return v;
}

/** `duration`, at most 10 minutes (leases and waits that longer would leave a partition without an owner for too long) */
function durationUpTo10m(env: Env, name: string, fallback: string, minMs: number): number {
  const ms = duration(env, name, fallback, minMs);
  if (ms > 600_000) throw new ConfigError(`${show(text(env, name) ?? '')} is too long (maximum 10m)`, name);
  return ms;
}

const consoleLease = (env: Env, name: string): number => durationUpTo10m(env, name, '30s', 3000);

/** 0 (off), or at least `minMs`: a shorter one would act at once on everything it watches */
function offOrAtLeast(env: Env, name: string, fallback: string, minMs: number): number {
  const ms = duration(env, name, fallback, 0);
  if (ms !== 0 && ms < minMs) throw new ConfigError(`${show(text(env, name) ?? '')} is too short (minimum ${formatDuration(minMs)}, or 0 for none)`, name);
  return ms;
}

/** 0 (off), or 3s to 10m as the console lease */
function leaderLease(env: Env, name: string): number {
  const ms = durationUpTo10m(env, name, '15s', 0);
  if (ms !== 0 && ms < 3000) throw new ConfigError(`${show(text(env, name) ?? '')} is too short (minimum 3s, or 0 for no leader)`, name);
  return ms;
}

/** As src/ipmi/cipher.ts's CipherChoice and SUPPORTED_SUITE_IDS (config imports nothing above it; a test holds them equal). */
export type IpmiCipherSuite = number | 'auto' | 'encrypted';
export const IPMI_SUITES: readonly number[] = [17, 3, 16, 2, 15, 1];

function ipmiCipherSuite(env: Env, name: string): IpmiCipherSuite {
  const v = text(env, name)?.toLowerCase() ?? 'auto';
  if (v === 'auto' || v === 'encrypted') return v;
  const id = /^\d{1,3}$/.test(v) ? Number(v) : undefined;
  if (id === undefined || !IPMI_SUITES.includes(id)) throw new ConfigError(`${show(v)} is not auto, encrypted or a cipher suite metal-bmc speaks (${IPMI_SUITES.join(', ')})`, name);
  return id;
}

/** 0 (both connections as requests come) to 10m */
const secondConnectionAfter = (env: Env, name: string): number => durationUpTo10m(env, name, '1s', 0);

function consoleAuthz(env: Env, name: string): AuthzRule[] {
  try {
    return parseAuthz(text(env, name) ?? 'any');
  } catch (err) {
    throw new ConfigError((err as Error).message, name);
  }
}

/** Host names, and URL prefixes (with a scheme: http or https, host, port and path only). */
function firmwareUrlAllow(env: Env, name: string): string[] {
  return list(env, name).map((entry) => {
    if (!entry.includes('://')) return entry;
    const prefix = urlPrefixEntry(entry);
    if (typeof prefix !== 'string') return entry;
    // named without what may be a password in it
    const shown = URL.canParse(entry) ? (({ protocol, host, pathname }) => `${protocol}//${host}${pathname}`)(new URL(entry)) : show(entry);
    throw new ConfigError(`${shown} ${prefix} (a URL prefix is scheme://host[:port][/path], e.g. https://images.example.com/firmware/)`, name);
  });
}

/** A size in bytes with a unit (B, KiB, MiB, GiB; k, M, G as their binary multiples), within min..max. */
function byteSize(env: Env, name: string, fallback: string, min: number, max: number): number {
  const v = text(env, name) ?? fallback;
  const m = /^\s*(\d{1,12})\s*([a-z]*)\s*$/i.exec(v);
  const bytes = m ? bytesOf(m[1]!, m[2]!) : undefined;
  if (bytes === undefined) throw new ConfigError(`${show(v)} is not a size (e.g. 512MiB, 2GiB)`, name);
  if (bytes < min || bytes > max) throw new ConfigError(`${show(v)} is out of range (${min} to ${max} bytes)`, name);
  return bytes;
}

/** host names (no port, no scheme), or `*` */
function hostNames(env: Env, name: string): string[] {
  const label = '[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?';
  const nameRe = new RegExp(`^${label}(?:\\.${label})*\\.?$`, 'i');
  return list(env, name).map((h) => {
    if (h !== '*' && !nameRe.test(h)) throw new ConfigError(`${show(h)} is not a host name (a name as Prometheus or a browser puts it in the Host header, without port or scheme, e.g. metal-bmc.mgmt.example; or * for any)`, name);
    return h.toLowerCase();
  });
}

function origins(env: Env, name: string): string[] {
  return list(env, name).map((o) => {
    const origin = normalOrigin(o);
    if (origin === undefined || origin !== o.toLowerCase().replace(/\/$/, '')) throw new ConfigError(`${show(o)} is not an origin (scheme://host[:port], e.g. https://console.example.com)`, name);
    return origin;
  });
}

const MAC = /^[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}$/i;
// NATS subjects: no whitespace, no wildcards.
const TOPIC = /^[^\s*>]+$/;

function metalApiUrl(env: Env): string {
  const name = 'METAL_BMC_METAL_API_URL';
  const v = requiredValue(text(env, name), name);
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw new ConfigError(`${show(v)} is not a URL (example: http://metal-api:8080/metal)`, name);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`${show(v)} must be an http or https URL`, name);
  if (url.hostname === '') throw new ConfigError(`${show(v)} has no host`, name);
  if (url.search !== '' || url.hash !== '') throw new ConfigError(`${show(v)} must not have a query or fragment`, name);
  // metal-api takes reports signed with the HMAC key; undici sends no credentials written in a URL,
  // so a proxy's user and password here were accepted and every report then met a 401
  if (url.username !== '' || url.password !== '') throw new ConfigError('must not carry a user or password (metal-api authenticates by METAL_BMC_METAL_API_HMAC_KEY; credentials in the URL would not be sent)', name);
  return url.href;
}

/** Start-up warnings about defaults that refuse what the Go metal-bmc did, so a migrated partition does not lose it unnoticed. */
function migrationWarnings(env: Env): string[] {
  if (list(env, 'METAL_BMC_FIRMWARE_URL_ALLOW').length > 0) return [];
  return ['METAL_BMC_FIRMWARE_URL_ALLOW is empty: every UPDATE-FIRMWARE event is refused (the Go metal-bmc took any URL); list the host(s) metal-api\'s firmware images come from'];
}

/** Start-up warnings about settings that work but leak or guess credentials. */
function trustWarnings(env: Env, metalApiUrl: string): string[] {
  const warnings: string[] = [];
  if (new URL(metalApiUrl).protocol === 'http:') {
    warnings.push('METAL_BMC_METAL_API_URL uses plain http: BMC passwords from metal-api and the HMAC-signed reports cross the network unencrypted (set METAL_BMC_REQUIRE_TLS=true to refuse this)');
  }
  const unset = ['METAL_BMC_IPMI_USER', 'METAL_BMC_IPMI_PASSWORD'].filter((name) => secret(env, name) === undefined);
  if (unset.length > 0) warnings.push(`${unset.join(' and ')} not set: BMCs are tried with the factory default ADMIN/ADMIN`);
  return warnings;
}

function macs(env: Env, name: string): string[] {
  return list(env, name).map((m) => {
    if (!MAC.test(m)) throw new ConfigError(`${show(m)} is not a MAC address (example: ac:1f:6b:35:ac:62)`, name);
    return m.toLowerCase().replace(/-/g, ':');
  });
}

/**
 * IPv4 and IPv6 blocks, as the Go metal-bmc accepts both. Leases are DHCPv4, so an IPv6 block
 * matches no lease (Go's netip does not match an IPv4 address against an IPv6 prefix, IPv4-mapped
 * ones included); it is accepted with a warning and left out of the IPv4 list the leases are
 * filtered with.
 */
function cidrs(env: Env, name: string, warnings: string[]): Cidr[] {
  const ipv4: Cidr[] = [];
  const given = list(env, name, ['0.0.0.0/0']);
  for (const c of given) {
    let block;
    try {
      block = parseIpCidr(c);
    } catch (err) {
      if (err instanceof BmcError) throw new ConfigError(`${show(c)} is not an IPv4 or IPv6 CIDR (example: 10.1.0.0/16)`, name);
      throw err;
    }
    if (isIpv6Cidr(block)) warnings.push(`${name}: the IPv6 block ${block.text} matches no lease (DHCP leases are IPv4), as in the Go metal-bmc`);
    else ipv4.push(block);
  }
  if (ipv4.length === 0) warnings.push(`${name}: no IPv4 block is listed, so no lease is reported`);
  return ipv4;
}

/** As the Go metal-bmc: an unknown level is not an error; it is info, with a warning. */
function logLevel(env: Env, name: string, warnings: string[]): LogLevel {
  const v = text(env, name);
  if (v === undefined) return 'info';
  const level = LOG_LEVELS.find((l) => l === v.toLowerCase());
  if (level !== undefined) return level;
  warnings.push(`${name}: ${show(v)} is not one of ${LOG_LEVELS.join(', ')}; using info`);
  return 'info';
}

function topic(env: Env, name: string, fallback: string): string {
  const v = text(env, name) ?? fallback;
  if (!TOPIC.test(v)) throw new ConfigError(`${show(v)} is not a valid NATS subject (no whitespace, '*' or '>')`, name);
  return v;
}

function allOrNone(names: string[], values: (string | undefined)[]): void {
  const set = values.filter((v) => v !== undefined).length;
  if (set !== 0 && set !== values.length) {
    const missing = names.filter((_, i) => values[i] === undefined);
    throw new ConfigError(`is set, so ${missing.join(' and ')} must be set as well`, names[values.findIndex((v) => v !== undefined)]);
  }
}

function warningsFor(env: Env): string[] {
  const known = new Set(VARIABLES.map((v) => v.name));
  return Object.keys(env)
    .filter((k) => k.startsWith('METAL_BMC_') && !known.has(k))
    .sort()
    .map((k) => (IGNORED_GO_VARIABLES.includes(k) ? `${k} is not used by this implementation and is ignored` : `${k} is not a known variable (typo?) and is ignored`));
}

/** The stream keeps events at least as long as commands are valid, or a fresh command could expire unseen. */
function retention(env: Env, ttlMs: number): number {
  const name = 'METAL_BMC_LIFECYCLE_RETENTION';
  const ms = duration(env, name, '24h');
  if (ms < ttlMs) throw new ConfigError(`${show(text(env, name) ?? '')} is shorter than METAL_BMC_MACHINE_TOPIC_TTL (${ttlMs} ms); events must be kept at least as long as they are valid`, name);
  return ms;
}

/**
 * Report worker threads by default: cores - 1, at most 4, and none on two cores or fewer. There a
 * worker shares its core with the main thread, and two isolates cost ~110 MiB more at the peak,
 * over issue 15's 250 MiB goal, for a gain that varies from run to run (report-latency, 1,000
 * BMCs on two cores with the simulator, 2026-12-06: two workers 5.70, 6.36 and 7.36 s against the
 * main thread's 7.32, 7.23 and 6.91 s, at ~290–311 MiB against ~200 MiB; docs/performance.md).
 */
export function defaultReportWorkers(cores: number): number {
  return cores <= 2 ? 0 : Math.min(4, cores - 1);
}

/**
 * Console workers by default: cores - 1, at least 1, at most 4. Each is started with the daemon
 * (~8.5 MiB as a bare isolate, more from the bundle), and one carried 1,000 idle consoles at ~2 %
 * of a core and a 100-machine boot storm at full line speed at ~0.5 of one (console-idle,
 * console-capture): uncapped, a 64-core server started 63 of them against the unit's MemoryMax.
 */
export function defaultConsoleWorkers(cores: number): number {
  return Math.max(1, Math.min(4, cores - 1));
}

/**
 * Reads and validates every METAL_BMC_* variable (and the bare names the Go metal-bmc falls
 * back to); throws ConfigError on the first invalid one, naming the variable the value came from.
 * systemd credentials supply METAL_BMC_ names, so they win over bare names like those do.
 */
export function loadConfig(processEnv: NodeJS.ProcessEnv = process.env): Config {
  const { env, fromFallback, warnings } = applyFallbacks(withCredentialFiles(processEnv), UNPREFIXED_FALLBACKS);
  try {
    return readConfig(env, [...fromFallback.values()].sort(), warnings);
  } catch (err) {
    const bare = err instanceof ConfigError && err.variable !== undefined ? fromFallback.get(err.variable) : undefined;
    if (bare === undefined || !(err instanceof ConfigError)) throw err;
    throw new ConfigError(err.message.slice(`${err.variable}: `.length), bare, { cause: err });
  }
}

/** `is required but not set` names the bare fallback too, when there is one. */
function requiredValue(value: string | undefined, name: string): string {
  const bare = UNPREFIXED_FALLBACKS[name];
  if (value === undefined && bare !== undefined) throw new ConfigError(`is required but not set (nor is ${bare})`, name);
  return required(value, name);
}

function readConfig(env: Env, fallbacks: string[], warnings: string[]): Config {
  const partitionId = requiredValue(text(env, 'METAL_BMC_PARTITION_ID'), 'METAL_BMC_PARTITION_ID');
  if (!TOPIC.test(partitionId)) throw new ConfigError(`${show(partitionId)} must not contain whitespace, '*' or '>' (it names NATS subjects)`, 'METAL_BMC_PARTITION_ID');
  const url = metalApiUrl(env);
  if (bool(env, 'METAL_BMC_REQUIRE_TLS', false) && new URL(url).protocol !== 'https:') {
    throw new ConfigError('uses plain http, and METAL_BMC_REQUIRE_TLS is true (metal-api answers BMC passwords on GET .../ipmi: use https)', 'METAL_BMC_METAL_API_URL');
  }
  const hmacKey = requiredValue(secret(env, 'METAL_BMC_METAL_API_HMAC_KEY'), 'METAL_BMC_METAL_API_HMAC_KEY');
  const metalApiCa = certificateFile(env, 'METAL_BMC_METAL_API_CA_FILE');

  const mqAddress = text(env, 'METAL_BMC_MQ_ADDRESS') ?? `nats://localhost:4222`;
  const mq = parseMqAddress(mqAddress, 'METAL_BMC_MQ_ADDRESS');
  const mqCa = readableFile(env, 'METAL_BMC_MQ_CA_CERT_FILE');
  const mqCert = readableFile(env, 'METAL_BMC_MQ_CLIENT_CERT_FILE');
  const mqKey = readableFile(env, 'METAL_BMC_MQ_CLIENT_CERT_KEY_FILE');
  allOrNone(['METAL_BMC_MQ_CLIENT_CERT_FILE', 'METAL_BMC_MQ_CLIENT_CERT_KEY_FILE'], [mqCert, mqKey]);

  const consoleCa = readableFile(env, 'METAL_BMC_CONSOLE_CA_CERT_FILE');
  const consoleCert = readableFile(env, 'METAL_BMC_CONSOLE_CERT_FILE');
  const consoleKey = readableFile(env, 'METAL_BMC_CONSOLE_KEY_FILE');
  allOrNone(['METAL_BMC_CONSOLE_CA_CERT_FILE', 'METAL_BMC_CONSOLE_CERT_FILE', 'METAL_BMC_CONSOLE_KEY_FILE'], [consoleCa, consoleCert, consoleKey]);
  const consoleToken = secret(env, 'METAL_BMC_CONSOLE_TOKEN');
  if (consoleToken !== undefined && Buffer.byteLength(consoleToken) < MIN_TOKEN_BYTES) {
    throw new ConfigError(`is ${Buffer.byteLength(consoleToken)} bytes long; a console token needs at least ${MIN_TOKEN_BYTES} (e.g. openssl rand -hex 32)`, 'METAL_BMC_CONSOLE_TOKEN');
  }
  const consoleCrl = readableFile(env, 'METAL_BMC_CONSOLE_CRL_FILE');
  const redfishCa = readableFile(env, 'METAL_BMC_REDFISH_CA_FILE');
  const ttlMs = duration(env, 'METAL_BMC_MACHINE_TOPIC_TTL', '30s', 1000);

  const config: Config = {
    partitionId,
    instanceId: instanceId(env, 'METAL_BMC_INSTANCE_ID'),
    logLevel: logLevel(env, 'METAL_BMC_LOG_LEVEL', warnings),
    metalApi: { url, hmacKey, timeoutMs: duration(env, 'METAL_BMC_METAL_API_TIMEOUT', '30s', 1000), ...(metalApiCa === undefined ? {} : { caFile: metalApiCa }) },
    leases: {
      file: text(env, 'METAL_BMC_LEASE_FILE') ?? '/var/lib/dhcp/dhcpd.leases',
      format: oneOf(env, 'METAL_BMC_LEASE_FORMAT', ['auto', 'isc', 'kea'] as const, 'auto'),
      ignoreMacs: macs(env, 'METAL_BMC_IGNORE_MACS'),
      allowedCidrs: cidrs(env, 'METAL_BMC_ALLOWED_CIDRS', warnings),
    },
    report: {
      intervalMs: duration(env, 'METAL_BMC_REPORT_INTERVAL', '5m', 1000),
      concurrency: int(env, 'METAL_BMC_REPORT_CONCURRENCY', 1024, 1, 10_000),
      bmcTimeoutMs: duration(env, 'METAL_BMC_BMC_TIMEOUT', '20s', 1000),
      workers: int(env, 'METAL_BMC_REPORT_WORKERS', defaultReportWorkers(availableParallelism()), 0, 64),
      guidMaxAgeMs: duration(env, 'METAL_BMC_REPORT_GUID_MAX_AGE', '1h', 0),
      redfishSessionMaxAgeMs: duration(env, 'METAL_BMC_REPORT_REDFISH_SESSION_MAX_AGE', '1h', 0),
      repeatLogIntervalMs: duration(env, 'METAL_BMC_REPORT_REPEAT_LOG_INTERVAL', '1h', 0),
    },
    protocol: oneOf(env, 'METAL_BMC_PROTOCOL', ['auto', 'redfish', 'ipmi'] as const, 'auto'),
    trust: { requireProof: bool(env, 'METAL_BMC_TRUST_REQUIRE_PROOF', false) },
    ipmi: {
      port: port(env, 'METAL_BMC_IPMI_PORT', 623),
      user: text(env, 'METAL_BMC_IPMI_USER') ?? 'ADMIN',
      password: secret(env, 'METAL_BMC_IPMI_PASSWORD') ?? 'ADMIN',
      cipherSuite: ipmiCipherSuite(env, 'METAL_BMC_IPMI_CIPHER_SUITE'),
      guidOrders: guidOrders(env, 'METAL_BMC_GUID_ENCODING'),
    },
    redfish: {
      port: port(env, 'METAL_BMC_REDFISH_PORT', 443),
      insecure: bool(env, 'METAL_BMC_REDFISH_INSECURE', true),
      legacyTls: bool(env, 'METAL_BMC_REDFISH_LEGACY_TLS', false),
      requestTimeoutMs: duration(env, 'METAL_BMC_REDFISH_TIMEOUT', '10s', 1000),
      secondConnectionAfterMs: secondConnectionAfter(env, 'METAL_BMC_REDFISH_SECOND_CONNECTION_AFTER'),
      hedgeAfterMs: durationUpTo10m(env, 'METAL_BMC_REDFISH_HEDGE_AFTER', '1s', 0),
      ...(redfishCa === undefined ? {} : { caFile: redfishCa }),
    },
    bmcSsh: { port: port(env, 'METAL_BMC_BMC_SSH_PORT', 22) },
    mq: {
      address: mqAddress,
      ...mq,
      ...(mqCa === undefined ? {} : { caCertFile: mqCa }),
      ...(mqCert === undefined ? {} : { clientCertFile: mqCert }),
      ...(mqKey === undefined ? {} : { clientKeyFile: mqKey }),
      machineTopic: topic(env, 'METAL_BMC_MACHINE_TOPIC', `${partitionId}-machine`),
      machineTopicTtlMs: ttlMs,
      lifecycleRetentionMs: retention(env, ttlMs),
      streamReplicas: int(env, 'METAL_BMC_STREAM_REPLICAS', 1, 1, 5),
      resultTopic: topic(env, 'METAL_BMC_RESULT_TOPIC', `${partitionId}-machine-result`),
    },
    commands: {
      concurrency: int(env, 'METAL_BMC_COMMAND_CONCURRENCY', 32, 1, 10_000),
      timeoutMs: duration(env, 'METAL_BMC_COMMAND_TIMEOUT', '60s', 1000),
      targets: oneOf(env, 'METAL_BMC_COMMAND_TARGETS', ['leases', 'any'] as const, 'leases'),
      queueMax: int(env, 'METAL_BMC_COMMAND_QUEUE_MAX', 16, 1, 10_000),
      maxInFlight: int(env, 'METAL_BMC_COMMAND_MAX_IN_FLIGHT', 64, 1, 100_000),
      leaderLeaseMs: leaderLease(env, 'METAL_BMC_COMMAND_LEADER_LEASE'),
    },
    firmware: {
      timeoutMs: duration(env, 'METAL_BMC_FIRMWARE_TIMEOUT', '30m', 60_000),
      urlAllow: firmwareUrlAllow(env, 'METAL_BMC_FIRMWARE_URL_ALLOW'),
      allowLoopback: bool(env, 'METAL_BMC_FIRMWARE_ALLOW_LOOPBACK', false),
      maxImageBytes: byteSize(env, 'METAL_BMC_FIRMWARE_MAX_IMAGE_SIZE', '512MiB', 1 << 20, 16 * 2 ** 30),
    },
    stateDir: absoluteDir(env, 'METAL_BMC_STATE_DIR', '/var/lib/metal-bmc'),
    console: {
      port: port(env, 'METAL_BMC_CONSOLE_PORT', 3333, true),
      ...(consoleCa === undefined ? {} : { caCertFile: consoleCa }),
      ...(consoleCert === undefined ? {} : { certFile: consoleCert }),
      ...(consoleKey === undefined ? {} : { keyFile: consoleKey }),
      wsPort: port(env, 'METAL_BMC_CONSOLE_WS_PORT', 3334, true),
      ...(consoleToken === undefined ? {} : { token: consoleToken }),
      scrollbackBytes: int(env, 'METAL_BMC_CONSOLE_SCROLLBACK', 65_536, 0, 1 << 30),
      idleTimeoutMs: offOrAtLeast(env, 'METAL_BMC_CONSOLE_IDLE_TIMEOUT', '30m', 10_000),
      host: ipAddress(env, 'METAL_BMC_CONSOLE_ADDRESS', '0.0.0.0'),
      authz: consoleAuthz(env, 'METAL_BMC_CONSOLE_AUTHZ'),
      ...(consoleCrl === undefined ? {} : { crlFile: consoleCrl }),
      allowedOrigins: origins(env, 'METAL_BMC_CONSOLE_ALLOWED_ORIGINS'),
      connectionLimits: {
        perSource: int(env, 'METAL_BMC_CONSOLE_MAX_CONNECTIONS_PER_SOURCE', 32, 1, 1_000_000),
        total: int(env, 'METAL_BMC_CONSOLE_MAX_CONNECTIONS', 1024, 1, 1_000_000),
      },
      maxSessions: int(env, 'METAL_BMC_CONSOLE_MAX_SESSIONS', 1000, 1, 1_000_000),
      capture: oneOf(env, 'METAL_BMC_CONSOLE_CAPTURE', ['off', 'all'] as const, 'off'),
      ownership: oneOf(env, 'METAL_BMC_CONSOLE_OWNERSHIP', ['nats', 'local'] as const, 'nats'),
      leaseMs: consoleLease(env, 'METAL_BMC_CONSOLE_LEASE'),
      workers: int(env, 'METAL_BMC_CONSOLE_WORKERS', defaultConsoleWorkers(availableParallelism()), 0, 64),
      logDir: absoluteDir(env, 'METAL_BMC_CONSOLE_LOG_DIR', `${text(env, 'METAL_BMC_STATE_DIR') ?? '/var/lib/metal-bmc'}/console`),
      logSize: logSize(env, 'METAL_BMC_CONSOLE_LOG_SIZE'),
    },
    http: hostPort(env, 'METAL_BMC_HTTP_ADDRESS', '127.0.0.1:2112'),
    httpAllowedHosts: hostNames(env, 'METAL_BMC_HTTP_ALLOWED_HOSTS'),
    // the forced exit waits 5 s longer (cli/serve.ts): a timer past setTimeout's limit fires at once
    shutdownTimeoutMs: duration(env, 'METAL_BMC_SHUTDOWN_TIMEOUT', '30s', 1000, MAX_TIMER_MS - 5000),
    heapGrowthPct: int(env, 'METAL_BMC_HEAP_GROWTH', DEFAULT_HEAP_GROWTH_PCT, 0, MAX_HEAP_GROWTH_PCT),
    status: { graceMs: duration(env, 'METAL_BMC_STATUS_GRACE', '1h', 0) },
    fallbacks,
    warnings: [...warnings, ...warningsFor(env), ...trustWarnings(env, url), ...migrationWarnings(env)],
  };
  return config;
}
