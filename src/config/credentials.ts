/**
 * systemd's `LoadCredential=`: a file in `$CREDENTIALS_DIRECTORY` named after a secret variable
 * (`METAL_BMC_METAL_API_HMAC_KEY`, `METAL_BMC_IPMI_PASSWORD`, `METAL_BMC_CONSOLE_TOKEN`) supplies
 * that variable, so secrets stay out of the environment, which other processes of the same user
 * and crash reports can read. One trailing newline is dropped. A secret set both ways is an error.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Env } from './env.js';
import { ConfigError } from './error.js';
import { VARIABLES } from './variables.js';

export const CREDENTIAL_VARIABLES: readonly string[] = VARIABLES.filter((v) => v.secret).map((v) => v.name);

export function withCredentialFiles(env: Env): Env {
  const dir = env.CREDENTIALS_DIRECTORY;
  if (!dir) return env;
  const merged: Env = { ...env };
  for (const name of CREDENTIAL_VARIABLES) {
    const file = join(dir, name);
    if (!existsSync(file)) continue;
    if ((env[name] ?? '').trim() !== '') throw new ConfigError('is set in the environment and as a systemd credential; set it one way only', name);
    try {
      merged[name] = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new ConfigError(`systemd credential ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, name);
    }
  }
  return merged;
}
