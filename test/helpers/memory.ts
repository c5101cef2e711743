/** Live memory for tests that bound what a piece of work keeps: a full collection first. */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
/** V8's gc(), exposed for this process */
export const gc = runInNewContext('gc') as () => void;

/** live bytes (JavaScript heap and array buffers) after a full collection */
export function liveBytes(): number {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}
