/**
 * The serial line (ttyS1) of a simulated machine: a synthetic boot log whenever the machine
 * powers on or resets, then a login prompt with a line discipline that echoes what is typed.
 * Output leaves as bytes through the 'data' event, paced like a 115200-baud UART; a small
 * history lets a console that attaches later see the latest prompt. In streaming mode
 * (`setStreaming(true)`, for load tests) a running machine prints kernel-log-like lines without
 * pause at the full line speed, each stamped with CLOCK_MONOTONIC; echoes of typed input still go
 * out at once, between them. A boot storm (`storm(n)`) queues n numbered, checksummed lines
 * (`stormLine`) that leave at the line speed, so a reader can prove none was lost or reordered.
 */
import { EventEmitter } from 'node:events';
import type { SimEvent, SimMachine } from './machine.js';

export interface SerialLineOptions {
  /** host name shown in the boot log and the login prompt; default `machine-<index>` */
  hostname?: string;
  /** line speed; 10 bits per character (8N1) */
  baud?: number;
  /** bytes of output kept for late attachers */
  historyBytes?: number;
}

const TICK_MS = 10;
const BACKSPACE = new Set([0x08, 0x7f]);
/** at most this many ticks of streamed output are caught up after a late timer */
const MAX_CATCH_UP_TICKS = 10;

/**
 * What a streaming line prints, over and over, each line behind a kernel-style timestamp that is
 * CLOCK_MONOTONIC (process.hrtime) at the moment the line starts to leave: a reader on the same
 * host can measure the one-way latency of the console path. No `#` in it, so typed markers stand
 * out in the echo.
 */
const STREAM_LINES = Array.from({ length: 64 }, (_, i) => `] stream: line ${String(i).padStart(2, '0')} of the serial load test, 0123456789 abcdefghijklmnopqrstuvwxyz\r\n`);

/** bytes from a line's start through `] stream`, which a streaming line sends in one tick */
const STAMP_HEAD = 24;

/** `[  1234.567890` (seconds of CLOCK_MONOTONIC, microseconds) */
function monotonicStamp(): string {
  const us = process.hrtime.bigint() / 1000n;
  return `[${String(us / 1_000_000n).padStart(6)}.${String(us % 1_000_000n).padStart(6, '0')}`;
}

export interface SerialLineEvents {
  data: [Buffer];
  /** a break condition sent by a console (SOL "generate break") */
  break: [];
}

export class SerialLine extends EventEmitter<SerialLineEvents> {
  readonly hostname: string;
  /** number of breaks received, for tests */
  breaks = 0;
  /** bytes of output emitted so far (typed echoes, boot logs and streamed lines) */
  outputBytes = 0;
  private readonly bytesPerTick: number;
  private readonly bytesPerMs: number;
  private readonly historyBytes: number;
  private queue: Buffer[] = [];
  private queued = 0;
  /** the latest output, oldest first; trimmed to `historyBytes` lazily */
  private recent: Buffer[] = [];
  private recentBytes = 0;
  private streaming = false;
  /** streaming: bytes the line may still send (line speed × time), and when it was last topped up */
  private credit = 0;
  private creditAt = 0;
  private streamLine = Buffer.alloc(0);
  private streamLineAt = 0;
  private streamLineNo = 0;
  private line = '';
  private lastWasCr = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly onChange = (event: SimEvent) => {
    if (event.kind === 'power' && event.power === 'on') this.boot();
  };

  constructor(private readonly machine: SimMachine, options: SerialLineOptions = {}) {
    super();
    this.hostname = options.hostname ?? `machine-${machine.state.index}`;
    const baud = options.baud ?? 115_200;
    if (!(baud >= 300)) throw new RangeError(`serial line: baud must be >= 300, got ${baud}`);
    this.bytesPerTick = Math.max(1, Math.floor(baud / 10 / (1000 / TICK_MS)));
    this.bytesPerMs = baud / 10 / 1000;
    this.historyBytes = options.historyBytes ?? 4096;
    // A machine that is already running has booted before we started listening.
    if (machine.state.power === 'on') this.remember(Buffer.from(bootLog(machine, this.hostname), 'latin1'));
    machine.on('change', this.onChange);
  }

  /** The latest output, already sent: what a console attaching now would see on screen. */
  history(): Buffer {
    const all = Buffer.concat(this.recent);
    return Buffer.from(all.subarray(Math.max(0, all.length - this.historyBytes)));
  }

