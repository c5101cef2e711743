import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ConfigError, loadConfig, redactConfig, VARIABLES } from '../../src/config/index.js';
import { defaultConsoleWorkers, defaultInstanceId, defaultReportWorkers } from '../../src/config/config.js';
import { GO_METAL_BMC, goColumn, IGNORED_GO_VARIABLES, UNPREFIXED_FALLBACKS } from '../../src/config/variables.js';
import { parseMqAddress, redactMqAddress } from '../../src/config/mq.js';

const HMAC = 'hmac-secret-value-0123';
const BASE = {
  METAL_BMC_PARTITION_ID: 'fra-equ01',
  METAL_BMC_METAL_API_URL: 'http://metal-api:8080/metal',
  METAL_BMC_METAL_API_HMAC_KEY: HMAC,
};

const dir = mkdtempSync(join(tmpdir(), 'metal-bmc-config-'));
const file = (name: string): string => {
  const path = join(dir, name);
  writeFileSync(path, 'pem');
  return path;
};

function load(extra: Record<string, string | undefined> = {}) {
  return loadConfig({ ...BASE, ...extra });
}

function errorOf(extra: Record<string, string | undefined>, base: Record<string, string> = BASE): ConfigError {
  try {
    loadConfig({ ...base, ...extra });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('CONFIG');
    expect((err as Error).message).not.toMatch(/\n/);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig defaults', () => {
  it('fills every default from the three required variables', () => {
    const c = load();
    expect({ ...c, leases: { ...c.leases, allowedCidrs: c.leases.allowedCidrs.map((x) => x.text) } }).toEqual({
      partitionId: 'fra-equ01',
      instanceId: defaultInstanceId(),
      logLevel: 'info',
      metalApi: { url: 'http://metal-api:8080/metal', hmacKey: HMAC, timeoutMs: 30_000 },
      leases: { file: '/var/lib/dhcp/dhcpd.leases', format: 'auto', ignoreMacs: [], allowedCidrs: ['0.0.0.0/0'] },
      report: { intervalMs: 300_000, concurrency: 1024, bmcTimeoutMs: 20_000, workers: defaultReportWorkers(availableParallelism()), guidMaxAgeMs: 3_600_000, redfishSessionMaxAgeMs: 3_600_000, repeatLogIntervalMs: 3_600_000 },
      protocol: 'auto',
      trust: { requireProof: false },
      ipmi: { port: 623, user: 'ADMIN', password: 'ADMIN', cipherSuite: 'auto', guidOrders: {} },
      redfish: { port: 443, insecure: true, legacyTls: false, requestTimeoutMs: 10_000, secondConnectionAfterMs: 1000, hedgeAfterMs: 1000 },
      bmcSsh: { port: 22 },
      mq: {
        address: 'nats://localhost:4222',
        servers: ['nats://localhost:4222'],
        machineTopic: 'fra-equ01-machine',
        machineTopicTtlMs: 30_000,
        lifecycleRetentionMs: 86_400_000,
        streamReplicas: 1,
        resultTopic: 'fra-equ01-machine-result',
      },
      commands: { concurrency: 32, timeoutMs: 60_000, targets: 'leases', queueMax: 16, maxInFlight: 64, leaderLeaseMs: 15_000 },
      firmware: { timeoutMs: 1_800_000, urlAllow: [], allowLoopback: false, maxImageBytes: 512 * 2 ** 20 },
      stateDir: '/var/lib/metal-bmc',
      console: {
        port: 3333,
        wsPort: 3334,
        scrollbackBytes: 65_536,
        idleTimeoutMs: 1_800_000,
        host: '0.0.0.0',
        authz: [{ kind: 'any' }],
        allowedOrigins: [],
        connectionLimits: { perSource: 32, total: 1024 },
        maxSessions: 1000,
        capture: 'off',
        ownership: 'nats',
        leaseMs: 30_000,
        workers: defaultConsoleWorkers(availableParallelism()),
        logDir: '/var/lib/metal-bmc/console',
        logSize: { fileBytes: 8 << 20, files: 4 },
      },
      http: { host: '127.0.0.1', port: 2112 },
      httpAllowedHosts: [],
      shutdownTimeoutMs: 30_000,
      heapGrowthPct: 100,
      status: { graceMs: 3_600_000 },
      fallbacks: [],
      warnings: [expect.stringMatching(/uses plain http/), expect.stringMatching(/factory default ADMIN\/ADMIN/), expect.stringMatching(/FIRMWARE_URL_ALLOW is empty/)],
    });
  });

  it('treats blank values as unset', () => {
    expect(load({ METAL_BMC_REPORT_INTERVAL: '  ', METAL_BMC_CONSOLE_TOKEN: '' }).report.intervalMs).toBe(300_000);
    expect(load({ METAL_BMC_CONSOLE_TOKEN: '' }).console.token).toBeUndefined();
  });

  it('reads every variable when set', () => {
    const c = load({
      METAL_BMC_LEASE_FILE: '/tmp/kea-leases4.csv',
      METAL_BMC_LEASE_FORMAT: 'KEA',
      METAL_BMC_REPORT_INTERVAL: '1h30m',
      METAL_BMC_IPMI_PORT: '6230',
      METAL_BMC_IPMI_USER: 'root',
      METAL_BMC_IPMI_PASSWORD: ' calvin ',
      METAL_BMC_IPMI_CIPHER_SUITE: '17',
      METAL_BMC_GUID_ENCODING: 'hpe=rfc4122',
      METAL_BMC_IGNORE_MACS: 'AC:1F:6B:35:AC:62, 00-11-22-33-44-55,',
      METAL_BMC_ALLOWED_CIDRS: '10.1.0.0/16,192.168.1.7/24',
      METAL_BMC_MQ_ADDRESS: 'nats://bmc:pw@nats-1:4222,nats-2',
      METAL_BMC_MQ_CA_CERT_FILE: file('mq-ca.pem'),
      METAL_BMC_MQ_CLIENT_CERT_FILE: file('mq-cert.pem'),
      METAL_BMC_MQ_CLIENT_CERT_KEY_FILE: file('mq-key.pem'),
      METAL_BMC_MACHINE_TOPIC: 'machines',
      METAL_BMC_MACHINE_TOPIC_TTL: '45s',
      METAL_BMC_RESULT_TOPIC: 'results',
      METAL_BMC_CONSOLE_PORT: '4333',
      METAL_BMC_CONSOLE_CA_CERT_FILE: file('ca.pem'),
      METAL_BMC_CONSOLE_CERT_FILE: file('cert.pem'),
      METAL_BMC_CONSOLE_KEY_FILE: file('key.pem'),
      METAL_BMC_CONSOLE_WS_PORT: '0',
      METAL_BMC_CONSOLE_TOKEN: 'console-token-1-0123456789abcdef-0123',
      METAL_BMC_CONSOLE_SCROLLBACK: '1024',
      METAL_BMC_CONSOLE_IDLE_TIMEOUT: '0',
      METAL_BMC_REDFISH_PORT: '8443',
      METAL_BMC_BMC_SSH_PORT: '2222',
      METAL_BMC_REDFISH_INSECURE: 'no',
      METAL_BMC_REDFISH_CA_FILE: file('bmc-ca.pem'),
      METAL_BMC_REDFISH_LEGACY_TLS: 'yes',
      METAL_BMC_REDFISH_TIMEOUT: '45s',
      METAL_BMC_REDFISH_SECOND_CONNECTION_AFTER: '2s',
      METAL_BMC_PROTOCOL: 'ipmi',
      METAL_BMC_REPORT_CONCURRENCY: '8',
      METAL_BMC_REPORT_WORKERS: '3',
      METAL_BMC_REPORT_GUID_MAX_AGE: '90m',
      METAL_BMC_REPORT_REDFISH_SESSION_MAX_AGE: '20m',
      METAL_BMC_REPORT_REPEAT_LOG_INTERVAL: '6h',
      METAL_BMC_BMC_TIMEOUT: '1.5s',
      METAL_BMC_COMMAND_CONCURRENCY: '4',
      METAL_BMC_COMMAND_TIMEOUT: '2m',
      METAL_BMC_COMMAND_QUEUE_MAX: '3',
      METAL_BMC_COMMAND_MAX_IN_FLIGHT: '7',
      METAL_BMC_COMMAND_LEADER_LEASE: '1m',
      METAL_BMC_HTTP_ADDRESS: ':9100',
      METAL_BMC_SHUTDOWN_TIMEOUT: '1500ms',
      METAL_BMC_LOG_LEVEL: 'DEBUG',
      METAL_BMC_LIFECYCLE_RETENTION: '2h',
      METAL_BMC_STREAM_REPLICAS: '3',
      METAL_BMC_FIRMWARE_TIMEOUT: '45m',
      METAL_BMC_FIRMWARE_MAX_IMAGE_SIZE: '2GiB',
      METAL_BMC_STATE_DIR: '/srv/metal-bmc',
    });
    expect(c.mq).toMatchObject({ lifecycleRetentionMs: 7_200_000, streamReplicas: 3 });
    expect(c.firmware).toEqual({ timeoutMs: 2_700_000, urlAllow: [], allowLoopback: false, maxImageBytes: 2 * 2 ** 30 });
    expect(c.stateDir).toBe('/srv/metal-bmc');
    expect(c.leases).toMatchObject({ file: '/tmp/kea-leases4.csv', format: 'kea', ignoreMacs: ['ac:1f:6b:35:ac:62', '00:11:22:33:44:55'] });
    expect(c.leases.allowedCidrs.map((x) => x.text)).toEqual(['10.1.0.0/16', '192.168.1.0/24']);
    expect(c.report).toEqual({ intervalMs: 5_400_000, concurrency: 8, bmcTimeoutMs: 1500, workers: 3, guidMaxAgeMs: 5_400_000, redfishSessionMaxAgeMs: 1_200_000, repeatLogIntervalMs: 21_600_000 });
    expect(c.ipmi).toEqual({ port: 6230, user: 'root', password: ' calvin ', cipherSuite: 17, guidOrders: { hpe: 'rfc4122' } });
    expect(c.bmcSsh).toEqual({ port: 2222 });
    expect(c.redfish).toEqual({ port: 8443, insecure: false, caFile: join(dir, 'bmc-ca.pem'), legacyTls: true, requestTimeoutMs: 45_000, secondConnectionAfterMs: 2000, hedgeAfterMs: 1000 });
    expect(c.protocol).toBe('ipmi');
    expect(c.mq).toMatchObject({ servers: ['nats://nats-1:4222', 'nats://nats-2:4222'], user: 'bmc', password: 'pw', machineTopic: 'machines', machineTopicTtlMs: 45_000, resultTopic: 'results' });
    expect(c.mq.clientKeyFile).toBe(join(dir, 'mq-key.pem'));
    expect(c.console).toMatchObject({ port: 4333, wsPort: 0, token: 'console-token-1-0123456789abcdef-0123', scrollbackBytes: 1024, idleTimeoutMs: 0, keyFile: join(dir, 'key.pem') });
    expect(c.commands).toEqual({ concurrency: 4, timeoutMs: 120_000, targets: 'leases', queueMax: 3, maxInFlight: 7, leaderLeaseMs: 60_000 });
    expect(c.http).toEqual({ host: '0.0.0.0', port: 9100 });
    expect(c.shutdownTimeoutMs).toBe(1500);
    expect(c.logLevel).toBe('debug');
  });

  it.each([
    ['true', true],
    ['TRUE', true],
    ['1', true],
    ['yes', true],
    ['false', false],
    ['0', false],
    ['No', false],
  ])('reads the boolean %s', (value, expected) => {
    expect(load({ METAL_BMC_REDFISH_INSECURE: value }).redfish.insecure).toBe(expected);
  });

  it('refuses a lifecycle retention shorter than the topic TTL, and replicas outside 1..5', () => {
    expect(() => load({ METAL_BMC_MACHINE_TOPIC_TTL: '1m', METAL_BMC_LIFECYCLE_RETENTION: '30s' })).toThrow(/METAL_BMC_LIFECYCLE_RETENTION.*shorter than METAL_BMC_MACHINE_TOPIC_TTL/);
    expect(load({ METAL_BMC_MACHINE_TOPIC_TTL: '1m', METAL_BMC_LIFECYCLE_RETENTION: '1m' }).mq.lifecycleRetentionMs).toBe(60_000);
    expect(() => load({ METAL_BMC_STREAM_REPLICAS: '0' })).toThrow(/METAL_BMC_STREAM_REPLICAS/);
    expect(() => load({ METAL_BMC_STREAM_REPLICAS: '7' })).toThrow(/METAL_BMC_STREAM_REPLICAS/);
  });

  it('accepts IPv6 and host names in the HTTP address', () => {
    expect(load({ METAL_BMC_HTTP_ADDRESS: '[::1]:2112' }).http).toEqual({ host: '::1', port: 2112 });
    expect(load({ METAL_BMC_HTTP_ADDRESS: 'localhost:0' }).http).toEqual({ host: 'localhost', port: 0 });
  });

  it('reads the Host names the operations listener answers, and refuses one with a port or a scheme', () => {
    expect(load({ METAL_BMC_HTTP_ALLOWED_HOSTS: 'Metal-BMC.mgmt.example, prom_target ,*' }).httpAllowedHosts).toEqual(['metal-bmc.mgmt.example', 'prom_target', '*']);
    for (const bad of ['metal-bmc:2112', 'http://metal-bmc', '-x', 'a..b']) expect(() => load({ METAL_BMC_HTTP_ALLOWED_HOSTS: bad }), bad).toThrow(/METAL_BMC_HTTP_ALLOWED_HOSTS: .* is not a host name/);
  });

  it('warns about unknown and ignored METAL_BMC_* variables', () => {
    expect(load({ METAL_BMC_REPORT_INTERVALL: '1m', METAL_BMC_TOKEN_FILE: '/x', OTHER: '1' }).warnings.slice(0, 2)).toEqual([
      'METAL_BMC_REPORT_INTERVALL is not a known variable (typo?) and is ignored',
      'METAL_BMC_TOKEN_FILE is not used by this implementation and is ignored',
    ]);
  });
});

