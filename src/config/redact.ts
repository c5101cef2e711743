/**
 * A copy of the configuration that is safe to log: every secret is `[redacted]`, including
 * credentials inside the metal-api URL and the NATS address. Unset secrets stay unset so the
 * log still tells whether one was configured.
 */
import type { Config } from './config.js';
import { redactMqAddress } from './mq.js';

export const REDACTED = '[redacted]';

/** `http://user:secret@host/` → `http://user:[redacted]@host/`; a bare `user@` is taken as a token. */
function redactUrlCredentials(href: string): string {
  return href.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/@]*)@/i, (_all, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return `${scheme}${colon < 0 ? REDACTED : `${userinfo.slice(0, colon)}:${REDACTED}`}@`;
  });
}

export function redactConfig(config: Config): Config {
  const copy = structuredClone(config);
  copy.metalApi.hmacKey = REDACTED;
  copy.metalApi.url = redactUrlCredentials(config.metalApi.url);
  copy.ipmi.password = REDACTED;
  if (copy.console.token !== undefined) copy.console.token = REDACTED;
  copy.mq.address = redactMqAddress(config.mq.address);
  if (copy.mq.password !== undefined) copy.mq.password = REDACTED;
  if (copy.mq.token !== undefined) copy.mq.token = REDACTED;
  return copy;
}
