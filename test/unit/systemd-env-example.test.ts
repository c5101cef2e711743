/**
 * The documented install (README "Running as a systemd service"): the example environment file
 * with the secrets the unit loads as credentials (`LoadCredential=`) is a configuration the daemon
 * starts with. A secret in both places is refused (exit 2), so the example must leave them out.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';

const UNIT = 'systemd/metal-bmc.service';
const EXAMPLE = 'systemd/metal-bmc.env.example';
const ETC = '/etc/metal-bmc/';

/** systemd's EnvironmentFile: KEY=VALUE lines, `#` comments and blank lines ignored */
function environmentFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) continue;
    const eq = t.indexOf('=');
    env[t.slice(0, eq)] = t.slice(eq + 1);
  }
  return env;
}

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('the example environment file with the unit\'s credentials', () => {
  it('is a configuration the daemon accepts: no secret set both ways', () => {
    dir = mkdtempSync(join(tmpdir(), 'metal-bmc-credentials-'));
    const credentials = [...readFileSync(UNIT, 'utf8').matchAll(/^LoadCredential=([^:]+):/gm)].map((m) => m[1]!);
    expect(credentials.length).toBeGreaterThan(0);
    for (const name of credentials) writeFileSync(join(dir, name), 'a-secret-from-the-credential-file\n');
    const env = environmentFile(readFileSync(EXAMPLE, 'utf8'));
    for (const name of credentials) expect(env, `${name} is a credential file in the README's steps`).not.toHaveProperty(name);
    // the certificate files the example names, installed under a temporary /etc/metal-bmc
    for (const [name, value] of Object.entries(env)) {
      if (!value.startsWith(ETC)) continue;
      env[name] = join(dir, value.slice(ETC.length));
      writeFileSync(env[name], '');
    }
    const config = loadConfig({ ...env, CREDENTIALS_DIRECTORY: dir });
    expect(config.metalApi.hmacKey).toBe('a-secret-from-the-credential-file');
  });
});
