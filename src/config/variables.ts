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
  { name: 'METAL_BMC_INSTANCE_ID', default: '<hostname>', description: 'this instance\'s name among the metal-bmc instances of a partition (letters, digits, - and _; other characters of the host name become _): the owner named in console claims; two instances must not share it' },
  { name: 'METAL_BMC_PARTITION_ID', default: '', required: true, description: 'partition id sent with every report; prefix of the default NATS subjects' },
  { name: 'METAL_BMC_METAL_API_URL', default: '', required: true, description: 'metal-api base URL (http or https, may carry a path, e.g. http://metal-api:8080/metal; no user or password: reports are signed with the HMAC key, and credentials in the URL would not be sent)' },
  { name: 'METAL_BMC_METAL_API_HMAC_KEY', default: '', required: true, secret: true, description: 'shared key for the Metal-Edit HMAC on metal-api requests' },
  { name: 'METAL_BMC_METAL_API_TIMEOUT', default: '30s', description: 'deadline of one metal-api request (Go duration, at least 1s): a report of a large partition takes metal-api one database update per machine; a GET (a machine\'s BMC lookup as a console opens) at most 10s per attempt. A failure before metal-api answered is sent again up to three times with a pause (a 5xx, 429, a refused connection); a report POST that timed out, or was answered 502 or 504 (by a proxy or ingress in front of metal-api, which may have lost or stopped waiting for metal-api\'s answer; where it could not reach metal-api at all, the report waits for the next cycle, as every failed report does in the Go daemon), is not, since metal-api may still be applying it and the next cycle reports again (a GET is, and a 503 or 429, which say it was not taken). A Retry-After in the answer (seconds or an HTTP-date) is waited out whole where it ends within the call\'s time budget (four attempt deadlines: 2m for a report POST and 40s for a GET at 30s); a longer one fails the call at once, saying how long metal-api asked to wait, and holds the next reports back that long (10m at most, against a proxy asking for days): a cycle in between, such as one a lease change starts, reads its BMCs but does not send, and says so' },
  { name: 'METAL_BMC_METAL_API_CA_FILE', default: '', description: 'CA bundle (PEM, at least one certificate) to verify an https metal-api with, in place of the CAs Node.js ships (a private CA of the partition); must be readable when set' },
  { name: 'METAL_BMC_LEASE_FILE', default: '/var/lib/dhcp/dhcpd.leases', description: 'DHCP lease file to discover BMCs from' },
  { name: 'METAL_BMC_LEASE_FORMAT', default: 'auto', description: 'lease file format: auto, isc (dhcpd.leases) or kea (kea-leases4.csv)' },
  { name: 'METAL_BMC_REPORT_INTERVAL', default: '5m', description: 'time between report cycles (Go duration); cycles never overlap' },
  { name: 'METAL_BMC_REPORT_CONCURRENCY', default: '1024', description: 'upper bound of BMCs read at once during a report cycle; below it the number adapts to what the machine carries (event-loop delay, memory, file descriptors)' },
  { name: 'METAL_BMC_REPORT_WORKERS', default: 'cores - 1, at most 4; 0 on 2 cores or fewer', description: 'worker threads that read the BMCs of a report cycle (TLS handshakes, JSON and IPMI crypto on every core; a BMC is read by the same worker every cycle, so its TLS session resumes); 0: in the main thread' },
  { name: 'METAL_BMC_REPORT_GUID_MAX_AGE', default: '1h', description: 'how long a BMC\'s IPMI GUID, once it confirmed the Redfish UUID, serves its reports (Go duration): a BMC whose report needs nothing else from IPMI gets no IPMI session in that time while the GUID still confirms the UUID Redfish reports; 0: an IPMI session every cycle. Whatever this age (0 included), the GUID and the UUID it confirmed are kept to check a read over IPMI alone (Redfish failed): only such a read whose GUID confirmed its BMC\'s UUID before is reported' },
  { name: 'METAL_BMC_REPORT_REDFISH_SESSION_MAX_AGE', default: '1h', description: 'how long one Redfish session serves a BMC\'s report reads (Go duration): a read leaves its session open and the next read of the same BMC (address and port, and its MAC where the lease names one), user and pinned certificate resumes it (no login, no logout, no service root), until this age, then it is deleted and replaced; kept in METAL_BMC_STATE_DIR/redfish-sessions.json (mode 0600) so a restart resumes them; 0: a login and a logout every read' },
  { name: 'METAL_BMC_REPORT_REPEAT_LOG_INTERVAL', default: '1h', description: 'how often a BMC\'s lasting read failure or skip (no machine UUID to report) is logged again (Go duration): the first occurrence is one warning, a change of error code or skip reason another at once, the same condition in later cycles none until this long after its last line (then one naming the cycles not logged, quietCycles, and how long it lasts), and the BMC\'s return one info line naming what it was and for how long; the metrics count every occurrence; 0: a warning every cycle' },
  { name: 'METAL_BMC_BMC_TIMEOUT', default: '20s', description: 'deadline for reading one BMC during a report cycle' },
  { name: 'METAL_BMC_IGNORE_MACS', default: '', description: 'comma separated BMC MAC addresses to skip' },
  { name: 'METAL_BMC_ALLOWED_CIDRS', default: '0.0.0.0/0', description: 'comma separated IPv4 or IPv6 CIDRs; only leases inside one of them are reported (leases are IPv4: an IPv6 block matches none, with a warning)' },
  { name: 'METAL_BMC_PROTOCOL', default: 'auto', description: 'BMC protocol: auto (Redfish first, IPMI fallback), redfish or ipmi' },
  { name: 'METAL_BMC_GUID_ENCODING', default: '', description: 'comma separated vendor=order pairs (supermicro=smbios,dell=rfc4122): the byte order in which that vendor\'s BMCs send their IPMI GUID (smbios, rfc4122 or ipmi). Find it on one machine: metal-bmc bmc info --address BMC --protocol ipmi --guid-encoding ORDER for each order, until its UUID equals the in-band dmidecode -s system-uuid; it prints the vendor to list. A BMC of a listed vendor read over IPMI alone (no Redfish, Redfish failing at login, or giving no UUID; protocol auto) is then reported with that GUID as its machine UUID, unless an earlier read with Redfish decided its UUID; without it such a BMC is left out (a GUID in the wrong order is another machine\'s id in metal-api). With protocol ipmi it replaces the vendor table\'s order. Beside Redfish a listed order decides only where the Redfish UUID and its byte-swapped form are equally plausible (redfish-ambiguous), so listing one can move such a BMC to the other form. One that decodes a BMC\'s GUID to another UUID than the one decided from Redfish is a warning once per BMC, every such read counted in metal_bmc_guid_order_contradicted_total. Vendors: supermicro (Novarion too), dell, lenovo, gigabyte, hpe, virtual, as detected (over IPMI by the manufacturer id where Redfish cannot be reached, else by Redfish\'s Manufacturer); unknown, a manufacturer id the vendor table lacks, cannot be listed, and a BMC whose vendor could not be read gets no listed order' },
  { name: 'METAL_BMC_IPMI_PORT', default: '623', description: 'UDP port of the BMCs\' IPMI (RMCP+) service' },
  { name: 'METAL_BMC_IPMI_CIPHER_SUITE', default: 'auto', description: 'RMCP+ cipher suite of IPMI sessions (reports, commands, consoles): auto asks the BMC and takes the strongest with integrity protection, only encrypted ones (17, then 3) where the BMC lists any; encrypted never takes one without encryption, refusing a BMC that offers none (the suite list and the refusals that move auto on carry no integrity code: a spoofer on the management network can make auto settle on 16 or 2, never with encrypted); or one of 17, 3, 16, 2, 15, 1 for exactly that suite' },
  { name: 'METAL_BMC_REQUIRE_TLS', default: 'false', description: 'refuse to start when METAL_BMC_METAL_API_URL is plain http (metal-api hands out BMC passwords); plain http is always a start-up warning' },
  { name: 'METAL_BMC_IPMI_USER', default: 'ADMIN', description: 'BMC user for IPMI and Redfish (as the Go metal-bmc); unset is a start-up warning' },
  { name: 'METAL_BMC_IPMI_PASSWORD', default: 'ADMIN', secret: true, description: 'BMC password for IPMI and Redfish (as the Go metal-bmc); unset is a start-up warning' },
  { name: 'METAL_BMC_REDFISH_PORT', default: '443', description: 'HTTPS port of the BMCs\' Redfish service' },
  { name: 'METAL_BMC_BMC_SSH_PORT', default: '22', description: 'TCP port of the SSH service of BMCs whose serial console is an SSH command (Dell iDRAC: console com2); the consoles of other BMCs are IPMI SOL' },
  { name: 'METAL_BMC_REDFISH_INSECURE', default: 'true', description: 'accept self-signed BMC certificates (true/false, 1/0, yes/no)' },
  { name: 'METAL_BMC_REDFISH_CA_FILE', default: '', description: 'CA bundle to verify BMC certificates with (instead of trust on first use; SSH console host keys are still pinned in the trust file, for a CA vouches for none); must be readable when set' },
  { name: 'METAL_BMC_TRUST_REQUIRE_PROOF', default: 'false', description: 'a BMC met for the first time (trust on first use; with METAL_BMC_REDFISH_CA_FILE, for the SSH host key of a console over SSH only, which no CA vouches for) must prove over IPMI (RAKP 2) that it knows the password before it gets a Redfish login or an SSH password; one whose IPMI does not answer, or says it has none, is refused instead of trusted (true/false); a BMC whose record says it was not proven (proof none, written without this setting) is met as a first contact too; a record without a proof field (a hand pin) stays a pin, proven as well and marked proven once it matched. metal-bmc bmc on the trust file honours it as well. For a partition whose BMCs all speak IPMI' },
  { name: 'METAL_BMC_REDFISH_LEGACY_TLS', default: 'false', description: 'reach old BMCs that offer only TLS 1.2 with legacy ciphers (RSA key exchange, CBC) and RSA-1024 or SHA-1-signed certificates: OpenSSL security level 0 for Redfish connections; TLS 1.2 stays the minimum' },
  { name: 'METAL_BMC_REDFISH_HEDGE_AFTER', default: '1s', description: 'a Redfish GET of a report read without an answer this long after going on the wire is sent once more on the BMC\'s other connection and the first answer taken (the tail of a partition\'s cycle is a few requests a BMC answers late); only to a BMC that answered another request of the read sooner (a server error does not count), at most one per BMC read, never for a path that was slow when last asked too (slow every time), never a credential check; commands never; 0: off (0 to 10m)' },
  { name: 'METAL_BMC_REDFISH_SECOND_CONNECTION_AFTER', default: '1s', description: 'a Redfish request that waited this long for a BMC\'s busy connection opens a second one (at most two per BMC): a BMC that answers sooner is read over one connection, one TLS handshake less for it and for metal-bmc, its requests one after the other; once a report cycle has started every BMC and a read has ended since, its reads still running and its retries wait no longer (the CPU a handshake costs is spare then, and they set the cycle\'s end); 0: both open as requests come (0 to 10m)' },
  { name: 'METAL_BMC_REDFISH_TIMEOUT', default: '10s', description: 'deadline of one Redfish request, retries and Retry-After waits included (slow BMCs take several seconds per request); bounded by METAL_BMC_BMC_TIMEOUT and the command deadline' },
  { name: 'METAL_BMC_MQ_ADDRESS', default: 'nats://localhost:4222', description: 'NATS server(s): comma separated URLs (nats, tls, ws, wss) or host:port (port 4222 by default); may carry user:password@ or token@ (a comma or @ in them percent-encoded: %2C, %40), redacted in logs' },
  { name: 'METAL_BMC_MQ_CA_CERT_FILE', default: '', description: 'CA to verify the NATS server with; must be readable when set' },
  { name: 'METAL_BMC_MQ_CLIENT_CERT_FILE', default: '', description: 'client certificate for NATS (set together with the key file); must be readable' },
  { name: 'METAL_BMC_MQ_CLIENT_CERT_KEY_FILE', default: '', description: 'private key of the NATS client certificate; must be readable' },
  { name: 'METAL_BMC_MACHINE_TOPIC', default: '<partition>-machine', description: 'NATS subject of machine events from metal-api' },
  { name: 'METAL_BMC_MACHINE_TOPIC_TTL', default: '30s', description: 'command events older than this are dropped, never executed (checked on receipt and again when the machine\'s queue reaches them); create/delete older than this still run (see the retention). The JetStream consumer\'s ack_wait is this or METAL_BMC_COMMAND_TIMEOUT, the longer, plus 10 s, so a command whose ack was lost comes back stale' },
  { name: 'METAL_BMC_LIFECYCLE_RETENTION', default: '24h', description: 'how long the JetStream stream keeps machine events (its max_age); create and delete events older than the TTL still run, in order, up to this age; at least the topic TTL. The event journal, the KV bucket <durable>-events (one key per RESET, CYCLE or firmware step of an event, so no redelivery sends it twice, and one clock.<instance> key per instance, by which the NATS server\'s clock is measured), keeps its keys this long plus ack_wait and 10 minutes' },
  { name: 'METAL_BMC_STREAM_REPLICAS', default: '1', description: 'replicas of the machine event stream (1, 3 or 5 on a clustered JetStream); applied to an existing stream of ours on start' },
  { name: 'METAL_BMC_RESULT_TOPIC', default: '<partition>-machine-result', description: 'NATS subject command results are published to' },
  { name: 'METAL_BMC_COMMAND_CONCURRENCY', default: '32', description: 'machines with a command in flight at once (one at a time per machine)' },
  { name: 'METAL_BMC_COMMAND_TIMEOUT', default: '60s', description: 'deadline of one machine command' },
  { name: 'METAL_BMC_COMMAND_QUEUE_MAX', default: '16', description: 'commands queued per machine (the running one included); one more takes the place of the oldest queued one it replaces (a create, DISK, PXE or late delete behind which nothing boots the machine, when the newer event sets the boot device first: code SUPERSEDED, acknowledged), else goes back to the stream and comes again, the machine\'s later events waiting behind it (JetStream), else is refused with a result event (core NATS; code QUEUE_FULL)' },
  { name: 'METAL_BMC_COMMAND_MAX_IN_FLIGHT', default: '64', description: 'machine events handled at once; JetStream holds further events on the server, core NATS refuses them with a result event (code OVERLOADED)' },
  { name: 'METAL_BMC_COMMAND_LEADER_LEASE', default: '15s', description: 'with JetStream: of the instances of a partition only the leader takes machine events, so one machine\'s commands run in order on one instance (a KV bucket <durable>-leader holds the leader); another instance takes over when the leader has not renewed for this long (each renews every sixth of it and stops taking events once two thirds passed without a renewal), at once when it stops; the bucket also keeps the partition\'s position in the event stream (a consumer made again starts after what any leader settled); 0: every instance takes events, one machine\'s commands may then run side by side on two instances (3s to 10m, or 0)' },
  { name: 'METAL_BMC_COMMAND_TARGETS', default: 'leases', description: 'which BMCs machine events may target: leases (only BMCs of the current leases, inside METAL_BMC_ALLOWED_CIDRS) or any (any BMC inside METAL_BMC_ALLOWED_CIDRS; the default password still goes only to leased BMCs; an address that holds no lease and is never a BMC (unspecified, loopback, link-local, multicast, limited broadcast, IPv4 or IPv6, also IPv4-mapped) is refused unless a block of METAL_BMC_ALLOWED_CIDRS inside its range names it (e.g. 127.0.0.0/8; not the catch-all))' },
  { name: 'METAL_BMC_FIRMWARE_TIMEOUT', default: '30m', description: 'deadline of one UPDATE-FIRMWARE job (download, push or SimpleUpdate, and the BMC task); jobs run in the background, one per machine and BMC (across instances too, with a leader or without (lease 0): claims in the KV bucket <durable>-firmware; not over core NATS)' },
  { name: 'METAL_BMC_FIRMWARE_URL_ALLOW', default: '', description: 'where firmware images may come from: comma-separated host names (matched exactly) and URL prefixes (scheme://host[:port][/path]: the same scheme, host and port, the path at or below the prefix path at a segment boundary); empty refuses every UPDATE-FIRMWARE. Never metal-api, loopback, link-local; redirects are not followed' },
  { name: 'METAL_BMC_FIRMWARE_ALLOW_LOOPBACK', default: 'false', description: 'let firmware images come from loopback addresses (labs and tests only)' },
  { name: 'METAL_BMC_STATE_DIR', default: '/var/lib/metal-bmc', description: 'directory for state kept across restarts (BMC certificate fingerprints: bmc-trust.json; firmware jobs: firmware-jobs.json); an absolute path, created when missing, probed at start (a file created, written, synced, renamed and removed): a folder that cannot be written stops the start with one line (exit code 2; 1 for a full disk or an I/O error, which a later start may get past); a state file write that fails later is counted in metal_bmc_state_write_failures_total{file} and logged once until the file is written again' },
  { name: 'METAL_BMC_FIRMWARE_MAX_IMAGE_SIZE', default: '512MiB', description: 'largest firmware image metal-bmc pushes to a BMC (B, KiB, MiB, GiB; 1MiB to 16GiB), lowered by the BMC\'s UpdateService MaxImageSizeBytes: a larger Content-Length is refused before the upload, a body that passes it aborts the upload (code FORBIDDEN)' },
  { name: 'METAL_BMC_CONSOLE_PORT', default: '3333', description: 'TLS+SSH console listener for metal-console (0: any free port)' },
  { name: 'METAL_BMC_CONSOLE_CA_CERT_FILE', default: '', description: 'CA that metal-console client certificates must chain to; the TLS console needs all three console files' },
  { name: 'METAL_BMC_CONSOLE_CERT_FILE', default: '', description: 'server certificate of the console listener' },
  { name: 'METAL_BMC_CONSOLE_KEY_FILE', default: '', description: 'private key of the console listener; the SSH host key is derived from it' },
  { name: 'METAL_BMC_CONSOLE_WS_PORT', default: '3334', description: 'WebSocket console listener for browsers and tools (0: any free port)' },
  { name: 'METAL_BMC_CONSOLE_TOKEN', default: '', secret: true, description: 'token mode of the WebSocket console: the token (at least 32 bytes) replaces the client certificate and opens every machine; browsers exchange it once for a session cookie; off when empty' },
  { name: 'METAL_BMC_CONSOLE_ADDRESS', default: '0.0.0.0', description: 'IP address both console listeners bind to (:: for all IPv6 and IPv4 addresses)' },
  { name: 'METAL_BMC_CONSOLE_AUTHZ', default: 'any', description: 'who may open which console: comma-separated rules, any (every certificate of the CA), machine-id (certificate CN or a DNS/URI SAN equals the machine id), CN=.., OU=.., O=.. (that certificate subject opens every machine)' },
  { name: 'METAL_BMC_CONSOLE_CRL_FILE', default: '', description: 'PEM certificate revocation list(s) of the console CA (the CRLs of several CAs may be concatenated); revoked client certificates are refused; reloaded when the file changes, and open connections of newly revoked certificates are then ended (WebSocket close 1008, SSH disconnect, HTTPS streams closed); a file that cannot be read keeps the previous CRL (logged)' },
  { name: 'METAL_BMC_CONSOLE_ALLOWED_ORIGINS', default: '', description: 'browser origins (https://host[:port], comma-separated) allowed to open WebSocket consoles besides the listener itself' },
  { name: 'METAL_BMC_CONSOLE_MAX_CONNECTIONS', default: '1024', description: 'open connections per console listener' },
  { name: 'METAL_BMC_CONSOLE_MAX_CONNECTIONS_PER_SOURCE', default: '32', description: 'open connections per console listener from one IP address, and 8 times that from one IPv6 /64 (one host may hold a whole /64)' },
  { name: 'METAL_BMC_CONSOLE_MAX_SESSIONS', default: '1000', description: 'BMC console sessions open at once (one per machine, shared by its viewers)' },
  { name: 'METAL_BMC_CONSOLE_SCROLLBACK', default: '65536', description: 'bytes of console output kept per machine for new viewers' },
  { name: 'METAL_BMC_CONSOLE_CAPTURE', default: 'off', description: 'all: hold the serial console of every reported machine and log its output under METAL_BMC_CONSOLE_LOG_DIR (needs the console listeners); off: consoles open only while someone watches' },
  { name: 'METAL_BMC_CONSOLE_OWNERSHIP', default: 'nats', description: 'with capture on, which instance holds a machine\'s console: nats (one owner per console among the instances of the partition, decided by a lease in the JetStream bucket KV_metal-bmc-<partition>-consoles on METAL_BMC_MQ_ADDRESS, made again when deleted; no console is held while NATS is unreachable) or local (this instance holds every console: one instance per partition only)' },
  { name: 'METAL_BMC_CONSOLE_LEASE', default: '30s', description: 'with ownership nats: an instance that has not renewed its lease for this long is dead, and another takes its consoles over; each renews every sixth of it and holds nothing once two thirds passed without a renewal (3s to 10m)' },
  { name: 'METAL_BMC_CONSOLE_LOG_DIR', default: '$METAL_BMC_STATE_DIR/console', description: 'where captured console output is kept, one folder per machine id (raw bytes and a time index); an absolute path; while consoles are captured, created when missing and probed at start as METAL_BMC_STATE_DIR is: a folder that cannot be written stops the start with one line naming this variable (exit code 2; 1 for a full disk or an I/O error)' },
  { name: 'METAL_BMC_CONSOLE_LOG_SIZE', default: '8MiB x 4', description: 'captured output kept per machine: <size> x <files> (units B, KiB, MiB, GiB; 4KiB to 1GiB a file, 1 to 1000 files); the oldest file goes when the last is full' },
  { name: 'METAL_BMC_CONSOLE_WORKERS', default: 'cores - 1, at least 1, at most 4', description: 'worker threads that run the IPMI SOL sessions of consoles (SOL crypto and packets off the main loop); 0: in the main thread' },
  { name: 'METAL_BMC_CONSOLE_IDLE_TIMEOUT', default: '30m', description: 'an idle console session is closed after this long (0: never)' },
  { name: 'METAL_BMC_HTTP_ADDRESS', default: '127.0.0.1:2112', description: 'host:port of the health and Prometheus metrics listener (:2112 for all interfaces)' },
  { name: 'METAL_BMC_HTTP_ALLOWED_HOSTS', default: '', description: 'host names (comma-separated, no port) the health and metrics listener answers in the Host header besides IP addresses, localhost, this host\'s names (os.hostname(), its first label, and the names on the /etc/hosts line that names it, such as its full name) and the host of METAL_BMC_HTTP_ADDRESS; others get 421 (DNS rebinding from a browser); * answers any' },
  { name: 'METAL_BMC_STATUS_GRACE', default: '1h', description: 'how long a BMC whose lease vanished stays in the status (GET /v1/status, metal-bmc status) before it is forgotten (0: at once)' },
  { name: 'METAL_BMC_HEAP_GROWTH', default: '100', description: 'how far (percent) the JavaScript heap may grow past what survived the last full garbage collection before the next one (V8 --heap-growing-percent), 0 to 400; 0: V8\'s own factor, up to 4x, which let the heap of a 1,000-BMC report cycle climb to ~145 MiB with ~35 MiB alive; 50 keeps the peak RSS ~10–20 MiB lower than 100 at ~15 % more CPU per BMC in a report cycle (the collections\' threads take the cores the report waits for)' },
  { name: 'METAL_BMC_SHUTDOWN_TIMEOUT', default: '30s', description: 'on SIGTERM, how long in-flight work may take before it is cut off' },
  { name: 'METAL_BMC_LOG_LEVEL', default: 'info', description: 'trace, debug, info, warn or error (any case); anything else is info, with a warning' },
];

