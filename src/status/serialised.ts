/**
 * One built status document as JSON: the whole of it, and the part a console client may see.
 * At 5,000 BMCs a document is ~2.8 MB of JSON and ~60 ms to build; built per client and change
 * (the console listener's streams each had a view), a few status tabs took the main thread. The
 * whole document is serialised once; a view's JSON is its visible rows, each serialised once per
 * document, joined under a summary of them. The bytes are those of `JSON.stringify` of the
 * document the store builds for the view (the rows keep their order; `bmcs` is the last key).
 */
import { summarize, type StatusView } from './store.js';
import type { StatusDocument } from './types.js';

export interface SerialisedDocument {
  /** JSON of every row */
  readonly whole: Buffer;
  /** JSON of the rows `mayView` admits, with their summary */
  view(mayView: NonNullable<StatusView['mayView']>): Buffer;
}

export function serialiseDocument(doc: StatusDocument): SerialisedDocument {
  /** each row's JSON, made when a view first asks (the operations listener never does) */
  let rows: string[] | undefined;
  return {
    whole: Buffer.from(JSON.stringify(doc)),
    view(mayView) {
      const json = (rows ??= doc.bmcs.map((b) => JSON.stringify(b)));
      const shown = doc.bmcs.flatMap((b, i) => (mayView(b.uuid) ? [i] : []));
      const { bmcs, ...head } = doc;
      const summary = summarize(shown.map((i) => bmcs[i]!), doc.summary.commandsLastHour);
      // the head without its closing brace, then the rows as JSON.stringify would put them
      const opening = JSON.stringify({ ...head, summary }).slice(0, -1);
      return Buffer.from(`${opening},"bmcs":[${shown.map((i) => json[i]).join(',')}]}`);
    },
  };
}