  get isStreaming(): boolean {
    return this.streaming;
  }

  /**
   * Streaming mode on or off: while the machine runs, the line prints without pause at its full
   * speed (output queued before, such as echoes, goes first). For load tests of consoles.
   */
  setStreaming(on: boolean): void {
    if (this.closed || on === this.streaming) return;
    this.streaming = on;
    if (on) {
      this.credit = 0;
      this.creditAt = Date.now();
      this.timer ??= setInterval(() => this.drain(), TICK_MS);
    } else if (this.queue.length === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** Characters typed at the console. Echoed while the machine runs; nobody listens when it is off. */
  write(input: Buffer): void {
    if (this.closed || this.machine.state.power !== 'on') return;
    let echo = '';
    for (const byte of input) {
      if (byte === 0x0d || byte === 0x0a) {
        if (byte === 0x0a && this.lastWasCr) {
          this.lastWasCr = false;
          continue; // CR LF is one newline
        }
        this.lastWasCr = byte === 0x0d;
        this.line = '';
        echo += `\r\n${this.prompt()}`;
        continue;
      }
      this.lastWasCr = false;
      if (BACKSPACE.has(byte)) {
        if (this.line.length > 0) {
          this.line = this.line.slice(0, -1);
          echo += '\b \b';
        }
      } else if (byte >= 0x20 && byte < 0x7f) {
        this.line += String.fromCharCode(byte);
        echo += String.fromCharCode(byte);
      }
    }
    if (echo) this.output(echo);
  }

  /** A boot storm: `lines` numbered, checksummed lines (see `stormLine`), queued behind what waits; they leave at the line speed. */
  storm(lines: number): void {
    if (!Number.isInteger(lines) || lines < 1 || lines > MAX_STORM_LINES) throw new RangeError(`serial line: a storm has 1 to ${MAX_STORM_LINES} lines, got ${lines}`);
    if (this.machine.state.power !== 'on') return;
    const id = `m${this.machine.state.index}`;
    const parts: string[] = ['\r\n']; // the first line starts on a line of its own
    for (let i = 1; i <= lines; i++) parts.push(stormLine(id, i, lines));
    this.output(parts.join(''));
  }

  /** A break condition from the console; recorded, no other effect. */
  sendBreak(): void {
    this.breaks++;
    this.emit('break');
  }

  close(): void {
    this.closed = true;
    this.streaming = false;
    this.machine.off('change', this.onChange);
    clearInterval(this.timer);
    this.timer = undefined;
    this.queue = [];
    this.queued = 0;
  }

  private prompt(): string {
    return `${this.hostname} login: `;
  }

  private boot(): void {
    this.line = '';
    this.output(bootLog(this.machine, this.hostname));
  }

  private output(text: string): void {
    if (this.closed) return;
    const bytes = Buffer.from(text, 'latin1');
    this.queue.push(bytes);
    this.queued += bytes.length;
    this.timer ??= setInterval(() => this.drain(), TICK_MS);
    if (this.queued <= this.bytesPerTick) this.drain(true); // short echoes go out at once
  }

  private drain(atOnce = false): void {
    if (this.streaming) return this.drainStreaming(atOnce);
    let budget = this.bytesPerTick;
    const chunks: Buffer[] = [];
    while (budget > 0 && this.queue.length > 0) {
      const head = this.queue[0]!;
      const take = head.subarray(0, budget);
      chunks.push(take);
      budget -= take.length;
      if (take.length === head.length) this.queue.shift();
      else this.queue[0] = head.subarray(take.length);
    }
    if (this.queue.length === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
    if (chunks.length === 0) return;
    const out = Buffer.concat(chunks);
    this.queued -= out.length;
    this.emitOutput(out);
  }

  /**
   * Streaming: queued output first, then streamed lines, as much as the line speed allowed since
   * the last tick (a late timer is caught up, within bounds). A short echo sent at once is not
   * held back by the budget; what it takes is owed by the next ticks.
   */
  private drainStreaming(atOnce: boolean): void {
    const now = Date.now();
    this.credit = Math.min(this.credit + (now - this.creditAt) * this.bytesPerMs, this.bytesPerTick * MAX_CATCH_UP_TICKS);
    this.creditAt = now;
    const chunks: Buffer[] = [];
    let budget = atOnce ? this.queued : Math.floor(this.credit);
    let taken = 0;
    while (budget > 0 && this.queue.length > 0) {
      const head = this.queue[0]!;
      const take = head.subarray(0, budget);
      chunks.push(take);
      budget -= take.length;
      taken += take.length;
      if (take.length === head.length) this.queue.shift();
      else this.queue[0] = head.subarray(take.length);
    }
    this.queued -= taken;
    this.credit -= taken;
    if (!atOnce && this.machine.state.power === 'on') {
      let fill = Math.floor(this.credit);
      this.credit -= Math.max(0, fill);
      while (fill > 0) {
        if (this.streamLineAt >= this.streamLine.length) {
          if (fill < STAMP_HEAD) {
            // the stamp and what follows it leave together: spaces now, the next line with the next tick
            chunks.push(Buffer.alloc(fill, 0x20));
            break;
          }
          this.streamLine = Buffer.from(monotonicStamp() + STREAM_LINES[this.streamLineNo++ % STREAM_LINES.length]!, 'latin1');
          this.streamLineAt = 0;
        }
        const take = this.streamLine.subarray(this.streamLineAt, this.streamLineAt + fill);
        chunks.push(take);
        fill -= take.length;
        this.streamLineAt += take.length;
      }
    }
    if (chunks.length === 0) return;
    this.emitOutput(chunks.length === 1 ? Buffer.from(chunks[0]!) : Buffer.concat(chunks));
  }

  private emitOutput(out: Buffer): void {
    this.outputBytes += out.length;
    this.remember(out);
    this.emit('data', out);
  }

  private remember(bytes: Buffer): void {
    this.recent.push(bytes);
    this.recentBytes += bytes.length;
    // drop whole chunks that lie entirely before the last `historyBytes`
    while (this.recent.length > 1 && this.recentBytes - this.recent[0]!.length >= this.historyBytes) this.recentBytes -= this.recent.shift()!.length;
  }
}

/** the most lines one storm may queue (a 2 MiB burst at ~80 bytes a line) */
export const MAX_STORM_LINES = 25_000;

/** FNV-1a over the latin1 bytes of `text`, as 8 hex digits. */
export function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i) & 0xff;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/** `storm m3 000042/001000 <payload> <fnv1a of everything before it>\r\n` */
export function stormLine(id: string, n: number, of: number): string {
  const width = String(of).length;
  const body = `storm ${id} ${String(n).padStart(width, '0')}/${of} kernel: probing device ${(n * 2654435761) >>> 0} ok`;
  return `${body} ${fnv1a(body)}\r\n`;
}

/** Parses a storm line (without its line end); undefined when it is not one or its checksum is wrong. */
export function parseStormLine(line: string): { id: string; n: number; of: number } | undefined {
  const m = /^(storm (\S+) (\d+)\/(\d+) .*) ([0-9a-f]{8})$/.exec(line);
  if (!m || fnv1a(m[1]!) !== m[5]) return undefined;
  return { id: m[2]!, n: Number(m[3]), of: Number(m[4]) };
}

const BOOT_NAMES = { pxe: 'from the network (PXE)', disk: 'from disk', bios: 'into BIOS setup' } as const;

/** What the machine prints from power-on to the login prompt. */
export function bootLog(machine: SimMachine, hostname: string): string {
  const s = machine.state;
  const lines = [
    '',
    `${s.manufacturer} ${s.model}`,
    `BIOS Version ${s.biosVersion}  BMC Firmware ${s.bmcVersion}`,
    `System UUID ${s.uuid}`,
    'Press <DEL> or <F2> to enter setup, <F12> for network boot.',
    ...(s.lastBoot ? [`Booting ${BOOT_NAMES[s.lastBoot.device]} (${s.lastBoot.via === 'override' ? 'boot override' : 'boot order'})`] : []),
    '',
    `[    0.000000] Linux version 6.6.58-metal (root@metal-stack) #1 SMP PREEMPT_DYNAMIC`,
    `[    0.000000] Command line: console=ttyS1,115200n8 init=/sbin/init`,
    `[    0.000000] DMI: ${s.manufacturer} ${s.model}, BIOS ${s.biosVersion}`,
    `[    0.412031] Serial: 8250/16550 driver, 4 ports, IRQ sharing enabled`,
    `[    1.803377] systemd[1]: Hostname set to <${hostname}>.`,
    `[    2.316044] ixgbe 0000:3b:00.0 eth0: NIC Link is Up 10 Gbps`,
    '',
    `Debian GNU/Linux 12 ${hostname} ttyS1`,
    '',
    `${hostname} login: `,
  ];
  return lines.join('\r\n');
}
