/**
 * The header of one DER element (X.509 certificates and CRLs, OpenSSL's SSL_SESSION): its tag and
 * where its contents start and end. Only what those use: low tag numbers and definite lengths of
 * at most four length bytes. Pure; never throws.
 */
export interface DerElement {
  tag: number;
  /** where the element starts (its tag) */
  start: number;
  /** where its contents start (after tag and length) */
  body: number;
  /** just past its contents */
  end: number;
}

/** The DER element at `at`, or undefined when its header or length runs past `limit`, the tag number is high or the length indefinite. */
export function derElementAt(buf: Buffer, at: number, limit = buf.length): DerElement | undefined {
  if (at + 2 > limit) return undefined;
  const tag = buf[at]!;
  if ((tag & 0x1f) === 0x1f) return undefined;
  const first = buf[at + 1]!;
  let length = first;
  let header = 2;
  if (first & 0x80) {
    const bytes = first & 0x7f;
    if (bytes === 0 || bytes > 4 || at + 2 + bytes > limit) return undefined;
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + buf[at + 2 + i]!;
    header += bytes;
  }
  const end = at + header + length;
  return end > limit ? undefined : { tag, start: at, body: at + header, end };
}
