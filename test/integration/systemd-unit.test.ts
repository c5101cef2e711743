/** The shipped systemd unit, checked by systemd's own tools (offline: no running systemd needed). */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { CREDENTIAL_VARIABLES } from '../../src/config/credentials.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('systemd-analyze');

const UNIT = 'systemd/metal-bmc.service';

describe('systemd unit', () => {
  it('passes systemd-analyze verify without a complaint', () => {
    const r = spawnSync('systemd-analyze', ['verify', UNIT], { encoding: 'utf8' });
    expect(r.error, 'systemd-analyze is missing: apt-get install -y systemd').toBeUndefined();
    expect(r.stderr.trim()).toBe('');
    expect(r.status).toBe(0);
  });

  it('has an exposure score of at most 1.5 in systemd-analyze security', () => {
    const out = execFileSync('systemd-analyze', ['security', '--offline=true', '--no-pager', UNIT], { encoding: 'utf8' });
    const score = Number(/Overall exposure level for metal-bmc\.service: ([\d.]+)/.exec(out)?.[1]);
    expect(score).toBeLessThanOrEqual(1.5);
  });

  it('loads only credentials the daemon reads, under the variable names', () => {
    const names = [...readFileSync(UNIT, 'utf8').matchAll(/^LoadCredential=([^:]+):/gm)].map((m) => m[1]);
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) expect(CREDENTIAL_VARIABLES).toContain(name);
  });
});
