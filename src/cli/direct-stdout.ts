/**
 * Standard output written straight to file descriptor 1, for one-shot commands that print a few
 * lines. Node builds `process.stdout` on first use, and on a pipe that is a net.Socket: net and
 * the streams are loaded for it, ~3 ms of a one-shot `metal-bmc bmc` command's start
 * (bench/cli-startup.ts). On Linux process.stdout writes to pipes, files and terminals
 * synchronously as well, so the output and its order are the same.
 */
import { writeSync } from 'node:fs';

/** What a command prints through: `process.stdout` is one, and so is `directStdout()`. */
export interface TextOutput {
  write(chunk: string | Uint8Array): unknown;
}

/**
 * Writes with fs.writeSync. When the descriptor would block (a full pipe someone made
 * non-blocking) or a write fails otherwise, the rest of that write and every later one go through
 * `fallback()` (process.stdout), which waits for the pipe and reports errors as it always did.
 */
export function directStdout(fd = 1, fallback: () => TextOutput = () => process.stdout): TextOutput {
  let stream: TextOutput | undefined;
  return {
    write(chunk) {
      if (stream) return stream.write(chunk);
      let bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      try {
        while (bytes.length > 0) bytes = bytes.subarray(writeSync(fd, bytes));
        return true;
      } catch {
        stream = fallback();
        return stream.write(bytes);
      }
    },
  };
}
