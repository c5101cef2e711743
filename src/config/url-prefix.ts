/**
 * A URL prefix of METAL_BMC_FIRMWARE_URL_ALLOW: http or https, host, port and path only. Read here,
 * where the configuration checks it, and by the firmware URL policy (commands/firmware-url.ts),
 * which matches image URLs against it.
 */

/** An allow-list entry with a scheme, as a URL prefix, or why it is none (a phrase without the entry, which may hold a password; the configuration refuses such an entry at start). */
export function urlPrefixEntry(entry: string): URL | string {
  let base: URL;
  try {
    base = new URL(entry);
  } catch {
    return 'is not a URL';
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') return 'is not an http or https URL';
  if (base.username !== '' || base.password !== '' || base.search !== '' || base.hash !== '') return 'may name scheme, host, port and path only (no user, password, query or fragment)';
  return base;
}