describe('loadConfig errors name the variable', () => {
  it.each(['METAL_BMC_PARTITION_ID', 'METAL_BMC_METAL_API_URL', 'METAL_BMC_METAL_API_HMAC_KEY'])('requires %s', (name) => {
    const err = errorOf({ [name]: undefined });
    expect(err.message).toBe(`${name}: is required but not set (nor is ${name.slice('METAL_BMC_'.length)})`);
    expect(err.variable).toBe(name);
  });

  it.each([
    ['METAL_BMC_REPORT_INTERVAL', '5x', 'METAL_BMC_REPORT_INTERVAL: "5x" is not a duration (examples: 30s, 5m, 1h30m)'],
    ['METAL_BMC_REPORT_INTERVAL', '5', 'METAL_BMC_REPORT_INTERVAL: "5" is not a duration (examples: 30s, 5m, 1h30m)'],
    ['METAL_BMC_REPORT_INTERVAL', '0s', 'METAL_BMC_REPORT_INTERVAL: "0s" is too short (minimum 1s)'],
    ['METAL_BMC_REPORT_INTERVAL', '-5m', 'METAL_BMC_REPORT_INTERVAL: "-5m" is too short (minimum 1s)'],
    // below these a setting cannot work: every event expired on arrival, every BMC or command cut at once
    ['METAL_BMC_MACHINE_TOPIC_TTL', '1ms', 'METAL_BMC_MACHINE_TOPIC_TTL: "1ms" is too short (minimum 1s)'],
    ['METAL_BMC_BMC_TIMEOUT', '999ms', 'METAL_BMC_BMC_TIMEOUT: "999ms" is too short (minimum 1s)'],
    ['METAL_BMC_REDFISH_TIMEOUT', '10ms', 'METAL_BMC_REDFISH_TIMEOUT: "10ms" is too short (minimum 1s)'],
    ['METAL_BMC_COMMAND_TIMEOUT', '500ms', 'METAL_BMC_COMMAND_TIMEOUT: "500ms" is too short (minimum 1s)'],
    ['METAL_BMC_FIRMWARE_TIMEOUT', '30s', 'METAL_BMC_FIRMWARE_TIMEOUT: "30s" is too short (minimum 1m0s)'],
    ['METAL_BMC_FIRMWARE_MAX_IMAGE_SIZE', '512 furlongs', 'METAL_BMC_FIRMWARE_MAX_IMAGE_SIZE: "512 furlongs" is not a size (e.g. 512MiB, 2GiB)'],
    ['METAL_BMC_FIRMWARE_MAX_IMAGE_SIZE', '1KiB', 'METAL_BMC_FIRMWARE_MAX_IMAGE_SIZE: "1KiB" is out of range (1048576 to 17179869184 bytes)'],
    ['METAL_BMC_SHUTDOWN_TIMEOUT', '1ms', 'METAL_BMC_SHUTDOWN_TIMEOUT: "1ms" is too short (minimum 1s)'],
    ['METAL_BMC_CONSOLE_IDLE_TIMEOUT', '1ms', 'METAL_BMC_CONSOLE_IDLE_TIMEOUT: "1ms" is too short (minimum 10s, or 0 for none)'],
    ['METAL_BMC_REPORT_INTERVAL', '1000h', 'METAL_BMC_REPORT_INTERVAL: "1000h" is too long (maximum 596h31m23.647s)'],
    ['METAL_BMC_MACHINE_TOPIC_TTL', 'soon', 'METAL_BMC_MACHINE_TOPIC_TTL: "soon" is not a duration (examples: 30s, 5m, 1h30m)'],
    ['METAL_BMC_CONSOLE_IDLE_TIMEOUT', '-1s', 'METAL_BMC_CONSOLE_IDLE_TIMEOUT: "-1s" is too short (minimum 0s)'],
    ['METAL_BMC_BMC_TIMEOUT', '20', 'METAL_BMC_BMC_TIMEOUT: "20" is not a duration (examples: 30s, 5m, 1h30m)'],
    ['METAL_BMC_COMMAND_TIMEOUT', '1d', 'METAL_BMC_COMMAND_TIMEOUT: "1d" is not a duration (examples: 30s, 5m, 1h30m)'],
    ['METAL_BMC_SHUTDOWN_TIMEOUT', 'x', 'METAL_BMC_SHUTDOWN_TIMEOUT: "x" is not a duration (examples: 30s, 5m, 1h30m)'],
    ['METAL_BMC_METAL_API_URL', 'metal-api:8080', 'METAL_BMC_METAL_API_URL: "metal-api:8080" must be an http or https URL'],
    ['METAL_BMC_METAL_API_URL', 'not a url', 'METAL_BMC_METAL_API_URL: "not a url" is not a URL (example: http://metal-api:8080/metal)'],
    ['METAL_BMC_METAL_API_URL', 'ftp://metal-api', 'METAL_BMC_METAL_API_URL: "ftp://metal-api" must be an http or https URL'],
    ['METAL_BMC_METAL_API_URL', 'http://metal-api/?a=1', 'METAL_BMC_METAL_API_URL: "http://metal-api/?a=1" must not have a query or fragment'],
    ['METAL_BMC_LEASE_FORMAT', 'csv', 'METAL_BMC_LEASE_FORMAT: "csv" is not one of auto, isc, kea'],
    ['METAL_BMC_PROTOCOL', 'ssh', 'METAL_BMC_PROTOCOL: "ssh" is not one of auto, redfish, ipmi'],
    ['METAL_BMC_IPMI_PORT', '70000', 'METAL_BMC_IPMI_PORT: "70000" is out of range (1..65535)'],
    ['METAL_BMC_IPMI_PORT', '0', 'METAL_BMC_IPMI_PORT: "0" is out of range (1..65535)'],
    ['METAL_BMC_IPMI_PORT', 'ipmi', 'METAL_BMC_IPMI_PORT: "ipmi" is not a port number'],
    ['METAL_BMC_REDFISH_PORT', '-1', 'METAL_BMC_REDFISH_PORT: "-1" is not a port number'],
    ['METAL_BMC_BMC_SSH_PORT', '0', 'METAL_BMC_BMC_SSH_PORT: "0" is out of range (1..65535)'],
    ['METAL_BMC_BMC_SSH_PORT', 'ssh', 'METAL_BMC_BMC_SSH_PORT: "ssh" is not a port number'],
    ['METAL_BMC_CONSOLE_PORT', '65536', 'METAL_BMC_CONSOLE_PORT: "65536" is out of range (0..65535)'],
    ['METAL_BMC_CONSOLE_WS_PORT', '1.5', 'METAL_BMC_CONSOLE_WS_PORT: "1.5" is not a port number'],
    ['METAL_BMC_REPORT_CONCURRENCY', '0', 'METAL_BMC_REPORT_CONCURRENCY: "0" is out of range (1..10000)'],
    ['METAL_BMC_COMMAND_CONCURRENCY', 'many', 'METAL_BMC_COMMAND_CONCURRENCY: "many" is not an integer'],
    ['METAL_BMC_CONSOLE_SCROLLBACK', '64k', 'METAL_BMC_CONSOLE_SCROLLBACK: "64k" is not an integer'],
    ['METAL_BMC_REDFISH_INSECURE', 'maybe', 'METAL_BMC_REDFISH_INSECURE: "maybe" is not a boolean (use true/false, 1/0, yes/no)'],
    ['METAL_BMC_IGNORE_MACS', 'ac:1f:6b:35:ac', 'METAL_BMC_IGNORE_MACS: "ac:1f:6b:35:ac" is not a MAC address (example: ac:1f:6b:35:ac:62)'],
    ['METAL_BMC_ALLOWED_CIDRS', '10.0.0.0/8,10.0.0.0/33', 'METAL_BMC_ALLOWED_CIDRS: "10.0.0.0/33" is not an IPv4 or IPv6 CIDR (example: 10.1.0.0/16)'],
    ['METAL_BMC_ALLOWED_CIDRS', '2001:db8::/129', 'METAL_BMC_ALLOWED_CIDRS: "2001:db8::/129" is not an IPv4 or IPv6 CIDR (example: 10.1.0.0/16)'],
    ['METAL_BMC_ALLOWED_CIDRS', '2001:db8:::/64', 'METAL_BMC_ALLOWED_CIDRS: "2001:db8:::/64" is not an IPv4 or IPv6 CIDR (example: 10.1.0.0/16)'],
    ['METAL_BMC_MQ_ADDRESS', 'http://nats:4222', 'METAL_BMC_MQ_ADDRESS: "http://nats:4222" has scheme http: (use nats://, tls://, ws:// or wss://)'],
    ['METAL_BMC_MQ_ADDRESS', 'nats://nats:4222/x', 'METAL_BMC_MQ_ADDRESS: "nats://nats:4222/x" must not have a path, query or fragment'],
    ['METAL_BMC_MACHINE_TOPIC', 'a b', 'METAL_BMC_MACHINE_TOPIC: "a b" is not a valid NATS subject (no whitespace, \'*\' or \'>\')'],
    ['METAL_BMC_RESULT_TOPIC', 'x.>', 'METAL_BMC_RESULT_TOPIC: "x.>" is not a valid NATS subject (no whitespace, \'*\' or \'>\')'],
    ['METAL_BMC_PARTITION_ID', 'a*', 'METAL_BMC_PARTITION_ID: "a*" must not contain whitespace, \'*\' or \'>\' (it names NATS subjects)'],
    ['METAL_BMC_HTTP_ADDRESS', '2112', 'METAL_BMC_HTTP_ADDRESS: "2112" is not host:port (examples: 127.0.0.1:2112, :2112, [::1]:2112)'],
    ['METAL_BMC_HTTP_ADDRESS', 'localhost:99999', 'METAL_BMC_HTTP_ADDRESS: "localhost:99999" is not host:port (examples: 127.0.0.1:2112, :2112, [::1]:2112)'],
  ])('%s=%j', (name, value, message) => {
    const err = errorOf({ [name]: value });
    expect(err.message).toBe(message);
    expect(err.variable).toBe(name);
  });

  it.each(['METAL_BMC_MQ_CA_CERT_FILE', 'METAL_BMC_REDFISH_CA_FILE', 'METAL_BMC_CONSOLE_CA_CERT_FILE'])('requires %s to be readable when set', (name) => {
    const missing = join(dir, 'missing.pem');
    expect(errorOf({ [name]: missing }).message).toBe(`${name}: ${JSON.stringify(missing)} is not readable (ENOENT)`);
    expect(errorOf({ [name]: dir }).message).toBe(`${name}: ${JSON.stringify(dir)} is not a regular file`);
  });

  it('requires the client certificate and its key together, and all three console files', () => {
    expect(errorOf({ METAL_BMC_MQ_CLIENT_CERT_FILE: file('c.pem') }).message).toBe(
      'METAL_BMC_MQ_CLIENT_CERT_FILE: is set, so METAL_BMC_MQ_CLIENT_CERT_KEY_FILE must be set as well',
    );
    expect(errorOf({ METAL_BMC_CONSOLE_KEY_FILE: file('k.pem') }).message).toBe(
      'METAL_BMC_CONSOLE_KEY_FILE: is set, so METAL_BMC_CONSOLE_CA_CERT_FILE and METAL_BMC_CONSOLE_CERT_FILE must be set as well',
    );
  });

  it('never shows a secret value in a message', () => {
    const cases: Record<string, string>[] = [
      { METAL_BMC_MQ_ADDRESS: 'ftp://bmc:mq-secret-pw@nats:4222' },
      { METAL_BMC_MQ_ADDRESS: 'nats://bmc:mq-secret-pw@nats:4222/path' },
      { METAL_BMC_MQ_ADDRESS: 'nats://bmc:mq/secret-pw@nats' },
      { METAL_BMC_MQ_ADDRESS: 'nats://:mq-secret-pw@nats' },
      { METAL_BMC_MQ_ADDRESS: 'nats://a:b@n1,nats://mq-secret-pw@n2' },
      { METAL_BMC_METAL_API_URL: 'ftp://user:mq-secret-pw@metal-api' },
      { METAL_BMC_METAL_API_URL: 'http://user:mq-secret-pw@metal api' },
    ];
    for (const extra of cases) {
      const err = errorOf(extra);
      expect(err.message).toMatch(/^METAL_BMC_(MQ_ADDRESS|METAL_API_URL): /);
      expect(err.message).not.toContain('mq-secret-pw');
      expect(String(err)).not.toContain('mq-secret-pw');
    }
    // a broken variable after the secrets: the secrets are not in the message
    const err = errorOf({ METAL_BMC_IPMI_PASSWORD: 'ipmi-secret', METAL_BMC_CONSOLE_TOKEN: 'tok-secret', METAL_BMC_SHUTDOWN_TIMEOUT: 'loud' });
    expect(err.message).not.toMatch(/ipmi-secret|tok-secret|hmac-secret/);
  });
});

