/**
 * `Retry-After` (RFC 9110 §10.2.3) as milliseconds from `nowMs`: delta-seconds (`120`) or an
 * HTTP-date (`Fri, 31 Dec 1999 23:59:59 GMT`); a date in the past is 0. Undefined when absent or
 * malformed (a negative number, a fraction, a word), so the caller's own backoff applies.
 * Delta-seconds of ten digits or more (over 31 years) are Infinity: a wait no caller holds, not a
 * malformed value. One grammar for the BMCs' answers (redfish/wire.ts) and metal-api's
 * (metalapi/client.ts).
 */
export function retryAfterMs(value: string | undefined, nowMs: number): number | undefined {
  const v = value?.trim();
  if (v === undefined) return undefined;
  if (/^\d{1,9}$/.test(v)) return Number(v) * 1000;
  if (/^\d+$/.test(v)) return Infinity;
  // an HTTP-date names a weekday; Date.parse alone would also take "1" or "2026"
  if (!/^[A-Za-z]{3},\s/.test(v)) return undefined;
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - nowMs) : undefined;
}
