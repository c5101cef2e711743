/**
 * Console output as plain text (`metal-bmc console log --plain`, `console grep`): terminal escape
 * sequences (CSI `ESC [ ... final`, OSC `ESC ] ... BEL|ESC \`, DCS/SOS/PM/APC strings, two-byte
 * `ESC x`) and C1/C0 controls other than tab, line feed and carriage return are removed;
 * carriage returns before a line feed are dropped. A pure function over the bytes as latin1, so
 * a sequence split across two calls is removed as long as both halves are passed together.
 */

const ESC = 0x1b;
const BEL = 0x07;

function isFinalCsi(c: number): boolean {
  return c >= 0x40 && c <= 0x7e;
}

/** Where a string sequence (OSC, DCS, SOS, PM, APC) that starts at `i` ends (exclusive). */
function skipString(text: string, i: number): number {
  for (let j = i; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === BEL) return j + 1;
    if (c === ESC && text.charCodeAt(j + 1) === 0x5c) return j + 2;
  }
  return text.length;
}

function skipCsi(text: string, i: number): number {
  for (let j = i; j < text.length; j++) if (isFinalCsi(text.charCodeAt(j))) return j + 1;
  return text.length;
}

/** `text` (bytes as latin1) without escape sequences and control characters. */
export function stripEscapes(text: string): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === ESC) {
      const next = text.charCodeAt(i + 1);
      if (next === 0x5b) i = skipCsi(text, i + 2); // ESC [
      else if (next === 0x5d || next === 0x50 || next === 0x58 || next === 0x5e || next === 0x5f) i = skipString(text, i + 2); // ] P X ^ _
      else if (next >= 0x20 && next <= 0x2f) i = Math.min(text.length, i + 3); // ESC ( B and the like: one more byte
      else i = Math.min(text.length, i + 2);
      continue;
    }
    if (c === 0x9b) {
      i = skipCsi(text, i + 1); // 8-bit CSI
      continue;
    }
    if (c === 0x0d && text.charCodeAt(i + 1) === 0x0a) {
      i++;
      continue;
    }
    if (c === 0x09 || c === 0x0a || c === 0x0d || (c >= 0x20 && c < 0x7f) || c >= 0xa0) out += text[i];
    i++;
  }
  return out;
}

/** A sequence cut at the chunk's end, which the next chunk completes. */
function incompleteTail(text: string): number {
  // an unterminated string sequence (OSC, DCS, ...) may hold other escapes: it is held back whole
  const strings = ['\x1b]', '\x1bP', '\x1bX', '\x1b^', '\x1b_'].map((intro) => text.lastIndexOf(intro));
  const open = Math.max(...strings);
  if (open >= 0 && text.length - open <= MAX_CARRY && !text.includes('\x07', open + 2) && !text.includes('\x1b\\', open + 2)) return open;
  const at = Math.max(text.lastIndexOf('\x1b'), text.lastIndexOf('\x9b'));
  if (at >= 0 && text.length - at <= MAX_CARRY) {
    const s = text.slice(at);
    const intro = s.charCodeAt(1);
    if (s.charCodeAt(0) === 0x9b || intro === 0x5b) {
      const body = s.slice(s.charCodeAt(0) === 0x9b ? 1 : 2);
      if (![...body].some((ch) => isFinalCsi(ch.charCodeAt(0)))) return at;
    } else if (s.length === 1) return at;
    else if (intro === 0x5d || intro === 0x50 || intro === 0x58 || intro === 0x5e || intro === 0x5f) {
      if (!s.includes('\x07', 2) && !s.includes('\x1b\\', 2)) return at;
    } else if (intro >= 0x20 && intro <= 0x2f && s.length < 3) return at;
  }
  return text.endsWith('\r') ? text.length - 1 : text.length;
}

/** the longest cut sequence held back for the next chunk; a longer one is let through as it is */
const MAX_CARRY = 4096;

/**
 * `stripEscapes` over a stream of chunks: a sequence (or CR LF) cut between two chunks is held
 * back until the next, so the result does not depend on where the chunks were cut.
 * `end()` returns what is held back.
 */
export function createPlainFilter(): { push(chunk: string): string; end(): string } {
  let carry = '';
  return {
    push(chunk) {
      const text = carry + chunk;
      const cut = incompleteTail(text);
      carry = text.slice(cut);
      return stripEscapes(text.slice(0, cut));
    },
    end() {
      const rest = stripEscapes(carry);
      carry = '';
      return rest;
    },
  };
}
