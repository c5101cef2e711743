/**
 * Hardware addresses in one spelling: lowercase hex, two digits per byte, colon-separated.
 * Accepts `0:1a:2B:...`, `00-1A-2B-...`, `001a.2b3c.4d5e` and `001a2b3c4d5e`.
 */
import { BmcError } from '../errors.js';

/** Longest hardware address we accept (InfiniBand has 20 bytes). */
const MAX_OCTETS = 20;
const HEX = /^[0-9a-fA-F]+$/;

function pairs(hex: string): string[] | undefined {
  if (hex.length === 0 || hex.length % 2 !== 0 || !HEX.test(hex)) return undefined;
  const out: string[] = [];
  for (let i = 0; i < hex.length; i += 2) out.push(hex.slice(i, i + 2));
  return out;
}

function groups(text: string): string[] | undefined {
  if (text.includes(':') || text.includes('-')) {
    const parts = text.split(/[:-]/);
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i] as string;
      if (part.length < 1 || part.length > 2 || !HEX.test(part)) return undefined;
      if (part.length === 1) parts[i] = `0${part}`;
    }
    return parts;
  }
  if (text.includes('.')) {
    const parts = text.split('.');
    if (parts.some((p) => p.length !== 4)) return undefined;
    return pairs(parts.join(''));
  }
  return pairs(text);
}

/** Whether `text` is already `xx:xx:xx:xx:xx:xx` in lowercase: the common case, checked without allocating. */
function isCanonical48(text: string): boolean {
  if (text.length !== 17) return false;
  for (let i = 0; i < 17; i++) {
    const c = text.charCodeAt(i);
    const ok = i % 3 === 2 ? c === 0x3a : (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66);
    if (!ok) return false;
  }
  return true;
}

/** The normalised address, or undefined when `text` is not a hardware address. */
export function normalizeMac(text: string): string | undefined {
  if (isCanonical48(text)) return text;
  const octets = groups(text.trim());
  if (octets === undefined || octets.length > MAX_OCTETS) return undefined;
  return octets.join(':').toLowerCase();
}

/** Normalises a set of configured addresses once; an unusable entry raises INVALID_ARGUMENT naming it. */
export function normalizeMacSet(macs: Iterable<string>, what = 'ignored MAC'): Set<string> {
  const out = new Set<string>();
  for (const mac of macs) {
    const normal = normalizeMac(mac);
    if (normal === undefined) throw new BmcError('INVALID_ARGUMENT', `${what} ${JSON.stringify(mac)} is not a hardware address`);
    out.add(normal);
  }
  return out;
}
