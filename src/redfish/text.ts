/** Text from a BMC, made fit to keep: no imports, so the IPMI-only path of the bundle can take it without loading HTTP. */

/** `text`, cut to `max` characters with an ellipsis when longer. */
export function shortened(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