/** Variables of the Go metal-bmc that this implementation does not use. */
export const IGNORED_GO_VARIABLES: readonly string[] = [
  'METAL_BMC_METAL_APISERVER_URL',
  'METAL_BMC_TOKEN_FILE',
  'METAL_BMC_MQ_LOGLEVEL',
];

/**
 * Unprefixed names the Go metal-bmc also reads. Its configuration library (kelseyhightower/
 * envconfig) falls back to the bare name for every field with an explicit `envconfig:"..."`
 * tag; fields named by `split_words` (LOG_LEVEL, LEASE_FILE, MACHINE_TOPIC, IPMI_*, ...) have
 * no fallback. MQ_LOGLEVEL is also read there; this implementation ignores it either way.
 * Precedence as there: the METAL_BMC_ name wins; the bare name is used when it is unset.
 */
export const UNPREFIXED_FALLBACKS: Readonly<Record<string, string>> = {
  METAL_BMC_PARTITION_ID: 'PARTITION_ID',
  METAL_BMC_METAL_API_URL: 'METAL_API_URL',
  METAL_BMC_METAL_API_HMAC_KEY: 'METAL_API_HMAC_KEY',
  METAL_BMC_MQ_ADDRESS: 'MQ_ADDRESS',
  METAL_BMC_MQ_CA_CERT_FILE: 'MQ_CA_CERT_FILE',
  METAL_BMC_MQ_CLIENT_CERT_FILE: 'MQ_CLIENT_CERT_FILE',
  METAL_BMC_MQ_CLIENT_CERT_KEY_FILE: 'MQ_CLIENT_CERT_KEY_FILE',
  METAL_BMC_MACHINE_TOPIC_TTL: 'MACHINE_TOPIC_TTL',
  METAL_BMC_CONSOLE_PORT: 'CONSOLE_PORT',
  METAL_BMC_CONSOLE_CA_CERT_FILE: 'CONSOLE_CA_CERT_FILE',
  METAL_BMC_CONSOLE_CERT_FILE: 'CONSOLE_CERT_FILE',
  METAL_BMC_CONSOLE_KEY_FILE: 'CONSOLE_KEY_FILE',
};

