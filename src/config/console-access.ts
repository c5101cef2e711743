/**
 * The console's access settings as values: METAL_BMC_CONSOLE_AUTHZ rules and the browser
 * origins of METAL_BMC_CONSOLE_ALLOWED_ORIGINS. What the rules mean is src/console/access.ts.
 */
import { BmcError } from '../errors.js';

export type SubjectAttribute = 'CN' | 'OU' | 'O';

export type AuthzRule = { kind: 'any' } | { kind: 'machine-id' } | { kind: 'attribute'; attribute: SubjectAttribute; value: string };

/** Parses a comma-separated rule list ('' means any); throws INVALID_ARGUMENT naming the bad term. */
export function parseAuthz(text: string): AuthzRule[] {
  const terms = text.split(',').map((t) => t.trim()).filter((t) => t !== '');
  if (terms.length === 0) return [{ kind: 'any' }];
  return terms.map((term): AuthzRule => {
    if (term === 'any') return { kind: 'any' };
    if (term === 'machine-id') return { kind: 'machine-id' };
    const m = /^(CN|OU|O)=(.+)$/.exec(term);
    if (!m) throw new BmcError('INVALID_ARGUMENT', `unknown rule ${JSON.stringify(term.slice(0, 80))}: use any, machine-id, CN=..., OU=... or O=...`);
    return { kind: 'attribute', attribute: m[1] as SubjectAttribute, value: m[2]! };
  });
}

export function describeAuthz(rules: readonly AuthzRule[]): string {
  return rules.map((r) => (r.kind === 'attribute' ? `${r.attribute}=${r.value}` : r.kind)).join(',');
}

/** `https://host[:port]` in lower case, or undefined when `text` is not an http(s) origin. */
export function normalOrigin(text: string): string | undefined {
  try {
    const url = new URL(text);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.origin.toLowerCase() : undefined;
  } catch {
    return undefined;
  }
}
