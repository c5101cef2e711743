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
