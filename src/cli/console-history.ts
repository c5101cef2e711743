/**
 * `metal-bmc console log|grep`: the captured console history (METAL_BMC_CONSOLE_CAPTURE=all),
 * read from the log folder on this host or from the daemon's HTTPS console listener with a
 * client certificate or the console token. Light on purpose: the capture readers and node's
 * https, nothing of the daemon.
 */
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { request, type RequestOptions } from 'node:https';
import { StringDecoder } from 'node:string_decoder';
import { parseGoDuration } from '../config/duration.js';
import { bytesOf } from '../config/console-capture.js';
import { isSafeMachineId, listSegments, NO_CAPTURE_HEADER } from '../console/capture-files.js';
import { createHistoryPlainFilter } from '../console/capture-markers.js';
import { MAX_NEWEST, newestStart } from '../console/capture-newest.js';
import { HISTORY_LEFT_OUT_HEADER } from '../console/capture-page.js';
import { grepMatches, historyCursor, renderEvent, type GrepMatch, type GrepTruncated } from '../console/capture-read.js';
import { parseOptions, UsageError } from './args.js';

const HELP = `usage: metal-bmc console log MACHINE [--since 10m] [--newest 4MiB] [--follow] [--plain] [--dir DIR | --address URL]
       metal-bmc console grep PATTERN [--since 1h] [--dir DIR | --address URL]

  log             a machine's captured serial output, oldest first; gaps in the capture are shown
                  as lines "[metal-bmc TIME: capture gap: REASON]" and "[... capture resumed]"
  grep            which machines printed PATTERN (plain text, case-sensitive) and when; a line
                  longer than 512 characters shows the 512 around the match, "…" where it was
                  cut; at most 1000 lines per machine, 10,000 and 4 MiB in all (said on stderr)
  --since D       only what came in the last D (Go duration: 10m, 1h30m, 72h); default all that is kept
  --newest N      log: only the newest N of the range (B, KiB, MiB, GiB, or k, M, G; from the record they begin
                  in), what was left out said on stderr; older segments are not read
  --follow        keep printing new output until interrupted (log)
  --plain         strip terminal escape sequences and control characters (grep always does)
  --dir DIR       the capture folder on this host (default METAL_BMC_CONSOLE_LOG_DIR, else
                  $METAL_BMC_STATE_DIR/console, else /var/lib/metal-bmc/console)
  --address URL   the daemon's HTTPS console listener instead (https://host:3334), authenticated with
  --cert F --key F  a client certificate of the console CA, and
  --ca F          the CA that signed the listener's certificate
  --token-file F  or the console token (also METAL_BMC_CONSOLE_TOKEN)

exit codes: 0 output, or none in the --since range; 1 an error, or grep without a match;
2 a wrong command line; 3 log: nothing captured of that machine at all (the reason on stderr)`;

/** `console log` of a machine without any capture (here, or at the --address daemon): not an error, and not an empty range either */
export const EXIT_NOTHING_CAPTURED = 3;

type Io = { stdout: NodeJS.WritableStream; env: NodeJS.ProcessEnv };

interface Remote {
  url: URL;
  tls: RequestOptions;
}

function defaultDir(env: NodeJS.ProcessEnv): string {
  return env.METAL_BMC_CONSOLE_LOG_DIR?.trim() || `${env.METAL_BMC_STATE_DIR?.trim() || '/var/lib/metal-bmc'}/console`;
}

function sinceOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  let ms: number;
  try {
    ms = parseGoDuration(text);
  } catch {
    throw new UsageError(`--since ${JSON.stringify(text)} is not a duration (10m, 1h30m, 72h)`);
  }
  if (!(ms > 0)) throw new UsageError(`--since must be positive, got ${JSON.stringify(text)}`);
  return Math.floor(Date.now() - ms);
}

/** --newest as bytes: digits and a binary unit, as METAL_BMC_CONSOLE_LOG_SIZE takes them (4MiB, 512k, 1000) */
export function newestOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d{1,13})\s*([a-z]*)$/i.exec(text.trim());
  const bytes = (m ? bytesOf(m[1]!, m[2]!) : undefined) ?? Number.NaN;
  if (!(bytes >= 1 && bytes <= MAX_NEWEST)) throw new UsageError(`--newest ${JSON.stringify(text.slice(0, 40))} is not a size from 1 byte to 1024GiB (B, KiB, MiB, GiB)`);
  return bytes;
}