describe('NATS address', () => {
  it.each([
    ['nats:4222', { servers: ['nats://nats:4222'] }],
    ['nats.example', { servers: ['nats://nats.example:4222'] }],
    ['tls://nats:4443', { servers: ['tls://nats:4443'] }],
    ['wss://nats.example/', { servers: ['wss://nats.example'] }],
    ['nats://s3cr%40t@nats:4222', { servers: ['nats://nats:4222'], token: 's3cr@t' }],
    ['u:p%3Aw@nats:4222, nats://u:p%3Aw@other', { servers: ['nats://nats:4222', 'nats://other:4222'], user: 'u', password: 'p:w' }],
    ['[::1]:4222', { servers: ['nats://[::1]:4222'] }],
  ])('parses %s', (address, expected) => {
    expect(parseMqAddress(address, 'X')).toEqual(expected);
  });

  it('redacts passwords and tokens', () => {
    expect(redactMqAddress('nats://u:pw@h:1,tok@h2,nats://h3:4222')).toBe('nats://u:[redacted]@h:1,[redacted]@h2,nats://h3:4222');
    expect(redactMqAddress('nats://u:p@ss@h')).toBe('nats://u:[redacted]@h');
  });
});

describe('instance id and console ownership', () => {
  it('takes the host name as instance id, with characters a NATS token cannot hold replaced', () => {
    expect(defaultInstanceId('mgmt01.fra-equ01.example.com')).toBe('mgmt01_fra-equ01_example_com');
    expect(defaultInstanceId('')).toBe('metal-bmc');
    expect(defaultInstanceId('x'.repeat(100))).toHaveLength(64);
    fc.assert(
      fc.property(fc.string(), (h) => {
        expect(defaultInstanceId(h)).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
      }),
    );
  });

  it('reads the instance id, the ownership and the lease', () => {
    const c = load({ METAL_BMC_INSTANCE_ID: 'mgmt-02', METAL_BMC_CONSOLE_OWNERSHIP: 'LOCAL', METAL_BMC_CONSOLE_LEASE: '10s' });
    expect([c.instanceId, c.console.ownership, c.console.leaseMs]).toEqual(['mgmt-02', 'local', 10_000]);
  });

  it('takes firmware image host names and URL prefixes of scheme, host, port and path; refuses other prefixes without echoing a password', () => {
    expect(load({ METAL_BMC_FIRMWARE_URL_ALLOW: 'images.example.com, https://mirror.example.org:8443/firmware/' }).firmware.urlAllow).toEqual(['images.example.com', 'https://mirror.example.org:8443/firmware/']);
    expect(errorOf({ METAL_BMC_FIRMWARE_URL_ALLOW: 'ftp://images.example.com/' }).message).toMatch(/ftp:\/\/images\.example\.com\/ is not an http or https URL/);
    expect(errorOf({ METAL_BMC_FIRMWARE_URL_ALLOW: 'https://images.example.com/?sig=1' }).message).toMatch(/may name scheme, host, port and path only/);
    expect(errorOf({ METAL_BMC_FIRMWARE_URL_ALLOW: 'https://' }).message).toMatch(/is not a URL/);
    const withPassword = errorOf({ METAL_BMC_FIRMWARE_URL_ALLOW: 'https://mirror:hunter2-secret@images.example.com/fw/' });
    expect(withPassword.message).toMatch(/https:\/\/images\.example\.com\/fw\/ may name scheme, host, port and path only/);
    expect(withPassword.message).not.toContain('hunter2');
  });

  it('requires a first contact to prove itself over IPMI with METAL_BMC_TRUST_REQUIRE_PROOF', () => {
    expect(load({ METAL_BMC_TRUST_REQUIRE_PROOF: 'true' }).trust).toEqual({ requireProof: true });
    expect(load({ METAL_BMC_TRUST_REQUIRE_PROOF: 'no' }).trust).toEqual({ requireProof: false });
    expect(errorOf({ METAL_BMC_TRUST_REQUIRE_PROOF: 'maybe' }).message).toMatch(/METAL_BMC_TRUST_REQUIRE_PROOF/);
  });

  it('opens a BMC\'s second Redfish connection after the wait given, or as requests come with 0', () => {
    expect(load({ METAL_BMC_REDFISH_SECOND_CONNECTION_AFTER: '0' }).redfish.secondConnectionAfterMs).toBe(0);
    expect(load({ METAL_BMC_REDFISH_SECOND_CONNECTION_AFTER: '250ms' }).redfish.secondConnectionAfterMs).toBe(250);
    expect(load({ METAL_BMC_REDFISH_HEDGE_AFTER: '0' }).redfish.hedgeAfterMs).toBe(0);
    expect(load({ METAL_BMC_REDFISH_HEDGE_AFTER: '600ms' }).redfish.hedgeAfterMs).toBe(600);
    expect(() => load({ METAL_BMC_REDFISH_HEDGE_AFTER: '11m' })).toThrow(/METAL_BMC_REDFISH_HEDGE_AFTER/);
  });

  it('turns the machine events\' leader off with 0', () => {
    expect(load({ METAL_BMC_COMMAND_LEADER_LEASE: '0' }).commands.leaderLeaseMs).toBe(0);
    expect(load({ METAL_BMC_COMMAND_LEADER_LEASE: '0s' }).commands.leaderLeaseMs).toBe(0);
  });

  it.each([
    ['METAL_BMC_INSTANCE_ID', 'a.b', /must be 1 to 64 letters/],
    ['METAL_BMC_INSTANCE_ID', 'a b', /must be 1 to 64 letters/],
    ['METAL_BMC_CONSOLE_OWNERSHIP', 'kv', /one of/],
    ['METAL_BMC_CONSOLE_LEASE', '1s', /too short \(minimum 3s\)/],
    ['METAL_BMC_CONSOLE_LEASE', '11m', /too long \(maximum 10m\)/],
    ['METAL_BMC_COMMAND_LEADER_LEASE', '2s', /too short \(minimum 3s, or 0 for no leader\)/],
    ['METAL_BMC_COMMAND_LEADER_LEASE', '11m', /too long \(maximum 10m\)/],
    ['METAL_BMC_COMMAND_LEADER_LEASE', 'soon', /not a duration/],
    ['METAL_BMC_REDFISH_SECOND_CONNECTION_AFTER', '11m', /too long \(maximum 10m\)/],
  ])('refuses %s=%s', (name, value, message) => {
    const err = errorOf({ [name]: value });
    expect(err.variable).toBe(name);
    expect(err.message).toMatch(message);
  });
});

