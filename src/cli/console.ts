/** The interactive terminal side of `metal-bmc bmc console`: raw TTY, `~.` escape, clean restore. */
import type { Duplex } from 'node:stream';
import type { Outband } from '../outband/types.js';
import type { TextOutput } from './direct-stdout.js';

/** Watches typed bytes for `~.` at the start of a line, as ssh does. */
export function escapeDetector(): (chunk: Buffer) => { forward: Buffer; quit: boolean } {
  let atLineStart = true;
  let sawTilde = false;
  return (chunk) => {
    const out: number[] = [];
    for (const byte of chunk) {
      if (sawTilde) {
        sawTilde = false;
        if (byte === 0x2e) return { forward: Buffer.from(out), quit: true };
        out.push(0x7e);
        if (byte === 0x7e) {
          atLineStart = false;
          continue;
        }
      } else if (atLineStart && byte === 0x7e) {
        sawTilde = true;
        continue;
      }
      out.push(byte);
      atLineStart = byte === 0x0d || byte === 0x0a;
    }
    return { forward: Buffer.from(out), quit: false };
  };
}

export interface ConsoleIo {
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  stdout?: TextOutput;
  stderr?: NodeJS.WritableStream;
}

export async function runConsole(bmc: Outband, options: { takeOver: boolean; signal: AbortSignal } & ConsoleIo): Promise<number> {
  const sol: Duplex = await bmc.openConsole({ takeOver: options.takeOver, signal: options.signal });
  const stdin = options.stdin ?? process.stdin;
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  const tty = stdin.isTTY === true && typeof stdin.setRawMode === 'function';
  stderr.write(`[connected to ${bmc.address}; type ~. to leave]\r\n`);
  if (tty) stdin.setRawMode!(true);
  const detect = escapeDetector();
  return await new Promise<number>((resolve) => {
    let done = false;
    const finish = (code: number, message?: string) => {
      if (done) return;
      done = true;
      stdin.off('data', onInput);
      stdin.pause();
      if (tty) stdin.setRawMode!(false);
      if (message) stderr.write(`\r\n[${message}]\r\n`);
      sol.end(() => resolve(code));
      sol.once('error', () => resolve(code));
      setTimeout(() => resolve(code), 3000).unref();
    };
    const onInput = (chunk: Buffer) => {
      const { forward, quit } = detect(chunk);
      if (forward.length > 0) sol.write(forward);
      if (quit) finish(0, 'disconnected');
    };
    stdin.on('data', onInput);
    stdin.on('end', () => finish(0));
    sol.on('data', (d: Buffer) => stdout.write(d));
    sol.on('end', () => finish(0, 'the BMC ended the console'));
    sol.on('error', (err) => finish(1, `console failed: ${err.message}`));
  });
}