/**
 * Default and behaviour of each variable in the Go metal-bmc (v0.7, pkg/config/config.go and
 * its use), for the "Go metal-bmc" column of docs/configuration.md. Variables missing here do
 * not exist there.
 */
export const GO_METAL_BMC: Readonly<Record<string, string>> = {
  METAL_BMC_PARTITION_ID: 'required; also read as `PARTITION_ID`',
  METAL_BMC_METAL_API_URL: 'required; also read as `METAL_API_URL`',
  METAL_BMC_METAL_API_HMAC_KEY: 'required; also read as `METAL_API_HMAC_KEY`; logged in clear at start',
  METAL_BMC_LEASE_FILE: '`/var/lib/dhcp/dhcpd.leases`, ISC format only (`ends never` breaks the parse)',
  METAL_BMC_REPORT_INTERVAL: '`5m`; the first report only after one interval',
  METAL_BMC_IGNORE_MACS: 'unset; exact string match (case and separator matter)',
  METAL_BMC_ALLOWED_CIDRS: '`0.0.0.0/0`; IPv4 and IPv6 prefixes (an IPv6 prefix matches no IPv4 lease); an invalid one stops start-up',
  METAL_BMC_IPMI_PORT: '`623`',
  METAL_BMC_IPMI_USER: '`ADMIN`',
  METAL_BMC_IPMI_PASSWORD: '`ADMIN`; logged in clear at start',
  METAL_BMC_MQ_ADDRESS: '`localhost:4150`: one nsqd; also read as `MQ_ADDRESS`',
  METAL_BMC_MQ_CA_CERT_FILE: 'unset, but read at start: mutual TLS to nsqd is mandatory; also read as `MQ_CA_CERT_FILE`',
  METAL_BMC_MQ_CLIENT_CERT_FILE: 'as the CA file; also read as `MQ_CLIENT_CERT_FILE`',
  METAL_BMC_MQ_CLIENT_CERT_KEY_FILE: 'as the CA file; also read as `MQ_CLIENT_CERT_KEY_FILE`',
  METAL_BMC_MACHINE_TOPIC: '`machine` (deployments set `<partition>-machine`); NSQ channel `core`; not read without the prefix',
  METAL_BMC_MACHINE_TOPIC_TTL: '`30s`, read but not enforced since v0.5.0; also read as `MACHINE_TOPIC_TTL`',
  METAL_BMC_CONSOLE_PORT: '`3333`; also read as `CONSOLE_PORT`',
  METAL_BMC_CONSOLE_CA_CERT_FILE: '`ca.pem` in the working directory; a missing file stops start-up; also read as `CONSOLE_CA_CERT_FILE`',
  METAL_BMC_CONSOLE_CERT_FILE: '`cert.pem` in the working directory, as the CA file; also read as `CONSOLE_CERT_FILE`',
  METAL_BMC_CONSOLE_KEY_FILE: '`key.pem` in the working directory, as the CA file; also read as `CONSOLE_KEY_FILE`',
  METAL_BMC_LOG_LEVEL: '`debug`; debug, info, warn, error in any case; anything else is info',
  METAL_BMC_MQ_LOGLEVEL: '`warn`: log level of the NSQ client; also read as `MQ_LOGLEVEL`',
};

