/** The peer check of the test suite: a missing program fails with its Debian package, skipping is explicit. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkPeers, missingPeers, peerPath } from '../helpers/peers.js';

const empty = mkdtempSync(join(tmpdir(), 'no-peers-'));
afterAll(() => rmSync(empty, { recursive: true, force: true }));

describe('test peers', () => {
  it('a missing program fails the file with a message naming it and its Debian package', () => {
    expect(missingPeers(['ipmitool', 'nats-server'], [empty])).toEqual(['ipmitool', 'nats-server']);
    expect(() => checkPeers(['ipmitool', 'ipmi_sim'], { file: 'x.test.ts', env: {}, search: [empty] })).toThrow(
      /^x\.test\.ts: missing test peer program\(s\): ipmitool \(Debian package ipmitool\), ipmi_sim \(Debian package openipmi\)\. Install them with `apt-get install -y ipmitool openipmi`.*METAL_BMC_TEST_SKIP_PEERS=1/,
    );
    // Debian's nats-server lives in /usr/sbin: when it is there but not on PATH, the message says so
    expect(() => checkPeers(['nats-server'], { file: 'x.test.ts', env: {}, search: [empty] })).toThrow(/nats-server \(Debian package nats-server(; installed at \/usr\/sbin\/nats-server, but its folder is not on PATH)?\)/);
  });

  it('only METAL_BMC_TEST_SKIP_PEERS=1 turns the failure into a skip, and says what it skipped', () => {
    expect(() => checkPeers(['ssh'], { file: 'x.test.ts', env: { METAL_BMC_TEST_SKIP_PEERS: 'yes' }, search: [empty] })).toThrow(/openssh-client/);
    const lines: string[] = [];
    const suite = checkPeers(['ssh', 'curl'], { file: 'x.test.ts', env: { METAL_BMC_TEST_SKIP_PEERS: '1' }, search: [empty], warn: (l) => lines.push(l) });
    expect(suite.describe).not.toBe(describe);
    expect(lines).toEqual(['METAL_BMC_TEST_SKIP_PEERS=1: skipping every test of x.test.ts: missing ssh (Debian package openssh-client), curl (Debian package curl)']);
  });

  it('with every program present the file gets vitest\'s own describe and it', () => {
    const dir = '/usr/bin';
    expect(peerPath('openssl', [dir])).toBe('/usr/bin/openssl');
    const suite = checkPeers(['openssl'], { file: 'x.test.ts', env: {}, search: [dir] });
    expect(suite.describe).toBe(describe);
    expect(suite.it).toBe(it);
  });
});
