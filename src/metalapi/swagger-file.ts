/**
 * Where metal-api's swagger comes from at run time. Run from the sources (tsx, vitest, tsc's
 * dist/src) it is the file `src/metalapi/metal-api.swagger.json` of the repository. The bundle
 * (`dist/metal-bmc.mjs`, scripts/bundle.mjs) replaces this module with one that holds the
 * definitions the stand-in validates against, so the bundle reads no file beside it.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BmcError } from '../errors.js';
import type { SwaggerDocument } from './schema.js';

/** `<repo root>/src/metalapi/metal-api.swagger.json` (see SWAGGER.md beside it), found from this file whether run from src or dist. */
export function defaultSwaggerPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json'))) return resolve(dir, 'src', 'metalapi', 'metal-api.swagger.json');
    dir = dirname(dir);
  }
  throw new BmcError('CONFIG', 'metal-api swagger: could not find the repository root (package.json) above this module');
}

/** The swagger `loadSwagger()` uses when given none: a path to read, or (in the bundle) the document itself. */
export function defaultSwagger(): string | SwaggerDocument {
  return defaultSwaggerPath();
}
