/**
 * Where the simulator's DMTF mockup comes from at run time. Run from the sources (tsx, vitest,
 * tsc's dist/src) it is `src/sim/mockup/public-rackmount1/` of the repository. The bundle
 * (`dist/metal-bmc.mjs`, scripts/bundle.mjs) replaces this module with one that holds every
 * `index.json` of the mockup, so the bundle reads no file beside it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The mockup below the repository's root, whichever folder holds this file's compiled code. */
const BELOW_ROOT = join('src', 'sim', 'mockup', 'public-rackmount1');
/** Enough folders up to reach the root from dist/src/sim/redfish and from a compiled copy in node_modules/.cache. */
const MAX_LEVELS = 8;

let root: string | undefined;

/** `src/sim/mockup/public-rackmount1/` of the first folder above this file that holds it (sources, dist/src, a compiled copy). */
function mockupRoot(): string {
  if (root !== undefined) return root;
  const here = fileURLToPath(import.meta.url);
  let dir = dirname(here);
  for (let level = 0; level < MAX_LEVELS; level++, dir = dirname(dir)) {
    const candidate = join(dir, BELOW_ROOT);
    if (existsSync(join(candidate, 'index.json'))) return (root = `${candidate}/`);
  }
  throw new Error(`Redfish mockup not found: no ${BELOW_ROOT} in the ${MAX_LEVELS} folders above ${here}`);
}

/** The text of the mockup's `index.json` for `path` below /redfish/v1/ ('' for the service root). */
export function readMockupFile(path: string): string {
  return readFileSync(`${mockupRoot()}${path === '' ? '' : `${path}/`}index.json`, 'utf8');
}
