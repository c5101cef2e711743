/**
 * Text from a BMC or a peer, on its way to someone's terminal (the CLI's output, an SSH console's
 * notices): characters that act there rather than show are taken out. C0 and DEL (escape
 * sequences, a clipboard write through OSC 52, a screen cleared), C1 (U+009B is a CSI in some
 * terminals), and the bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069), which
 * show a line's characters in another order than they are.
 */
/** Runs of such characters, global: `replace` with '' removes them all (the report's and the status's text bounds do). */
// eslint-disable-next-line no-control-regex -- control characters are what is matched
export const TERMINAL_CONTROLS = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]+/g;

/** `text` as one terminal line: each run of such characters one space, the ends trimmed. */
export function terminalSafe(text: string): string {
  return text.replace(TERMINAL_CONTROLS, ' ').trim();
}