describe('console access settings', () => {
  it('refuses a console token shorter than 32 bytes, naming the variable but not the value', () => {
    const err = errorOf({ METAL_BMC_CONSOLE_TOKEN: 'short-secret-token' });
    expect(err.message).toMatch(/^METAL_BMC_CONSOLE_TOKEN: is 18 bytes long; a console token needs at least 32/);
    expect(err.message).not.toContain('short-secret-token');
    expect(load({ METAL_BMC_CONSOLE_TOKEN: 'x'.repeat(32) }).console.token).toBe('x'.repeat(32));
  });

  it('reads the bind address, rules, origins and bounds', () => {
    const c = load({
      METAL_BMC_CONSOLE_ADDRESS: '::',
      METAL_BMC_CONSOLE_AUTHZ: 'machine-id,CN=metal-console',
      METAL_BMC_CONSOLE_ALLOWED_ORIGINS: 'https://console.example.com, https://ops.example.com:8443',
      METAL_BMC_CONSOLE_MAX_CONNECTIONS: '100',
      METAL_BMC_CONSOLE_MAX_CONNECTIONS_PER_SOURCE: '4',
      METAL_BMC_CONSOLE_MAX_SESSIONS: '50',
      METAL_BMC_CONSOLE_CAPTURE: 'all',
      METAL_BMC_CONSOLE_LOG_DIR: '/srv/consoles',
      METAL_BMC_CONSOLE_LOG_SIZE: '16MiB x 8',
      METAL_BMC_CONSOLE_WORKERS: '3',
    }).console;
    expect(c).toMatchObject({
      host: '::',
      authz: [{ kind: 'machine-id' }, { kind: 'attribute', attribute: 'CN', value: 'metal-console' }],
      allowedOrigins: ['https://console.example.com', 'https://ops.example.com:8443'],
      connectionLimits: { perSource: 4, total: 100 },
      maxSessions: 50,
      capture: 'all',
      logDir: '/srv/consoles',
      logSize: { fileBytes: 16 << 20, files: 8 },
      workers: 3,
    });
    expect(load({ METAL_BMC_CONSOLE_WORKERS: '0' }).console.workers).toBe(0);
    expect(load({ METAL_BMC_REPORT_WORKERS: '0' }).report.workers).toBe(0);
    // 0: no GUID kept, an IPMI session every cycle
    expect(load({ METAL_BMC_REPORT_GUID_MAX_AGE: '0' }).report.guidMaxAgeMs).toBe(0);
    expect(load({ METAL_BMC_REPORT_REDFISH_SESSION_MAX_AGE: '0' }).report.redfishSessionMaxAgeMs).toBe(0);
    // 0: a BMC's lasting failure logged every cycle
    expect(load({ METAL_BMC_REPORT_REPEAT_LOG_INTERVAL: '0' }).report.repeatLogIntervalMs).toBe(0);
    // report workers by default only where a core is left for them: none on two cores, at most 4
    expect([1, 2, 3, 4, 5, 8, 64].map(defaultReportWorkers)).toEqual([0, 0, 2, 3, 4, 4, 4]);
    // console workers start with the daemon: a big server must not start one per core
    expect([1, 2, 3, 4, 5, 8, 64].map(defaultConsoleWorkers)).toEqual([1, 1, 2, 3, 4, 4, 4]);
    expect(load({ METAL_BMC_HEAP_GROWTH: '0' }).heapGrowthPct).toBe(0);
    expect(load({ METAL_BMC_STATE_DIR: '/srv/state' }).console.logDir).toBe('/srv/state/console');
  });

  it.each([
    ['METAL_BMC_CONSOLE_ADDRESS', 'console.example.com', /is not an IP address/],
    ['METAL_BMC_CONSOLE_AUTHZ', 'machine-id,admins', /unknown rule "admins"/],
    ['METAL_BMC_CONSOLE_ALLOWED_ORIGINS', 'https://console.example.com/path', /is not an origin/],
    ['METAL_BMC_CONSOLE_ALLOWED_ORIGINS', '*', /is not an origin/],
    ['METAL_BMC_CONSOLE_MAX_SESSIONS', '0', /out of range/],
    ['METAL_BMC_CONSOLE_CAPTURE', 'some', /off, all|one of/],
    ['METAL_BMC_CONSOLE_LOG_SIZE', '8MiB', /<size> x <files>/],
    ['METAL_BMC_CONSOLE_WORKERS', '-1', /out of range/],
    ['METAL_BMC_REPORT_WORKERS', '65', /out of range/],
    ['METAL_BMC_REPORT_WORKERS', 'cores', /not an integer/],
    ['METAL_BMC_REPORT_GUID_MAX_AGE', '-1m', /too short/],
    ['METAL_BMC_REPORT_GUID_MAX_AGE', 'hour', /not a duration/],
    ['METAL_BMC_REPORT_REDFISH_SESSION_MAX_AGE', '-1m', /too short/],
    ['METAL_BMC_CONSOLE_WORKERS', 'all', /not an integer/],
    ['METAL_BMC_CONSOLE_CRL_FILE', '/nonexistent/crl.pem', /is not readable/],
    ['METAL_BMC_HEAP_GROWTH', '401', /out of range/],
    ['METAL_BMC_HEAP_GROWTH', '1.5', /not an integer/],
  ])('%s=%s is refused', (name, value, message) => {
    const err = errorOf({ [name]: value });
    expect(err.variable).toBe(name);
    expect(err.message).toMatch(message);
  });
});

