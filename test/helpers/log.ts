/** A pino logger whose JSON lines the test can read. */
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/log.js';

export interface CapturedLog {
  logger: Logger;
  lines: Array<Record<string, unknown>>;
  text(): string;
  find(msg: RegExp | string): Array<Record<string, unknown>>;
}

export function captureLog(level = 'debug'): CapturedLog {
  const lines: Array<Record<string, unknown>> = [];
  let raw = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      raw += chunk.toString();
      for (const line of chunk.toString().split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return {
    logger: createLogger({ level }, sink),
    lines,
    text: () => raw,
    find: (msg) => lines.filter((l) => (typeof msg === 'string' ? l.msg === msg : msg.test(String(l.msg)))),
  };
}
