/**
 * The status as a terminal table in metalctl's style: upper-case headers, columns separated by
 * two spaces, no borders, problems first. Every column has a maximum width (cells are cut with
 * "…"), so a row never exceeds 120 columns. Colour (the STATE column) only when asked for.
 * Pure: the CLI's `metal-bmc status` prints what this returns.
 */
import { isProblem, PROBLEM_REASONS, STATE_ORDER, type BmcStatus, type StatusDocument } from './types.js';

interface Column {
  header: string;
  max: number;
  value(b: BmcStatus, now: number): string;
  /** sort key; ties fall back to the state order, then the IP address */
  key(b: BmcStatus): string | number;
}

export function ago(iso: string | undefined, now: number): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 90) return `${s}s`;
  if (s < 5400) return `${Math.round(s / 60)}m`;
  if (s < 129_600) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

const ipKey = (ip: string) => ip.split('.').reduce((n, p) => n * 256 + (Number(p) || 0), 0);
const stateKey = (b: BmcStatus) => STATE_ORDER.indexOf(b.state);
const time = (iso: string | undefined) => (iso ? -Date.parse(iso) : 0);

export const COLUMNS: Readonly<Record<string, Column>> = {
  ip: { header: 'IP', max: 15, value: (b) => b.ip, key: (b) => ipKey(b.ip) },
  mac: { header: 'MAC', max: 17, value: (b) => b.mac, key: (b) => b.mac },
  state: { header: 'STATE', max: 8, value: (b) => b.state, key: stateKey },
  reason: { header: 'REASON', max: 17, value: (b) => b.lastRead?.problem?.reason ?? '', key: (b) => b.lastRead?.problem?.reason ?? '' },
  vendor: { header: 'VENDOR', max: 8, value: (b) => b.vendor ?? '', key: (b) => b.vendor ?? '' },
  power: { header: 'POWER', max: 5, value: (b) => b.power ?? '', key: (b) => b.power ?? '' },
  via: { header: 'VIA', max: 12, value: (b) => b.protocols?.report ?? '', key: (b) => b.protocols?.report ?? '' },
  read: { header: 'READ', max: 7, value: (b, now) => ago(b.lastRead?.at, now), key: (b) => time(b.lastRead?.at) },
  fails: { header: 'FAILS', max: 5, value: (b) => String(b.failures.consecutive), key: (b) => -b.failures.consecutive },
  reported: { header: 'REPORTED', max: 8, value: (b, now) => ago(b.lastReportAt, now), key: (b) => time(b.lastReportAt) },
};

export const SORT_COLUMNS = Object.keys(COLUMNS);
export const MAX_WIDTH = 120;

const COLOURS: Partial<Record<BmcStatus['state'], string>> = { failing: '\x1b[31m', degraded: '\x1b[33m', vanished: '\x1b[2m', ok: '\x1b[32m' };

export interface TableOptions {
  problems?: boolean;
  sort?: string;
  colour?: boolean;
  now?: number;
}

function fit(text: string, width: number): string {
  const cut = text.length > width ? `${text.slice(0, width - 1)}…` : text;
  return cut.padEnd(width);
}

export function selectRows(doc: StatusDocument, o: Pick<TableOptions, 'problems' | 'sort'>): BmcStatus[] {
  const column = COLUMNS[o.sort ?? 'state'];
  if (!column) throw new Error(`unknown column ${JSON.stringify(o.sort)} (known: ${SORT_COLUMNS.join(', ')})`);
  const rows = doc.bmcs.filter((b) => !o.problems || isProblem(b.state));
  return rows.sort((a, b) => {
    const ka = column.key(a);
    const kb = column.key(b);
    return (ka < kb ? -1 : ka > kb ? 1 : 0) || stateKey(a) - stateKey(b) || ipKey(a.ip) - ipKey(b.ip);
  });
}

export function formatTable(doc: StatusDocument, o: TableOptions = {}): string {
  const now = o.now ?? Date.now();
  const rows = selectRows(doc, o);
  const columns = Object.values(COLUMNS);
  const cells = rows.map((b) => columns.map((c) => c.value(b, now)));
  const widths = columns.map((c, i) => Math.min(c.max, Math.max(c.header.length, ...cells.map((r) => r[i]!.length))));
  const line = (values: string[], state?: BmcStatus['state']) =>
    values
      .map((v, i) => {
        const text = fit(v, widths[i]!);
        const colour = state && columns[i] === COLUMNS.state && o.colour ? COLOURS[state] : undefined;
        return colour ? `${colour}${text}\x1b[0m` : text;
      })
      .join('  ')
      .trimEnd();
  const out = [line(columns.map((c) => c.header)), ...cells.map((r, i) => line(r, rows[i]!.state))];
  return out.join('\n') + '\n';
}

/** Words joined into lines of at most `width` characters. */
function wrap(words: readonly string[], width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line !== '' && line.length + 1 + w.length > width) {
      lines.push(line);
      line = w;
    } else line = line === '' ? w : `${line} ${w}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** The partition summary, after a blank line under the table, wrapped to 120 columns. */
export function formatSummary(doc: StatusDocument): string {
  const s = doc.summary;
  const counts = `${s.bmcs} BMCs: ${s.reachable} reachable, ${s.failing} failing, ${s.degraded} degraded, ${s.pending} not read yet, ${s.vanished} vanished; ${s.commandsLastHour} commands in the last hour`;
  // in the fixed order of PROBLEM_REASONS, not in the order the problems happened to be seen
  const reasons = PROBLEM_REASONS.filter((r) => s.byReason[r] !== undefined).map((r) => `${r} ${s.byReason[r]}`);
  const lines = wrap(counts.split(' '), MAX_WIDTH);
  if (reasons.length > 0) lines.push(...wrap(`problems by reason: ${reasons.join(', ')}`.split(' '), MAX_WIDTH));
  return `\n${lines.join('\n')}\n`;
}