/** what --newest left out of the range, on stderr (the output itself stays the capture's bytes) */
function toldLeftOut(bytes: number): void {
  if (bytes > 0) process.stderr.write(`metal-bmc console log: ${bytes} older bytes of the range left out (--newest)\n`);
}

function remoteOf(values: { address?: string | undefined; cert?: string | undefined; key?: string | undefined; ca?: string | undefined; 'token-file'?: string | undefined }, env: NodeJS.ProcessEnv): Remote | undefined {
  if (values.address === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(values.address);
  } catch {
    throw new UsageError(`--address ${JSON.stringify(values.address)} is not a URL`);
  }
  if (url.protocol !== 'https:') throw new UsageError('--address must be an https:// URL (the console listener)');
  const token = values['token-file'] !== undefined ? readFileSync(values['token-file'], 'utf8').replace(/\r?\n$/, '') : env.METAL_BMC_CONSOLE_TOKEN;
  if ((values.cert === undefined) !== (values.key === undefined)) throw new UsageError('--cert and --key go together');
  if (values.cert === undefined && !token) throw new UsageError('--address needs --cert and --key, or a token (--token-file, METAL_BMC_CONSOLE_TOKEN)');
  const tls: RequestOptions = {
    ...(values.ca !== undefined ? { ca: readFileSync(values.ca) } : {}),
    ...(values.cert !== undefined ? { cert: readFileSync(values.cert), key: readFileSync(values.key!) } : {}),
    ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}),
  };
  return { url, tls };
}

/** An answer other than 200 from the console listener. */
class HttpStatusError extends Error {
  constructor(
    readonly origin: string,
    readonly status: number,
    readonly body: string,
    readonly noCapture: boolean,
  ) {
    super(`${origin} answered HTTP ${status}: ${body}`);
  }
}

/** GET on the console listener; the body is handed on chunk by chunk. */
function remoteGet(remote: Remote, path: string, onData: (chunk: Buffer) => void, signal: AbortSignal, onHeaders?: (headers: Record<string, string | string[] | undefined>) => void): Promise<void> {
  const url = new URL(path, remote.url);
  return new Promise((resolve, reject) => {
    const req = request(url, { ...remote.tls, signal }, (res) => {
      if (res.statusCode !== 200) {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString().slice(0, 500)));
        res.on('end', () => reject(new HttpStatusError(url.origin, res.statusCode ?? 0, body.trim(), res.headers[NO_CAPTURE_HEADER] === 'none')));
        return;
      }
      onHeaders?.(res.headers);
      // an answer the handler cannot take (not the format expected) ends the request with its error
      res.on('data', (chunk: Buffer) => {
        try {
          onData(chunk);
        } catch (err) {
          req.destroy();
          reject(err as Error);
        }
      });
      res.on('end', resolve);
      res.on('error', reject);
    });
    req.on('error', (err) => (signal.aborted ? resolve() : reject(new Error(`cannot reach ${url.origin}: ${err.message}`))));
    req.end();
  });
}

function output(io: Io, plain: boolean): { write(chunk: Buffer): void; end(): void } {
  // plain: the capture's gap markers told from output that looks like them (capture-markers.ts)
  const filter = plain ? createHistoryPlainFilter() : undefined;
  return {
    write: (chunk) => void io.stdout.write(filter ? filter.push(chunk.toString('latin1')) : chunk),
    end: () => void (filter ? io.stdout.write(filter.end()) : undefined),
  };
}

function untilInterrupted(): AbortSignal {
  const abort = new AbortController();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => abort.abort());
  return abort.signal;
}

