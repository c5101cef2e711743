/**
 * Where the simulator's DMTF mockup comes from at run time. Run from the sources (tsx, vitest,
 * tsc's dist/src) it is `src/sim/mockup/public-rackmount1/` of the repository. The bundle
 * (`dist/metal-bmc.mjs`, scripts/bundle.mjs) replaces this module with one that holds every
 * `index.json` of the mockup, so the bundle reads no file beside it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** src/sim/mockup beside this file when run from source (tsx, vitest); the same folder from dist/src. */
const CANDIDATES = ['../mockup/public-rackmount1/', '../../../../src/sim/mockup/public-rackmount1/'];

let root: string | undefined;

function mockupRoot(): string {
  if (root !== undefined) return root;
  for (const candidate of CANDIDATES) {
    const dir = fileURLToPath(new URL(candidate, import.meta.url));
    if (existsSync(`${dir}index.json`)) return (root = dir);
  }
  throw new Error(`Redfish mockup not found (looked in ${CANDIDATES.join(', ')} relative to ${import.meta.url})`);
}

/** The text of the mockup's `index.json` for `path` below /redfish/v1/ ('' for the service root). */
export function readMockupFile(path: string): string {
  return readFileSync(`${mockupRoot()}${path === '' ? '' : `${path}/`}index.json`, 'utf8');
}
