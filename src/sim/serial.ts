/**
 * The serial line (ttyS1) of a simulated machine: a synthetic boot log whenever the machine
 * powers on or resets, then a login prompt with a line discipline that echoes what is typed.
 * Output leaves as bytes through the 'data' event, paced like a 115200-baud UART; a small
 * history lets a console that attaches later see the latest prompt.
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

export interface SerialLineEvents {
  data: [Buffer];
  /** a break condition sent by a console (SOL "generate break") */
  break: [];
}

export class SerialLine extends EventEmitter<SerialLineEvents> {
  readonly hostname: string;
  /** number of breaks received, for tests */
  breaks = 0;
  private readonly bytesPerTick: number;
  private readonly historyBytes: number;
  private queue: Buffer[] = [];
  private queued = 0;
  private recent: Buffer = Buffer.alloc(0);
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
    this.historyBytes = options.historyBytes ?? 4096;
    // A machine that is already running has booted before we started listening.
    if (machine.state.power === 'on') this.remember(Buffer.from(bootLog(machine, this.hostname), 'latin1'));
    machine.on('change', this.onChange);
  }

  /** The latest output, already sent: what a console attaching now would see on screen. */
  history(): Buffer {
    return Buffer.from(this.recent);
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

  /** A break condition from the console; recorded, no other effect. */
  sendBreak(): void {
    this.breaks++;
    this.emit('break');
  }

  close(): void {
    this.closed = true;
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
    if (this.queued <= this.bytesPerTick) this.drain(); // short echoes go out at once
  }

  private drain(): void {
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
    this.remember(out);
    this.emit('data', out);
  }

  private remember(bytes: Buffer): void {
    const joined = Buffer.concat([this.recent, bytes]);
    this.recent = joined.length > this.historyBytes ? Buffer.from(joined.subarray(joined.length - this.historyBytes)) : joined;
  }
}

/** What the machine prints from power-on to the login prompt. */
export function bootLog(machine: SimMachine, hostname: string): string {
  const s = machine.state;
  const lines = [
    '',
    `${s.manufacturer} ${s.model}`,
    `BIOS Version ${s.biosVersion}  BMC Firmware ${s.bmcVersion}`,
    `System UUID ${s.uuid}`,
    'Press <DEL> or <F2> to enter setup, <F12> for network boot.',
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
