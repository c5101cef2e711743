/**
 * `metal-bmc status`: the daemon's status of every BMC as a table (problems first), read from
 * its GET /v1/status. Light on purpose: node's own fetch and the pure table code, nothing of
 * the daemon.
 */
import type { StatusDocument } from '../status/types.js';
import { formatSummary, formatTable, selectRows, SORT_COLUMNS } from '../status/table.js';
import { parseOptions, UsageError } from './args.js';

const HELP = `usage: metal-bmc status [--json] [--watch] [--problems] [--sort COLUMN] [--address URL]

  --address URL   the daemon's listener (default: the operations listener of METAL_BMC_HTTP_ADDRESS,
                  else http://127.0.0.1:2112)
  --json          print the JSON document (docs/status.schema.json) instead of the table
  --problems      only failing, degraded and vanished BMCs
  --sort COLUMN   ${SORT_COLUMNS.join(', ')} (default state: problems first)
  --watch         print again every 2 seconds until interrupted
  colour on a terminal only; NO_COLOR turns it off`;

/** METAL_BMC_HTTP_ADDRESS is host:port, ":2112" meaning all interfaces: then ask the loopback. */
export function defaultAddress(env: NodeJS.ProcessEnv): string {
  const text = env.METAL_BMC_HTTP_ADDRESS?.trim();
  if (!text) return 'http://127.0.0.1:2112';
  const i = text.lastIndexOf(':');
  const host = text.slice(0, i);
  const port = text.slice(i + 1);
  const local = host === '' || host === '0.0.0.0' || host === '[::]' || host === '::' ? '127.0.0.1' : host;
  return `http://${local}:${port}`;
}

async function fetchStatus(base: string): Promise<StatusDocument> {
  const url = new URL('/v1/status', base);
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(10_000), headers: { accept: 'application/json' } });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`cannot reach the daemon at ${url.href}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
  }
  if (!res.ok) throw new Error(`${url.href} answered HTTP ${res.status}`);
  const doc = (await res.json()) as StatusDocument;
  if (doc?.version !== 1 || !Array.isArray(doc.bmcs)) throw new Error(`${url.href} did not send a status document of version 1`);
  return doc;
}

export async function statusMain(argv: string[], io: { stdout: NodeJS.WritableStream; env: NodeJS.ProcessEnv }): Promise<number> {
  const { values } = parseOptions({
    args: argv,
    options: {
      json: { type: 'boolean' },
      watch: { type: 'boolean' },
      problems: { type: 'boolean' },
      sort: { type: 'string' },
      address: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    io.stdout.write(`${HELP}\n`);
    return 0;
  }
  if (values.sort !== undefined && !SORT_COLUMNS.includes(values.sort)) throw new UsageError(`--sort ${JSON.stringify(values.sort)}: one of ${SORT_COLUMNS.join(', ')}`);
  const address = values.address ?? defaultAddress(io.env);
  if (!/^https?:\/\//.test(address)) throw new UsageError(`--address ${JSON.stringify(address)} must be an http:// or https:// URL`);
  const tty = (io.stdout as NodeJS.WriteStream).isTTY === true;
  const colour = tty && (io.env.NO_COLOR ?? '') === '';
  const options = { problems: values.problems === true, ...(values.sort !== undefined ? { sort: values.sort } : {}) };
  const once = async () => {
    const doc = await fetchStatus(address);
    if (values.json) {
      const bmcs = options.problems ? selectRows(doc, options) : doc.bmcs;
      return `${JSON.stringify({ ...doc, bmcs }, null, 2)}\n`;
    }
    return formatTable(doc, { ...options, colour }) + formatSummary(doc);
  };
  if (!values.watch) {
    io.stdout.write(await once());
    return 0;
  }
  for (;;) {
    const text = await once().catch((err: Error) => `${err.message}\n`);
    io.stdout.write(tty ? `\x1b[H\x1b[2J${text}` : `${text}\n`);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}
