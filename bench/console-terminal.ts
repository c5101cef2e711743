/**
 * The terminals of the console-streaming benchmark (bench/console-streaming.ts): a WebSocket
 * console of ours or an ipmitool SOL process, each fed into a `Terminal` that counts output, times
 * echo round trips of typed markers and reads the one-way stamps of streamed lines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import WebSocket from 'ws';
import type { FleetProcess } from './fleet-process.js';

export const PROBE_TIMEOUT_MS = 5000;
export const OPEN_TIMEOUT_MS = 45_000;

const STAMP = /\[ *(\d+)\.(\d{6})\] stream/g;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function within<T>(what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One terminal of the benchmark (a WebSocket console or an ipmitool process): counts output,
 * and times echo round trips of typed markers. The stream never contains `#`.
 */
export class Terminal {
  bytes = 0;
  /** one-way latencies (ms) from the simulator's line stamps, while `stamps` is set */
  stamps: number[] | undefined;
  private tail = '';
  private pending: { marker: string; resolve: (at: number) => void } | undefined;
  private seq = 0;
  private sawPrompt = false;
  private readonly promptWaiters: Array<() => void> = [];

  constructor(
    readonly name: string,
    private readonly write: (text: string) => void,
  ) {}

  feed(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.stamps) this.readStamps(chunk);
    if (!this.pending && this.sawPrompt) return;
    const text = this.tail + chunk.toString('latin1');
    this.tail = text.slice(-48);
    if (!this.sawPrompt && text.includes('login: ')) {
      this.sawPrompt = true;
      for (const w of this.promptWaiters.splice(0)) w();
    }
    if (this.pending && text.includes(this.pending.marker)) {
      const { resolve } = this.pending;
      this.pending = undefined;
      resolve(performance.now());
    }
  }

  /**
   * Streamed lines start with `[seconds.micros]` of CLOCK_MONOTONIC when the simulated serial line
   * sent their first byte (src/sim/serial.ts); the same clock here gives the one-way latency.
   * Only stamps wholly inside one chunk count: a chunk is one SOL packet, contiguous output,
   * while a BMC whose SOL buffer overflows drops bytes between packets, which could splice two
   * stamps into a wrong one.
   */
  private readStamps(chunk: Buffer): void {
    const now = Number(process.hrtime.bigint() / 1000n) / 1000;
    for (const m of chunk.toString('latin1').matchAll(STAMP)) this.stamps!.push(now - (Number(m[1]) * 1000 + Number(m[2]) / 1000));
  }

  /** resolves once the login prompt arrived (the console is open and delivering) */
  prompt(): Promise<void> {
    return this.sawPrompt ? Promise.resolve() : new Promise((r) => this.promptWaiters.push(r));
  }

  /** One echo round trip in ms, or undefined when the echo did not come within the timeout. */
  async probe(): Promise<number | undefined> {
    const marker = `#${this.name}.${(this.seq++).toString(36)}#`;
    this.tail = '';
    let timer: NodeJS.Timeout | undefined;
    const echoed = new Promise<number | undefined>((resolve) => {
      this.pending = { marker, resolve };
      timer = setTimeout(() => {
        this.pending = undefined;
        resolve(undefined);
      }, PROBE_TIMEOUT_MS);
    });
    const t = performance.now();
    this.write(marker);
    const at = await echoed;
    clearTimeout(timer);
    return at === undefined ? undefined : at - t;
  }
}

/** Each terminal probes in a loop of its own, one probe at a time, 50-150 ms apart, until `untilMs` (performance.now()). */
export async function probeLoop(terminals: Terminal[], untilMs: number): Promise<{ samples: number[]; timeouts: number }> {
  const samples: number[] = [];
  let timeouts = 0;
  await Promise.all(
    terminals.map(async (term) => {
      await sleep(Math.random() * 100);
      while (performance.now() < untilMs) {
        const ms = await term.probe();
        if (ms === undefined) timeouts++;
        else samples.push(ms);
        await sleep(50 + Math.random() * 100);
      }
    }),
  );
  return { samples, timeouts };
}

export interface WsConsole {
  term: Terminal;
  ws: WebSocket;
  openMs: number;
  closedEarly: boolean;
  closeInfo: string;
  closed: Promise<void>;
  /** binary WebSocket messages received */
  messages: number;
}

export function openWsConsole(url: string, tls: { ca: Buffer; cert: Buffer; key: Buffer }, name: string): Promise<WsConsole> {
  const t = performance.now();
  const ws = new WebSocket(url, { ...tls, perMessageDeflate: false });
  const term = new Terminal(name, (text) => ws.send(Buffer.from(text, 'latin1'), { binary: true }));
  let closeInfo = '';
  const console_: WsConsole = { term, ws, openMs: 0, closedEarly: false, closeInfo: '', closed: Promise.resolve(), messages: 0 };
  const closed = new Promise<void>((resolve) =>
    ws.on('close', (code, reason) => {
      closeInfo = `${code} ${reason.toString()}`;
      resolve();
    }),
  );
  console_.closed = closed;
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) {
      console_.messages++;
      term.feed(data);
    } else {
      const msg = JSON.parse(data.toString()) as { type: string; message?: string };
      if (msg.type === 'error' || msg.type === 'closed') closeInfo = `${msg.type}: ${msg.message ?? ''}`;
    }
  });
  ws.on('error', (err) => (closeInfo ||= err.message));
  void closed.then(() => {
    console_.closedEarly = true;
    console_.closeInfo = closeInfo;
  });
  return within(
    `console ${name}`,
    OPEN_TIMEOUT_MS,
    Promise.race([
      term.prompt().then(() => {
        console_.openMs = performance.now() - t;
        return console_;
      }),
      closed.then(() => {
        throw new Error(`console ${name} closed while opening: ${closeInfo}`);
      }),
    ]),
  ).catch((err: unknown) => {
    ws.terminate();
    throw err;
  });
}

export interface IpmitoolConsole {
  term: Terminal;
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

export function startIpmitoolSol(fleet: FleetProcess, host: string, name: string): IpmitoolConsole {
  const child = spawn('ipmitool', ['-I', 'lanplus', '-C', '17', '-H', host, '-p', String(fleet.ipmiPort), '-U', fleet.user, '-P', fleet.password, 'sol', 'activate'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const term = new Terminal(name, (text) => child.stdin?.write(text));
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => term.feed(d));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString('latin1')));
  child.stdin?.on('error', () => undefined);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { term, child, stderr: () => stderr, exited };
}
