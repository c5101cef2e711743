/**
 * Requests without an Origin that another site's page started (Sec-Fetch-Site): the console API
 * (`/v1/`) is never theirs; a page only by a top-level navigation (src/console/http-auth.ts).
 */
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { createHttpAuth } from '../../src/console/http-auth.js';
import { createThrottle } from '../../src/console/limits.js';
import { createCookieSessions } from '../../src/console/token-cookie.js';

const auth = createHttpAuth({ rules: [], allowedOrigins: [], throttle: createThrottle({ maxFailures: 10, windowMs: 60_000, maxSources: 100 }), cookies: createCookieSessions({ ttlMs: 3_600_000, max: 10 }) });
const req = (url: string, headers: Record<string, string>) => ({ url, headers: { host: 'metal-bmc:3334', ...headers } }) as unknown as IncomingMessage;
const site = (value: string, dest: string, mode: string) => ({ 'sec-fetch-site': value, 'sec-fetch-dest': dest, 'sec-fetch-mode': mode });

describe('a request another site started, without an Origin', () => {
  it.each([
    ['/v1/console/grep?pattern=error', site('cross-site', 'image', 'no-cors')],
    ['/v1/console/log/m1?follow=1', site('cross-site', 'document', 'navigate')],
    ['/v1/status', site('same-site', 'empty', 'no-cors')],
    ['/history/m1', site('cross-site', 'iframe', 'navigate')],
    ['/status', site('same-site', 'script', 'no-cors')],
  ])('%s is refused (403, origin)', (url, headers) => {
    expect(auth.checkOrigin(req(url, headers))).toMatchObject({ ok: false, status: 403, reason: 'origin' });
  });

  it.each([
    ['/console/m1', site('cross-site', 'document', 'navigate')],
    ['/status', site('same-site', 'document', 'navigate')],
    ['/v1/console/grep?pattern=error', site('same-origin', 'empty', 'cors')],
    ['/v1/status', site('none', 'document', 'navigate')],
    ['/v1/status', {}],
  ])('%s passes (%o)', (url, headers) => {
    expect(auth.checkOrigin(req(url, headers))).toBeUndefined();
  });
});