describe('systemd credentials', () => {
  it('reads secrets from $CREDENTIALS_DIRECTORY files named after the variables, and refuses a secret set twice', () => {
    const creds = mkdtempSync(join(tmpdir(), 'creds-'));
    try {
      writeFileSync(join(creds, 'METAL_BMC_METAL_API_HMAC_KEY'), 'hmac-from-credential\n');
      writeFileSync(join(creds, 'METAL_BMC_IPMI_PASSWORD'), 'pw-from-credential');
      const c = loadConfig({ METAL_BMC_PARTITION_ID: 'p', METAL_BMC_METAL_API_URL: 'http://metal-api', CREDENTIALS_DIRECTORY: creds });
      expect(c.metalApi.hmacKey).toBe('hmac-from-credential');
      expect(c.ipmi.password).toBe('pw-from-credential');
      const err = errorOf({ CREDENTIALS_DIRECTORY: creds });
      expect(err.variable).toBe('METAL_BMC_METAL_API_HMAC_KEY');
      expect(err.message).toMatch(/set in the environment and as a systemd credential/);
    } finally {
      rmSync(creds, { recursive: true, force: true });
    }
  });
});

describe('trust warnings', () => {
  it('warns about plain http to metal-api and the default BMC credentials; METAL_BMC_REQUIRE_TLS refuses plain http', () => {
    expect(load().warnings).toEqual([
      expect.stringMatching(/^METAL_BMC_METAL_API_URL uses plain http: BMC passwords/),
      'METAL_BMC_IPMI_USER and METAL_BMC_IPMI_PASSWORD not set: BMCs are tried with the factory default ADMIN/ADMIN',
      expect.stringMatching(/^METAL_BMC_FIRMWARE_URL_ALLOW is empty: every UPDATE-FIRMWARE event is refused \(the Go metal-bmc took any URL\)/),
    ]);
    const tls = load({ METAL_BMC_METAL_API_URL: 'https://metal-api/metal', METAL_BMC_IPMI_USER: 'metal', METAL_BMC_IPMI_PASSWORD: 'pw', METAL_BMC_REQUIRE_TLS: 'true', METAL_BMC_FIRMWARE_URL_ALLOW: 'images.example' });
    expect(tls.warnings).toEqual([]);
    expect(errorOf({ METAL_BMC_REQUIRE_TLS: 'true' }).message).toMatch(/^METAL_BMC_METAL_API_URL: uses plain http, and METAL_BMC_REQUIRE_TLS is true/);
  });
});

