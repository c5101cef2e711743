/**
 * The least a Redfish client can do per BMC and cycle, as a reference for `report-latency`'s CPU:
 * one TLS connection per BMC (resumed, through a connector of its own built as the BMC connector
 * is: src/redfish/tls-context.ts), three GETs one after the other on it (the service root, the
 * Systems and the Chassis collections, with HTTP Basic), each answer's body JSON-parsed, then the
 * connection closed. No HTTP library, no Redfish parsing, no report, no IPMI, no trust checks:
 * what any client in this runtime pays for the bytes of a read. A BMC that has not answered all
 * three within `deadlineMs` is cut there, as a report cycle cuts it.
 *
 * `transportRead` asks the same three paths through the Redfish client's HTTP layer instead
 * (src/redfish/http.ts `createTransport`: the per-BMC HTTP/1.1 connections, the deadlines, the size
 * bounds, the JSON decoder), with the same Basic header: the step between the bare client and a
 * report read, which adds the Redfish session, the layout, IPMI where it must, the trust checks
 * and the report.
 *
 * `bareReads` runs either over a fleet twice, the first pass for the TLS sessions (full handshakes)
 * and the second measured, and gives the CPU per BMC of this process and of the simulator's.
 */
import { TLSSocket } from 'node:tls';
import { createTransport } from '../src/redfish/http.js';
import { sharedConnector, sharedTlsStats } from '../src/redfish/tls-context.js';
import { mapLimit } from '../src/report/limit.js';

export const BARE_PATHS = ['/redfish/v1/', '/redfish/v1/Systems', '/redfish/v1/Chassis'] as const;
/** an answer larger than this ends the read (the simulator's are a few KiB) */
const MAX_ANSWER_BYTES = 1 << 20;

export interface BareTarget {
  host: string;
  port: number;
  user: string;
  password: string;
}

export type BareOutcome = 'read' | 'cut' | 'failed';

/**
 * the BMC connector's TLS options (src/redfish/tls.ts), its default session cache named: a
 * connector (context and session cache) of its own, apart from the report's
 */
const connector = () => sharedConnector({ keepAlive: true, minVersion: 'TLSv1.2', rejectUnauthorized: false, maxCachedSessions: 4096 });

/** the HTTP Basic header both readers send */
const basicAuthorization = (t: BareTarget): string => `Basic ${Buffer.from(`${t.user}:${t.password}`).toString('base64')}`;

/** Reads one BMC the bare way: 'read' when all three answers came with status 200 and JSON bodies. */
export function bareRead(t: BareTarget, deadlineMs: number): Promise<BareOutcome> {
  const auth = basicAuthorization(t);
  return new Promise((resolve) => {
    let socket: TLSSocket | undefined;
    let outcome: BareOutcome | undefined;
    const end = (o: BareOutcome) => {
      if (outcome !== undefined) return;
      outcome = o;
      clearTimeout(timer);
      socket?.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => end('cut'), deadlineMs);
    // kept at once (the shared connector returns its socket, though undici's type says void): a
    // deadline before the TLS handshake ends (a BMC that accepts TCP and stalls) destroys it too
    const opened: unknown = connector().connector({ hostname: t.host, host: t.host, port: String(t.port), protocol: 'https:', servername: '' } as Parameters<ReturnType<typeof connector>['connector']>[0], (err, s) => {
      if (err || !s) return end('failed');
      if (outcome !== undefined) return void s.destroy();
      const tls = s as TLSSocket;
      let answered = 0;
      let buffered: Buffer = Buffer.alloc(0);
      const ask = () => tls.write(`GET ${BARE_PATHS[answered]} HTTP/1.1\r\nHost: ${t.host}\r\nAuthorization: ${auth}\r\nAccept: application/json\r\n\r\n`);
      tls.on('data', (chunk: Buffer) => {
        buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
        const head = buffered.indexOf('\r\n\r\n');
        if (head < 0) return void (buffered.length > MAX_ANSWER_BYTES && end('failed'));
        const header = buffered.subarray(0, head).toString('latin1');
        const length = /\r\ncontent-length: *(\d+)/i.exec(header);
        if (!header.startsWith('HTTP/1.1 200') || length === null || Number(length[1]) > MAX_ANSWER_BYTES) return end('failed');
        const size = head + 4 + Number(length[1]);
        if (buffered.length < size) return;
        try {
          JSON.parse(buffered.subarray(head + 4, size).toString('utf8'));
        } catch {
          return end('failed');
        }
        buffered = buffered.subarray(size);
        if (++answered === BARE_PATHS.length) end('read');
        else ask();
      });
      tls.once('error', () => end('failed'));
      tls.once('close', () => end('failed'));
      ask();
    });
    if (opened instanceof TLSSocket) {
      socket = opened;
      if (outcome !== undefined) socket.destroy();
    }
  });
}

/** Reads one BMC through the Redfish client's HTTP layer: the bare client's three GETs, nothing more. */
export async function transportRead(t: BareTarget, deadlineMs: number): Promise<BareOutcome> {
  const signal = AbortSignal.timeout(deadlineMs);
  const transport = createTransport({ host: t.host, port: t.port, insecure: true, timeoutMs: deadlineMs });
  transport.addSecret(t.password);
  const headers = { authorization: basicAuthorization(t) };
  try {
    for (const path of BARE_PATHS) if ((await transport.request({ method: 'GET', path, headers, signal })).status !== 200) return 'failed';
    return 'read';
  } catch {
    return signal.aborted ? 'cut' : 'failed';
  } finally {
    // awaited: the connection's teardown counts in the pass that read it
    await transport.close();
  }
}

/** TLS connections the bare client made so far, and how many resumed a session */
export function bareConnections(): { connections: number; resumed: number } {
  return { ...connector().stats };
}

/** the bare client's way to read a BMC, or the Redfish client's HTTP layer's */
export const READERS = { bare: bareRead, transport: transportRead } as const;

export interface BareRun {
  wallSeconds: number;
  /** this process's CPU (all threads), ms per BMC */
  cpuMsPerBmc: number;
  /** the simulator's CPU, ms per BMC */
  simCpuMsPerBmc: number;
  outcomes: Record<BareOutcome, number>;
  /** TLS connections of the measured pass that resumed a session */
  resumed: number;
}

/** Two passes of bare reads over `targets`, `concurrency` at once; the second is measured. */
export async function bareReads(targets: readonly BareTarget[], o: { concurrency: number; deadlineMs: number; simCpuSeconds: () => number; reader?: keyof typeof READERS }): Promise<BareRun> {
  const read = READERS[o.reader ?? 'bare'];
  const resumed = () => (o.reader === 'transport' ? sharedTlsStats() : bareConnections()).resumed;
  const pass = async () => {
    const outcomes: Record<BareOutcome, number> = { read: 0, cut: 0, failed: 0 };
    for (const outcome of await mapLimit(targets, o.concurrency, (t) => read(t, o.deadlineMs))) outcomes[outcome]++;
    return outcomes;
  };
  await pass();
  const resumedBefore = resumed();
  const cpu = process.cpuUsage();
  const sim = o.simCpuSeconds();
  const t = performance.now();
  const outcomes = await pass();
  const wallSeconds = (performance.now() - t) / 1000;
  const used = process.cpuUsage(cpu);
  return {
    wallSeconds,
    cpuMsPerBmc: (used.user + used.system) / 1000 / targets.length,
    simCpuMsPerBmc: ((o.simCpuSeconds() - sim) * 1000) / targets.length,
    outcomes,
    resumed: resumed() - resumedBefore,
  };
}
