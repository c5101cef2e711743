/** The logger hides every credential field name, at the top and up to five levels deep. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createLogger, SECRET_KEYS } from '../../src/log.js';

function logged(obj: Record<string, unknown>): string {
  const lines: string[] = [];
  createLogger({}, { write: (l: string) => void lines.push(l) }).info(obj, 'event');
  return lines.join('');
}

function nest(depth: number, key: string, value: string): Record<string, unknown> {
  let obj: Record<string, unknown> = { [key]: value, visible: 'still-here' };
  for (let i = 0; i < depth; i++) obj = { [`level${i}`]: obj };
  return obj;
}

describe('log redaction', () => {
  it.each(SECRET_KEYS)('hides %s at every depth from 0 to 5', (key) => {
    for (let depth = 0; depth <= 5; depth++) {
      const text = logged(nest(depth, key, 'SECRET-VALUE-123'));
      expect(text, `depth ${depth}`).not.toContain('SECRET-VALUE-123');
      expect(text).toContain('still-here');
    }
  });

  it('Redfish session bodies and HTTP headers as they are logged', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 8 }).filter((s) => /^[\w-]+$/.test(s)), (secret) => {
        const text = logged({ request: { body: { UserName: 'admin', Password: secret }, headers: { 'X-Auth-Token': secret, Cookie: `s=${secret}` } } });
        expect(text).not.toContain(secret);
        expect(text).toContain('admin');
      }),
      { numRuns: 50 },
    );
  });
});
