/**
 * xterm.js and its stylesheet for the browser console page. Run from the sources they are read
 * from the installed `@xterm/xterm` package; the bundle (`dist/metal-bmc.mjs`, scripts/bundle.mjs)
 * replaces this module with one that holds both files, so the bundle reads no file beside it.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export function xtermAssets(): { js: Buffer; css: Buffer } {
  const root = dirname(dirname(createRequire(import.meta.url).resolve('@xterm/xterm')));
  return { js: readFileSync(join(root, 'lib', 'xterm.js')), css: readFileSync(join(root, 'css', 'xterm.css')) };
}