/** What the Go daemon fixes without a variable, for the column's rows of variables it lacks. */
export const GO_FIXED: Readonly<Record<string, string>> = {
  METAL_BMC_REPORT_CONCURRENCY: 'none: 20 BMCs at once',
  METAL_BMC_REPORT_WORKERS: 'none: goroutines on every core',
  METAL_BMC_REPORT_REDFISH_SESSION_MAX_AGE: 'none: go-hal logs in (a gofish session) for every connection',
  METAL_BMC_REPORT_REPEAT_LOG_INTERVAL: 'none: per-BMC log lines are not de-duplicated',
  METAL_BMC_BMC_TIMEOUT: 'none: go-hal\'s 1 minute Redfish connection timeout',
  METAL_BMC_METAL_API_TIMEOUT: 'none: metal-go\'s 30 s (go-openapi runtime), no retry',
  METAL_BMC_METAL_API_CA_FILE: 'none: the system\'s CA store (Go\'s TLS default)',
  METAL_BMC_PROTOCOL: 'none: Redfish is required, IPMI used for Supermicro',
  METAL_BMC_GUID_ENCODING: 'none: a BMC whose Redfish read fails is not reported',
  METAL_BMC_REDFISH_PORT: 'none: 443',
  METAL_BMC_BMC_SSH_PORT: 'none: 22',
  METAL_BMC_REDFISH_INSECURE: 'none: certificates are never verified',
  METAL_BMC_COMMAND_CONCURRENCY: 'none: 10 messages in flight',
  METAL_BMC_COMMAND_TIMEOUT: 'none: no deadline',
  METAL_BMC_IPMI_CIPHER_SUITE: 'none: ipmitool\'s default suite for Supermicro (17 since ipmitool 1.8.19, 3 before)',
  METAL_BMC_RESULT_TOPIC: 'none: results are not published',
  METAL_BMC_HTTP_ADDRESS: 'none: no health or metrics listener',
  METAL_BMC_HTTP_ALLOWED_HOSTS: 'none: no health or metrics listener',
  METAL_BMC_SHUTDOWN_TIMEOUT: 'none: SIGTERM ends the process at once',
  METAL_BMC_HEAP_GROWTH: 'none: the Go runtime\'s GOGC (100 %)',
  METAL_BMC_STATUS_GRACE: 'none: no status of BMCs',
  METAL_BMC_LEASE_FORMAT: 'none: ISC dhcpd only',
  METAL_BMC_REQUIRE_TLS: 'none: plain http accepted',
  METAL_BMC_REDFISH_CA_FILE: 'none: certificates are never verified',
  METAL_BMC_TRUST_REQUIRE_PROOF: 'none: BMC certificates are never verified nor recorded',
  METAL_BMC_REDFISH_LEGACY_TLS: 'none: Go\'s TLS defaults (TLS 1.2 and up, no RSA-1024)',
  METAL_BMC_REDFISH_TIMEOUT: 'none: go-hal\'s 1 minute Redfish connection timeout',
  METAL_BMC_REDFISH_HEDGE_AFTER: 'none: each request is sent once (retried only after an error)',
  METAL_BMC_REDFISH_SECOND_CONNECTION_AFTER: 'none: Go\'s HTTP client opens a connection per request in flight',
  METAL_BMC_CONSOLE_WS_PORT: 'none: no WebSocket console',
  METAL_BMC_CONSOLE_ADDRESS: 'none: all interfaces',
  METAL_BMC_CONSOLE_AUTHZ: 'none: every certificate of the console CA opens every machine',
  METAL_BMC_CONSOLE_CRL_FILE: 'none: no revocation check',
  METAL_BMC_CONSOLE_MAX_CONNECTIONS: 'none: unbounded',
  METAL_BMC_CONSOLE_MAX_CONNECTIONS_PER_SOURCE: 'none: unbounded',
  METAL_BMC_CONSOLE_MAX_SESSIONS: 'none: unbounded, one BMC session per viewer',
  METAL_BMC_CONSOLE_SCROLLBACK: 'none: no scrollback',
  METAL_BMC_CONSOLE_IDLE_TIMEOUT: 'none: sessions stay open',
  METAL_BMC_CONSOLE_CAPTURE: 'none: output is not kept',
  METAL_BMC_CONSOLE_LOG_DIR: 'none: output is not kept',
  METAL_BMC_CONSOLE_OWNERSHIP: 'none: no console capture',
  METAL_BMC_CONSOLE_LEASE: 'none: no console capture',
  METAL_BMC_INSTANCE_ID: 'none: instances do not know each other',
  METAL_BMC_CONSOLE_LOG_SIZE: 'none: output is not kept',
  METAL_BMC_CONSOLE_WORKERS: 'none: one goroutine per console',
  METAL_BMC_CONSOLE_TOKEN: 'none: no WebSocket console',
  METAL_BMC_CONSOLE_ALLOWED_ORIGINS: 'none: no WebSocket console',
  METAL_BMC_LIFECYCLE_RETENTION: 'none: nsqd keeps messages until consumed',
  METAL_BMC_STREAM_REPLICAS: 'none: one nsqd',
  METAL_BMC_FIRMWARE_TIMEOUT: 'none: background update without a deadline',
  METAL_BMC_STATE_DIR: 'none: firmware jobs are kept in memory only',
  METAL_BMC_COMMAND_TARGETS: 'none: any address metal-api names',
  METAL_BMC_COMMAND_QUEUE_MAX: 'none: no queue per machine (commands run as they arrive)',
  METAL_BMC_COMMAND_MAX_IN_FLIGHT: 'none: 10 messages in flight',
  METAL_BMC_COMMAND_LEADER_LEASE: 'none: one instance per partition',
  METAL_BMC_FIRMWARE_URL_ALLOW: 'none: any URL (Supermicro: sum downloads it, Dell: the BMC does)',
  METAL_BMC_FIRMWARE_ALLOW_LOOPBACK: 'none: any URL',
  METAL_BMC_FIRMWARE_MAX_IMAGE_SIZE: 'none: images are not pushed by metal-bmc (Supermicro: sum reads the file, Dell: the BMC fetches it)',
};

/** The "Go metal-bmc" column of a variable's row. */
export function goColumn(name: string): string {
  return GO_METAL_BMC[name] ?? GO_FIXED[name] ?? 'none';
}