describe('credentials in URLs: refused where unused, never quoted in part', () => {
  const messageOf = (env: Record<string, string>) => {
    try {
      load(env);
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error('loaded');
  };

  it('a user or password in the metal-api URL is refused (undici would not send it; metal-api takes the HMAC), the password not named', () => {
    const m = messageOf({ METAL_BMC_METAL_API_URL: 'https://proxy-user:proxy-pw-77@metal-api/metal' });
    expect(m).toMatch(/METAL_BMC_METAL_API_URL: must not carry a user or password/);
    expect(m).not.toContain('proxy-pw-77');
  });

  it('a URL whose password holds / or @ is shown without any of it', () => {
    for (const url of ['https://u:pa/ss-9@api/x?y', 'https://u:p@ss-9@api/?x=1']) expect(messageOf({ METAL_BMC_METAL_API_URL: url })).not.toMatch(/ss-9/);
  });

  it('a NATS password or token with a , in it: refused or failed without quoting any part of it', () => {
    const split = messageOf({ METAL_BMC_MQ_ADDRESS: 'nats://tok,en123@nats' });
    expect(split).toMatch(/METAL_BMC_MQ_ADDRESS: server 2 of 2 carries credentials that the server before it does not: a ',' inside a password or token\? Write it percent-encoded as %2C/);
    expect(split).not.toMatch(/\btok\b|en123/);
    expect(messageOf({ METAL_BMC_MQ_ADDRESS: 'nats://u:se,cret99@nats' })).not.toMatch(/u:se|cret99/);
    // percent-encoded, the comma is the token's
    expect(load({ METAL_BMC_MQ_ADDRESS: 'nats://tok%2Cen123@nats' }).mq).toMatchObject({ servers: ['nats://nats:4222'], token: 'tok,en123' });
    // one set of credentials for servers that each carry their scheme still loads
    expect(load({ METAL_BMC_MQ_ADDRESS: 'nats://a:4222,nats://u:p@b:4222' }).mq).toMatchObject({ servers: ['nats://a:4222', 'nats://b:4222'], user: 'u' });
  });

  it('durations in whole milliseconds; a shutdown timeout whose forced exit would pass the timer limit is refused', () => {
    expect(load({ METAL_BMC_METAL_API_TIMEOUT: '2.0005s' }).metalApi.timeoutMs).toBe(2001);
    expect(messageOf({ METAL_BMC_SHUTDOWN_TIMEOUT: '596h31m23s' })).toMatch(/METAL_BMC_SHUTDOWN_TIMEOUT: "596h31m23s" is too long/);
  });
});

describe('redactConfig', () => {
  it('hides every secret and leaves the original alone', () => {
    const c = load({
      METAL_BMC_METAL_API_URL: 'https://metal-api/metal',
      METAL_BMC_IPMI_PASSWORD: 'ipmi-secret',
      METAL_BMC_CONSOLE_TOKEN: 'console-secret-0123456789abcdef0123',
      METAL_BMC_MQ_ADDRESS: 'nats://bmc:mq-secret@nats:4222,nats://bmc:mq-secret@nats2',
    });
    const r = redactConfig(c);
    const text = JSON.stringify(r);
    for (const secret of [HMAC, 'ipmi-secret', 'console-secret-0123456789abcdef0123', 'mq-secret']) expect(text).not.toContain(secret);
    expect(r.metalApi).toEqual({ url: 'https://metal-api/metal', hmacKey: '[redacted]', timeoutMs: 30_000 });
    expect(r.ipmi.password).toBe('[redacted]');
    expect(r.console.token).toBe('[redacted]');
    expect(r.mq).toMatchObject({ address: 'nats://bmc:[redacted]@nats:4222,nats://bmc:[redacted]@nats2', user: 'bmc', password: '[redacted]' });
    expect(c.metalApi.hmacKey).toBe(HMAC);
    expect(c.mq.password).toBe('mq-secret');
    expect(r.leases.allowedCidrs[0]?.text).toBe('0.0.0.0/0');

    const token = redactConfig(load({ METAL_BMC_MQ_ADDRESS: 'tok-secret@nats' }));
    expect(token.mq).toMatchObject({ address: '[redacted]@nats', token: '[redacted]' });
    expect(redactConfig(load()).console.token).toBeUndefined();
  });
});

describe('documentation', () => {
  const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');

  it('documents every variable with its default in docs/configuration.md', () => {
    for (const v of VARIABLES) {
      const row = doc.split('\n').find((line) => line.startsWith(`| \`${v.name}\``));
      expect(row, v.name).toBeDefined();
      if (v.default !== '') expect(row, v.name).toContain(`\`${v.default}\``);
      // the "Go metal-bmc" column: the Go default and behaviour, and the bare name where Go reads one
      expect(row, v.name).toContain(` | ${goColumn(v.name)} |`);
      const bare = UNPREFIXED_FALLBACKS[v.name];
      if (bare !== undefined) expect(row, v.name).toContain(`(or \`${bare}\`)`);
    }
    expect(doc).toMatch(/^\| variable \| default \| meaning \| Go metal-bmc \|$/m);
  });

  it('covers every variable of the Go config struct, and every unprefixed fallback', () => {
    for (const name of Object.keys(GO_METAL_BMC)) expect(VARIABLES.some((v) => v.name === name) || IGNORED_GO_VARIABLES.includes(name), name).toBe(true);
    for (const name of Object.keys(UNPREFIXED_FALLBACKS)) expect(GO_METAL_BMC[name], name).toContain(`also read as \`${UNPREFIXED_FALLBACKS[name]}\``);
    for (const heading of ['## Unprefixed names (as the Go metal-bmc)', '## Differences from the Go metal-bmc']) expect(doc).toContain(heading);
    for (const topic of ['NATS instead of NSQ', 'TTL is enforced', 'Concurrency', 'Deadlines']) expect(doc).toContain(topic);
  });

  it('lists exactly the variables the loader reads', () => {
    const srcDir = new URL('../../src/config/', import.meta.url);
    const used = new Set<string>();
    for (const f of readdirSync(srcDir).filter((n) => n.endsWith('.ts') && n !== 'variables.ts')) {
      for (const m of readFileSync(new URL(f, srcDir), 'utf8').matchAll(/METAL_BMC_[A-Z0-9_]+/g)) used.add(m[0]);
    }
    expect([...used].sort()).toEqual(VARIABLES.map((v) => v.name).sort());
  });
});

/** Warnings other than the trust and migration warnings every plain-http, ADMIN/ADMIN test configuration without a firmware allow-list gets. */
const ownWarnings = (c: { warnings: string[] }) => c.warnings.filter((w) => !/uses plain http|factory default ADMIN|FIRMWARE_URL_ALLOW is empty/.test(w));

describe('the Go metal-bmc\'s unprefixed fallbacks', () => {
  const bare = (name: string) => name.slice('METAL_BMC_'.length);

  it('reads exactly the envconfig-tagged names of the Go config struct', () => {
    expect(Object.values(UNPREFIXED_FALLBACKS).sort()).toEqual([
      'CONSOLE_CA_CERT_FILE',
      'CONSOLE_CERT_FILE',
      'CONSOLE_KEY_FILE',
      'CONSOLE_PORT',
      'MACHINE_TOPIC_TTL',
      'METAL_API_HMAC_KEY',
      'METAL_API_URL',
      'MQ_ADDRESS',
      'MQ_CA_CERT_FILE',
      'MQ_CLIENT_CERT_FILE',
      'MQ_CLIENT_CERT_KEY_FILE',
      'PARTITION_ID',
    ]);
    for (const [prefixed, name] of Object.entries(UNPREFIXED_FALLBACKS)) expect(bare(prefixed)).toBe(name);
  });

  it('takes every value from the bare name when the METAL_BMC_ name is unset or blank', () => {
    const files = { ca: file('fb-ca.pem'), cert: file('fb-cert.pem'), key: file('fb-key.pem') };
    const c = loadConfig({
      PARTITION_ID: 'p1',
      METAL_API_URL: 'http://api:8080/metal',
      METAL_API_HMAC_KEY: ' key with blanks ',
      MQ_ADDRESS: 'nats-1:4222',
      MQ_CA_CERT_FILE: files.ca,
      MQ_CLIENT_CERT_FILE: files.cert,
      MQ_CLIENT_CERT_KEY_FILE: files.key,
      MACHINE_TOPIC_TTL: '45s',
      CONSOLE_PORT: '4333',
      CONSOLE_CA_CERT_FILE: files.ca,
      CONSOLE_CERT_FILE: files.cert,
      CONSOLE_KEY_FILE: files.key,
      METAL_BMC_CONSOLE_PORT: '  ',
    });
    expect(c.partitionId).toBe('p1');
    expect(c.metalApi).toEqual({ url: 'http://api:8080/metal', hmacKey: ' key with blanks ', timeoutMs: 30_000 });
    expect(c.mq).toMatchObject({ servers: ['nats://nats-1:4222'], caCertFile: files.ca, clientCertFile: files.cert, clientKeyFile: files.key, machineTopicTtlMs: 45_000, machineTopic: 'p1-machine' });
    expect(c.console).toMatchObject({ port: 4333, caCertFile: files.ca, certFile: files.cert, keyFile: files.key });
    expect(c.fallbacks).toEqual([...Object.values(UNPREFIXED_FALLBACKS)].sort());
    expect(ownWarnings(c)).toEqual([]);
  });

  it('the METAL_BMC_ name wins; differing values are a warning that shows neither value', () => {
    const c = load({ PARTITION_ID: 'other', METAL_API_HMAC_KEY: 'other-secret', MQ_ADDRESS: 'nats-9', METAL_BMC_MQ_ADDRESS: 'nats-1' });
    expect(c.partitionId).toBe('fra-equ01');
    expect(c.metalApi.hmacKey).toBe(HMAC);
    expect(c.mq.servers).toEqual(['nats://nats-1:4222']);
    expect(c.fallbacks).toEqual([]);
    expect(ownWarnings(c)).toEqual([
      'METAL_BMC_PARTITION_ID and PARTITION_ID are both set and differ; METAL_BMC_PARTITION_ID is used',
      'METAL_BMC_METAL_API_HMAC_KEY and METAL_API_HMAC_KEY are both set and differ; METAL_BMC_METAL_API_HMAC_KEY is used',
      'METAL_BMC_MQ_ADDRESS and MQ_ADDRESS are both set and differ; METAL_BMC_MQ_ADDRESS is used',
    ]);
    expect(c.warnings.join()).not.toMatch(/other-secret|nats-9/);
  });

  it('names without an envconfig tag in Go have no fallback (LOG_LEVEL, MACHINE_TOPIC, IPMI_PASSWORD)', () => {
    const c = load({ LOG_LEVEL: 'debug', MACHINE_TOPIC: 'x', IPMI_PASSWORD: 'p', LEASE_FILE: '/x' });
    expect(c.logLevel).toBe('info');
    expect(c.mq.machineTopic).toBe('fra-equ01-machine');
    expect(c.ipmi.password).toBe('ADMIN');
    expect(c.leases.file).toBe('/var/lib/dhcp/dhcpd.leases');
  });

  it('an invalid fallback value is named by the variable it came from', () => {
    const err = errorOf({ MQ_ADDRESS: 'http://nats:4222', CONSOLE_PORT: '99999' });
    expect(err.variable).toBe('MQ_ADDRESS');
    expect(err.message).toBe('MQ_ADDRESS: "http://nats:4222" has scheme http: (use nats://, tls://, ws:// or wss://)');
    expect(errorOf({ CONSOLE_PORT: '99999' }).message).toBe('CONSOLE_PORT: "99999" is out of range (0..65535)');
    const secretErr = errorOf({ METAL_API_URL: 'ftp://u:fb-secret@api' }, { METAL_BMC_PARTITION_ID: 'p', METAL_BMC_METAL_API_HMAC_KEY: 'k' });
    expect(secretErr.message).toMatch(/^METAL_API_URL: /);
    expect(secretErr.message).not.toContain('fb-secret');
  });

  it('property: with one of the two names set, the value is the same whichever name carries it', () => {
    const ttl = fc.tuple(fc.integer({ min: 1, max: 1440 }), fc.constantFrom('s', 'm')); // 1s (the minimum) up to the 24h lifecycle retention
    fc.assert(
      fc.property(ttl, fc.integer({ min: 0, max: 65535 }), fc.boolean(), ([n, unit], consolePort, prefixed) => {
        const values = { MACHINE_TOPIC_TTL: `${n}${unit}`, CONSOLE_PORT: String(consolePort) };
        const named = Object.fromEntries(Object.entries(values).map(([k, v]) => [prefixed ? `METAL_BMC_${k}` : k, v]));
        const c = load(named);
        const reference = load(Object.fromEntries(Object.entries(values).map(([k, v]) => [`METAL_BMC_${k}`, v])));
        return c.mq.machineTopicTtlMs === reference.mq.machineTopicTtlMs && c.console.port === reference.console.port;
      }),
    );
  });
});

describe('lenient readings, as the Go metal-bmc', () => {
  it.each(['fatal', 'FATAL', 'warning', 'loud'])('an unknown log level %j is info, with a warning', (level) => {
    const c = load({ METAL_BMC_LOG_LEVEL: level });
    expect(c.logLevel).toBe('info');
    expect(ownWarnings(c)).toEqual([`METAL_BMC_LOG_LEVEL: ${JSON.stringify(level)} is not one of trace, debug, info, warn, error; using info`]);
  });

  it('accepts IPv6 blocks in the allowed CIDRs; they match no lease and say so', () => {
    const c = load({ METAL_BMC_ALLOWED_CIDRS: '10.1.0.0/16, 2001:db8::1/32, ::ffff:10.0.0.0/104' });
    expect(c.leases.allowedCidrs.map((x) => x.text)).toEqual(['10.1.0.0/16']);
    expect(ownWarnings(c)).toEqual([
      'METAL_BMC_ALLOWED_CIDRS: the IPv6 block 2001:db8::/32 matches no lease (DHCP leases are IPv4), as in the Go metal-bmc',
      'METAL_BMC_ALLOWED_CIDRS: the IPv6 block ::ffff:a00:0/104 matches no lease (DHCP leases are IPv4), as in the Go metal-bmc',
    ]);
    const only6 = load({ METAL_BMC_ALLOWED_CIDRS: '::/0' });
    expect(only6.leases.allowedCidrs).toEqual([]);
    expect(only6.warnings).toContain('METAL_BMC_ALLOWED_CIDRS: no IPv4 block is listed, so no lease is reported');
  });
});
