/**
 * Every environment variable the daemon reads, with its default and meaning: the single
 * list behind docs/configuration.md (a test keeps the two in step) and the unknown-variable
 * warnings.
 */
export interface VariableDoc {
  name: string;
  /** shown default; '' when there is none */
  default: string;
  required?: boolean;
  secret?: boolean;
  description: string;
}

export const VARIABLES: readonly VariableDoc[] = [
  { name: 'METAL_BMC_PARTITION_ID', default: '', required: true, description: 'partition id sent with every report; prefix of the default NATS subjects' },
  { name: 'METAL_BMC_METAL_API_URL', default: '', required: true, description: 'metal-api base URL (http or https, may carry a path, e.g. http://metal-api:8080/metal)' },
  { name: 'METAL_BMC_METAL_API_HMAC_KEY', default: '', required: true, secret: true, description: 'shared key for the Metal-Edit HMAC on metal-api requests' },
  { name: 'METAL_BMC_LEASE_FILE', default: '/var/lib/dhcp/dhcpd.leases', description: 'DHCP lease file to discover BMCs from' },
  { name: 'METAL_BMC_LEASE_FORMAT', default: 'auto', description: 'lease file format: auto, isc (dhcpd.leases) or kea (kea-leases4.csv)' },
  { name: 'METAL_BMC_REPORT_INTERVAL', default: '5m', description: 'time between report cycles (Go duration); cycles never overlap' },
  { name: 'METAL_BMC_REPORT_CONCURRENCY', default: '64', description: 'BMCs queried at once during a report cycle' },
  { name: 'METAL_BMC_BMC_TIMEOUT', default: '20s', description: 'deadline for reading one BMC during a report cycle' },
  { name: 'METAL_BMC_IGNORE_MACS', default: '', description: 'comma separated BMC MAC addresses to skip' },
  { name: 'METAL_BMC_ALLOWED_CIDRS', default: '0.0.0.0/0', description: 'comma separated IPv4 CIDRs; only leases inside one of them are reported' },
  { name: 'METAL_BMC_PROTOCOL', default: 'auto', description: 'BMC protocol: auto (Redfish first, IPMI fallback), redfish or ipmi' },
  { name: 'METAL_BMC_IPMI_PORT', default: '623', description: 'UDP port of the BMCs\' IPMI (RMCP+) service' },
  { name: 'METAL_BMC_REQUIRE_TLS', default: 'false', description: 'refuse to start when METAL_BMC_METAL_API_URL is plain http (metal-api hands out BMC passwords); plain http is always a start-up warning' },
  { name: 'METAL_BMC_IPMI_USER', default: 'ADMIN', description: 'BMC user for IPMI and Redfish (as the Go metal-bmc); unset is a start-up warning' },
  { name: 'METAL_BMC_IPMI_PASSWORD', default: 'ADMIN', secret: true, description: 'BMC password for IPMI and Redfish (as the Go metal-bmc); unset is a start-up warning' },
  { name: 'METAL_BMC_REDFISH_PORT', default: '443', description: 'HTTPS port of the BMCs\' Redfish service' },
  { name: 'METAL_BMC_REDFISH_INSECURE', default: 'true', description: 'accept self-signed BMC certificates (true/false, 1/0, yes/no)' },
  { name: 'METAL_BMC_REDFISH_CA_FILE', default: '', description: 'CA bundle to verify BMC certificates with; must be readable when set' },
  { name: 'METAL_BMC_MQ_ADDRESS', default: 'nats://localhost:4222', description: 'NATS server(s): comma separated URLs (nats, tls, ws, wss) or host:port (port 4222 by default); may carry user:password@ or token@, redacted in logs' },
  { name: 'METAL_BMC_MQ_CA_CERT_FILE', default: '', description: 'CA to verify the NATS server with; must be readable when set' },
  { name: 'METAL_BMC_MQ_CLIENT_CERT_FILE', default: '', description: 'client certificate for NATS (set together with the key file); must be readable' },
  { name: 'METAL_BMC_MQ_CLIENT_CERT_KEY_FILE', default: '', description: 'private key of the NATS client certificate; must be readable' },
  { name: 'METAL_BMC_MACHINE_TOPIC', default: '<partition>-machine', description: 'NATS subject of machine events from metal-api' },
  { name: 'METAL_BMC_MACHINE_TOPIC_TTL', default: '30s', description: 'command events older than this are dropped, never executed (checked on receipt and again when the machine\'s queue reaches them); create/delete older than this still run (see the retention)' },
  { name: 'METAL_BMC_LIFECYCLE_RETENTION', default: '24h', description: 'how long the JetStream stream keeps machine events (its max_age); create and delete events older than the TTL still run, in order, up to this age; at least the topic TTL' },
  { name: 'METAL_BMC_STREAM_REPLICAS', default: '1', description: 'replicas of the machine event stream (1, 3 or 5 on a clustered JetStream); applied to an existing stream of ours on start' },
  { name: 'METAL_BMC_RESULT_TOPIC', default: '<partition>-machine-result', description: 'NATS subject command results are published to' },
  { name: 'METAL_BMC_COMMAND_CONCURRENCY', default: '32', description: 'machines with a command in flight at once (one at a time per machine)' },
  { name: 'METAL_BMC_COMMAND_TIMEOUT', default: '60s', description: 'deadline of one machine command' },
  { name: 'METAL_BMC_FIRMWARE_TIMEOUT', default: '30m', description: 'deadline of one UPDATE-FIRMWARE job (download, push or SimpleUpdate, and the BMC task); jobs run in the background, one per machine' },
  { name: 'METAL_BMC_STATE_DIR', default: '/var/lib/metal-bmc', description: 'directory for state kept across restarts (firmware jobs: firmware-jobs.json); created when missing' },
  { name: 'METAL_BMC_CONSOLE_PORT', default: '3333', description: 'TLS+SSH console listener for metal-console (0: any free port)' },
  { name: 'METAL_BMC_CONSOLE_CA_CERT_FILE', default: '', description: 'CA that metal-console client certificates must chain to; the TLS console needs all three console files' },
  { name: 'METAL_BMC_CONSOLE_CERT_FILE', default: '', description: 'server certificate of the console listener' },
  { name: 'METAL_BMC_CONSOLE_KEY_FILE', default: '', description: 'private key of the console listener; the SSH host key is derived from it' },
  { name: 'METAL_BMC_CONSOLE_WS_PORT', default: '3334', description: 'WebSocket console listener for browsers and tools (0: any free port)' },
  { name: 'METAL_BMC_CONSOLE_TOKEN', default: '', secret: true, description: 'token mode of the WebSocket console: the token (at least 32 bytes) replaces the client certificate and opens every machine; browsers exchange it once for a session cookie; off when empty' },
  { name: 'METAL_BMC_CONSOLE_ADDRESS', default: '0.0.0.0', description: 'IP address both console listeners bind to (:: for all IPv6 and IPv4 addresses)' },
  { name: 'METAL_BMC_CONSOLE_AUTHZ', default: 'any', description: 'who may open which console: comma-separated rules, any (every certificate of the CA), machine-id (certificate CN or a DNS/URI SAN equals the machine id), CN=.., OU=.., O=.. (that certificate subject opens every machine)' },
  { name: 'METAL_BMC_CONSOLE_CRL_FILE', default: '', description: 'PEM certificate revocation list of the console CA; revoked client certificates are refused; reloaded when the file changes' },
  { name: 'METAL_BMC_CONSOLE_ALLOWED_ORIGINS', default: '', description: 'browser origins (https://host[:port], comma-separated) allowed to open WebSocket consoles besides the listener itself' },
  { name: 'METAL_BMC_CONSOLE_MAX_CONNECTIONS', default: '1024', description: 'open connections per console listener' },
  { name: 'METAL_BMC_CONSOLE_MAX_CONNECTIONS_PER_SOURCE', default: '32', description: 'open connections per console listener from one IP address' },
  { name: 'METAL_BMC_CONSOLE_MAX_SESSIONS', default: '1000', description: 'BMC console sessions open at once (one per machine, shared by its viewers)' },
  { name: 'METAL_BMC_CONSOLE_SCROLLBACK', default: '65536', description: 'bytes of console output kept per machine for new viewers' },
  { name: 'METAL_BMC_CONSOLE_IDLE_TIMEOUT', default: '30m', description: 'an idle console session is closed after this long (0: never)' },
  { name: 'METAL_BMC_HTTP_ADDRESS', default: '127.0.0.1:2112', description: 'host:port of the health and Prometheus metrics listener (:2112 for all interfaces)' },
  { name: 'METAL_BMC_SHUTDOWN_TIMEOUT', default: '30s', description: 'on SIGTERM, how long in-flight work may take before it is cut off' },
  { name: 'METAL_BMC_LOG_LEVEL', default: 'info', description: 'trace, debug, info, warn or error' },
];

/** Variables of the Go metal-bmc that this implementation does not use. */
export const IGNORED_GO_VARIABLES: readonly string[] = [
  'METAL_BMC_METAL_APISERVER_URL',
  'METAL_BMC_TOKEN_FILE',
  'METAL_BMC_MQ_LOGLEVEL',
];
