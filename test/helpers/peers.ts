/**
 * The real programs the tests run as peers, and what happens when one is missing.
 *
 * A test file names the peers it runs: `const { describe, it } = withPeers('ipmi_sim', 'ipmitool')`
 * and uses the returned `describe`/`it` in place of vitest's. When every peer is installed they are
 * vitest's own. When one is missing the file fails at once with a message naming the program and
 * its Debian package (scripts/install-deps.sh installs them all), so a missing program is never
 * mistaken for a passing test. Only with METAL_BMC_TEST_SKIP_PEERS=1 set explicitly are the file's
 * tests skipped instead, with one line on stderr saying which file and which programs.
 */
import { accessSync, constants } from 'node:fs';
import { basename, delimiter, join } from 'node:path';
import { describe as vitestDescribe, it as vitestIt } from 'vitest';

/** program → Debian package (the names scripts/install-deps.sh installs) */
export const PEERS = {
  ipmi_sim: { pkg: 'openipmi', paths: [] as string[] },
  ipmitool: { pkg: 'ipmitool', paths: [] as string[] },
  ipmipower: { pkg: 'freeipmi-tools', paths: [] as string[] },
  ipmiconsole: { pkg: 'freeipmi-tools', paths: [] as string[] },
  // util-linux's script gives a program that wants a terminal (ipmiconsole) a pty
  script: { pkg: 'bsdutils', paths: [] as string[] },
  'nats-server': { pkg: 'nats-server', paths: [] as string[] },
  ssh: { pkg: 'openssh-client', paths: [] as string[] },
  'ssh-keygen': { pkg: 'openssh-client', paths: [] as string[] },
  openssl: { pkg: 'openssl', paths: [] as string[] },
  curl: { pkg: 'curl', paths: [] as string[] },
  ss: { pkg: 'iproute2', paths: [] as string[] },
  // playwright-core drives Debian's Chromium at this path
  chromium: { pkg: 'chromium', paths: ['/usr/bin/chromium'] },
  'systemd-analyze': { pkg: 'systemd', paths: [] as string[] },
  // the web server of AMI MegaRAC BMCs, a real peer for the Redfish transport's HTTP/1.1
  lighttpd: { pkg: 'lighttpd', paths: [] as string[] },
} as const;

export type PeerName = keyof typeof PEERS;

export const SKIP_PEERS_VARIABLE = 'METAL_BMC_TEST_SKIP_PEERS';

/** where programs are looked for: PATH, as the tests start them by name */
export function defaultSearchPath(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.PATH ?? '').split(delimiter).filter(Boolean);
}

/** Debian puts nats-server and FreeIPMI's ipmipower in /usr/sbin, which a non-root PATH often lacks */
const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The absolute path of an installed peer, or undefined. */
export function peerPath(name: PeerName, search: readonly string[] = defaultSearchPath()): string | undefined {
  const fixed: readonly string[] = PEERS[name].paths;
  const candidates = fixed.length > 0 ? fixed : search.map((dir) => join(dir, name));
  return candidates.find(executable);
}

/** The absolute path of a peer the file declared with withPeers (throws naming the package if absent). */
export function requirePeerPath(name: PeerName): string {
  const path = peerPath(name);
  if (!path) throw new Error(missingMessage([name]));
  return path;
}

export function missingPeers(names: readonly PeerName[], search: readonly string[] = defaultSearchPath()): PeerName[] {
  return names.filter((n) => peerPath(n, search) === undefined);
}

function describeMissing(missing: readonly PeerName[]): string {
  return missing
    .map((n) => {
      const inSbin = PEERS[n].paths.length === 0 ? SBIN.map((dir) => join(dir, n)).find(executable) : undefined;
      return `${n} (Debian package ${PEERS[n].pkg}${inSbin ? `; installed at ${inSbin}, but its folder is not on PATH` : ''})`;
    })
    .join(', ');
}

export function missingMessage(missing: readonly PeerName[]): string {
  const pkgs = [...new Set(missing.map((n) => PEERS[n].pkg))].join(' ');
  return (
    `missing test peer program(s): ${describeMissing(missing)}. ` +
    `Install them with \`apt-get install -y ${pkgs}\` or \`bash scripts/install-deps.sh\`, ` +
    `or set ${SKIP_PEERS_VARIABLE}=1 to skip the tests that need them.`
  );
}

export function skipPeersRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  return env[SKIP_PEERS_VARIABLE] === '1';
}

export interface PeerSuite {
  describe: typeof vitestDescribe;
  it: typeof vitestIt;
}

/** The caller's test file, for the skip message. */
function callerFile(): string {
  const line = new Error().stack?.split('\n').find((l) => /\.test\.ts/.test(l));
  const m = line ? /([^\s/()]+\.test\.ts)/.exec(line) : null;
  return m ? m[1]! : 'a test file';
}

/**
 * `describe` and `it` for a file whose tests run `names`. Call once at the top of the file, before
 * any hook: with a peer missing it throws (the file fails with the message) unless
 * METAL_BMC_TEST_SKIP_PEERS=1, in which case every test of the file is skipped (and so are its hooks).
 */
export function withPeers(...names: PeerName[]): PeerSuite {
  return checkPeers(names, { file: basename(callerFile()) });
}

/** withPeers with its inputs explicit (for its own test). */
export function checkPeers(names: readonly PeerName[], o: { file: string; env?: NodeJS.ProcessEnv; search?: readonly string[]; warn?: (line: string) => void }): PeerSuite {
  const env = o.env ?? process.env;
  const missing = missingPeers(names, o.search ?? defaultSearchPath(env));
  if (missing.length === 0) return { describe: vitestDescribe, it: vitestIt };
  if (!skipPeersRequested(env)) throw new Error(`${o.file}: ${missingMessage(missing)}`);
  (o.warn ?? console.warn)(`${SKIP_PEERS_VARIABLE}=1: skipping every test of ${o.file}: missing ${describeMissing(missing)}`);
  return { describe: vitestDescribe.skip as typeof vitestDescribe, it: vitestIt.skip as typeof vitestIt };
}