/** Why the capture folder holds nothing of the machine at all, or undefined when it holds its log (maybe nothing in the range asked for). */
async function noCaptureReason(dir: string, machineId: string): Promise<string | undefined> {
  try {
    if (!(await stat(dir)).isDirectory()) return `${dir} is not a folder`;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return `the capture folder ${dir} does not exist: capture is off on this host (METAL_BMC_CONSOLE_CAPTURE=all), or it writes elsewhere (--dir, METAL_BMC_CONSOLE_LOG_DIR)`;
  }
  if ((await listSegments(dir, machineId)).length > 0) return undefined;
  return `no log of it in ${dir}: this host does not capture it (not reported by this daemon, held by another metal-bmc instance, or a wrong id)`;
}

/** No capture of the machine at all: one line on stderr saying why, and EXIT_NOTHING_CAPTURED. */
function noCapture(machineId: string, reason: string): number {
  process.stderr.write(`metal-bmc console log: nothing captured for machine ${machineId}: ${reason}\n`);
  return EXIT_NOTHING_CAPTURED;
}

/** A capture with nothing in the range asked for (or nothing yet): an empty answer, said on stderr. */
function emptyRange(machineId: string, where: string, sinceText: string | undefined): number {
  process.stderr.write(`metal-bmc console log: nothing captured for machine ${machineId} ${where}${sinceText !== undefined ? ` in the last ${sinceText}` : ''}\n`);
  return 0;
}

