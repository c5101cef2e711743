/**
 * Gap markers that a machine's output cannot forge. A rendered history (capture-read.ts
 * `renderEvent`: the log route, `metal-bmc console log`) carries console output and the capture's
 * own markers, `[metal-bmc TIME: capture gap: ...]`, in one byte stream, and root on a machine
 * decides what its console prints. So:
 *  - each marker is enclosed in NUL bytes, and NUL is taken out of the console output: a NUL-enclosed
 *    `[metal-bmc ...]` is the capture's, whatever the output held. NUL, because a terminal ignores
 *    it: a raw history replayed in a terminal looks as before, output and markers alike;
 *  - where there are no NULs to see (`--plain`, the history page), `[metal-bmc ` in the output is
 *    shown as `\[metal-bmc `, anywhere in a line: a line wrapped by the terminal or the page starts
 *    anywhere. Only the capture's markers show `[metal-bmc ` as it is.
 */
import { createPlainFilter, stripEscapes } from './capture-plain.js';

/** what encloses a gap marker in a rendered history */
export const MARKER_DELIMITER = '\0';
/** how every gap marker begins */
export const MARKER_PREFIX = '[metal-bmc ';
/** how output that looks like the beginning of a marker is shown in plain text */
export const ESCAPED_PREFIX = `\\${MARKER_PREFIX}`;

/** A marker's text as the capture writes it (what stands between the two NULs). */
const MARKER_TEXT = /^\[metal-bmc [^\0\r\n]*\]$/;

/** `data` without its NUL bytes (the same buffer when it has none, as nearly all output). */
export function withoutDelimiters(data: Buffer): Buffer {
  let at = data.indexOf(0);
  if (at < 0) return data;
  const out = Buffer.allocUnsafe(data.length);
  let length = 0;
  let from = 0;
  for (; at >= 0; at = data.indexOf(0, from)) {
    length += data.copy(out, length, from, at);
    from = at + 1;
  }
  length += data.copy(out, length, from);
  return out.subarray(0, length);
}

/** The longest end of `text` that `MARKER_PREFIX` begins with (it may go on in the next chunk). */
function prefixAtEnd(text: string): number {
  for (let k = Math.min(MARKER_PREFIX.length - 1, text.length); k > 0; k--) if (MARKER_PREFIX.startsWith(text.slice(text.length - k))) return k;
  return 0;
}

/**
 * A rendered history (bytes as latin1, in chunks cut anywhere) as plain text (`console log
 * --plain`): the output through createPlainFilter with `[metal-bmc ` escaped, the markers as they
 * are. A NUL-enclosed text that is no marker (a stream cut short) is shown as output.
 */
export function createHistoryPlainFilter(): { push(chunk: string): string; end(): string } {
  let plain = createPlainFilter();
  /** between a marker's two NULs */
  let inMarker = false;
  let marker = '';
  /** plain output held back: it may be the start of `[metal-bmc ` that the next chunk completes */
  let held = '';
  const escaped = (text: string, last: boolean): string => {
    const all = held + text;
    const keep = last ? 0 : prefixAtEnd(all);
    held = all.slice(all.length - keep);
    return all.slice(0, all.length - keep).replaceAll(MARKER_PREFIX, ESCAPED_PREFIX);
  };
  /** the output so far, whole: a marker comes next */
  const outputEnd = () => {
    const out = escaped(plain.end(), true);
    plain = createPlainFilter();
    return out;
  };
  const markerEnd = () => {
    const text = marker;
    marker = '';
    return MARKER_TEXT.test(text) ? text : escaped(stripEscapes(text), true);
  };
  return {
    push(chunk) {
      let out = '';
      chunk.split(MARKER_DELIMITER).forEach((part, i) => {
        if (i > 0) {
          out += inMarker ? markerEnd() : outputEnd();
          inMarker = !inMarker;
        }
        if (inMarker) marker += part;
        else out += escaped(plain.push(part), false);
      });
      return out;
    },
    end() {
      return inMarker ? markerEnd() : outputEnd();
    },
  };
}
