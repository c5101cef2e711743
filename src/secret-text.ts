/**
 * Secrets (a BMC's password, a session token, basic credentials, metal-api's HMAC key) taken out
 * of text that leaves the daemon: an error message, a log line, the status page. A BMC may echo
 * what it was sent (a login's body in a 400's message, a URL with credentials), so its text is
 * scrubbed too.
 */

/** Shorter values are not replaced: every "a" or "1" in a message would go. */
export const MIN_REDACTED_SECRET_CHARS = 3;

const REDACTED = '[redacted]';

/**
 * `text` with every place a secret (of MIN_REDACTED_SECRET_CHARS or more) occurs as `[redacted]`,
 * overlapping or touching places as one. The places are found in the text as given, all secrets
 * at once: replacing one secret after the other would leave pieces of a longer secret that
 * contains a shorter one, or that overlaps it ("pass" in "compass-word").
 */
export function redactSecrets(text: string, secrets: Iterable<string>): string {
  const places: Array<[start: number, end: number]> = [];
  for (const s of secrets) {
    if (s.length < MIN_REDACTED_SECRET_CHARS) continue;
    for (let at = text.indexOf(s); at !== -1; at = text.indexOf(s, at + 1)) places.push([at, at + s.length]);
  }
  if (places.length === 0) return text;
  places.sort((a, b) => a[0] - b[0]);
  let out = '';
  let kept = 0;
  let [start, end] = places[0]!;
  for (const [s, e] of places) {
    if (s <= end) {
      end = Math.max(end, e);
      continue;
    }
    out += text.slice(kept, start) + REDACTED;
    kept = end;
    [start, end] = [s, e];
  }
  return out + text.slice(kept, start) + REDACTED + text.slice(end);
}