async function logCommand(machineId: string, o: { since: number | undefined; sinceText: string | undefined; newest: number | undefined; follow: boolean; plain: boolean; dir: string; remote: Remote | undefined }, io: Io): Promise<number> {
  const out = output(io, o.plain);
  const signal = o.follow ? untilInterrupted() : new AbortController().signal;
  if (o.remote) {
    const query = new URLSearchParams({ ...(o.since !== undefined ? { since: String(o.since) } : {}), ...(o.newest !== undefined ? { newest: String(o.newest) } : {}), ...(o.follow ? { follow: '1' } : {}) });
    let any = false;
    const write = (chunk: Buffer) => {
      any = true;
      out.write(chunk);
    };
    try {
      await remoteGet(o.remote, `/v1/machine/${encodeURIComponent(machineId)}/console/log?${query}`, write, signal, (headers) => {
        const leftOut = Number(headers[HISTORY_LEFT_OUT_HEADER]);
        if (o.newest !== undefined && Number.isSafeInteger(leftOut)) toldLeftOut(leftOut);
      });
    } catch (err) {
      if (!(err instanceof HttpStatusError) || err.status !== 404) throw err;
      // a listener without history routes answers every such path with its plain 404
      return noCapture(machineId, err.noCapture ? `${err.origin} holds no capture of it (not reported by that daemon, or held by another metal-bmc instance)` : `${err.origin} serves no console history (capture is off there)`);
    }
    out.end();
    return any || o.follow ? 0 : emptyRange(machineId, `at ${o.remote.url.origin}`, o.sinceText);
  }
  const start = o.newest === undefined ? undefined : await newestStart(o.dir, machineId, o.newest, o.since);
  const cursor = historyCursor(o.dir, machineId, { ...(o.since === undefined ? {} : { sinceMs: o.since }), ...(start?.from ? { from: start.from } : {}) });
  if (start) toldLeftOut(start.leftOutBytes);
  let any = false;
  while (!signal.aborted) {
    const events = await cursor.next();
    for (const e of events) out.write(renderEvent(e));
    any ||= events.length > 0;
    if (events.length === 0) {
      if (!o.follow) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  out.end();
  if (any || o.follow) return 0;
  const reason = await noCaptureReason(o.dir, machineId);
  return reason !== undefined ? noCapture(machineId, reason) : emptyRange(machineId, `in ${o.dir}`, o.sinceText);
}

/** A match as grep prints it; a line cut to its window shows "…" where text was left out. */
function grepOutputLine(m: GrepMatch): string {
  const line = `${m.cut && m.cut.before > 0 ? '…' : ''}${m.line}${m.cut && m.cut.after > 0 ? '…' : ''}`;
  return `${new Date(m.t).toISOString()}  ${m.machineId}  ${line}\n`;
}

/** The NDJSON lines of a grep answer as they arrive, matches and the closing {"truncated"} told apart. */
export function grepAnswerReader(onMatch: (m: GrepMatch) => void, onTruncated: (why: string) => void): ((chunk: Buffer) => void) & { end(): void } {
  // a character split between two chunks is decoded whole
  const decoder = new StringDecoder('utf8');
  let partial = '';
  const take = (text: string) => {
    if (text === '') return;
    let item: unknown;
    try {
      item = JSON.parse(text);
    } catch {
      item = undefined;
    }
    if (typeof item !== 'object' || item === null) throw new Error(`the grep answer has a line that is not a JSON object: ${JSON.stringify(text.slice(0, 80))}`);
    if ('truncated' in item) onTruncated(String((item as GrepTruncated).truncated));
    else onMatch(item as GrepMatch);
  };
  return Object.assign(
    (chunk: Buffer) => {
      const lines = (partial + decoder.write(chunk)).split('\n');
      partial = lines.pop()!;
      for (const text of lines) take(text);
    },
    {
      /** the answer ended: a last line without its newline is taken (or is the error it is) */
      end() {
        take(partial + decoder.end());
        partial = '';
      },
    },
  );
}

async function grepCommand(pattern: string, o: { since: number | undefined; dir: string; remote: Remote | undefined }, io: Io): Promise<number> {
  let found = 0;
  let truncated: string | undefined;
  const print = (m: GrepMatch) => {
    found++;
    io.stdout.write(grepOutputLine(m));
  };
  if (o.remote) {
    const query = new URLSearchParams({ pattern, ...(o.since !== undefined ? { since: String(o.since) } : {}) });
    // the whole answer first (at most 4 MiB), then printed: a pager that holds stdout (less, left
    // on a page) would otherwise stop this process reading, and the daemon drops a grep whose
    // client takes nothing for 30 s
    const answer: GrepMatch[] = [];
    const reader = grepAnswerReader((m) => answer.push(m), (why) => (truncated = why));
    await remoteGet(o.remote, `/v1/console/grep?${query}`, reader, new AbortController().signal);
    reader.end();
    for (const m of answer) print(m);
  } else {
    const matches = grepMatches(o.dir, pattern, o.since === undefined ? {} : { sinceMs: o.since });
    for (let r = await matches.next(); ; r = await matches.next()) {
      if (r.done) {
        truncated = r.value?.truncated;
        break;
      }
      print(r.value);
    }
  }
  if (truncated !== undefined) process.stderr.write(`metal-bmc console grep: ${truncated}\n`);
  return found > 0 ? 0 : 1;
}

export async function consoleHistoryMain(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseOptions({
    args: argv,
    allowPositionals: true,
    options: {
      since: { type: 'string' },
      newest: { type: 'string' },
      follow: { type: 'boolean', short: 'f' },
      plain: { type: 'boolean' },
      dir: { type: 'string' },
      address: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      ca: { type: 'string' },
      'token-file': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help || positionals.length === 0) {
    io.stdout.write(`${HELP}\n`);
    return values.help ? 0 : 2;
  }
  const [sub, arg, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
  if (values.dir !== undefined && values.address !== undefined) throw new UsageError('--dir and --address exclude each other');
  const since = sinceOf(values.since);
  const remote = remoteOf(values, io.env);
  const dir = values.dir ?? defaultDir(io.env);
  if (sub === 'log') {
    if (arg === undefined) throw new UsageError('console log needs a MACHINE id');
    if (!isSafeMachineId(arg)) throw new UsageError(`${JSON.stringify(arg.slice(0, 140))} is not a machine id`);
    return logCommand(arg, { since, sinceText: values.since, newest: newestOf(values.newest), follow: values.follow === true, plain: values.plain === true, dir, remote }, io);
  }
  if (sub === 'grep') {
    if (arg === undefined || arg === '' || arg.length > 200) throw new UsageError('console grep needs a PATTERN of 1 to 200 characters');
    if (values.follow || values.plain || values.newest !== undefined) throw new UsageError('--follow, --newest and --plain are options of console log');
    return grepCommand(arg, { since, dir, remote }, io);
  }
  throw new UsageError(`unknown console command ${JSON.stringify(sub)} (log, grep)`);
}
