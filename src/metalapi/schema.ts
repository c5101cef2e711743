/**
 * Validation against metal-api's swagger (Swagger 2.0, whose definitions are mostly JSON
 * Schema draft-04). Used by the stand-in and by tests; the daemon itself does not load ajv.
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { BmcError } from '../errors.js';
import { defaultSwagger } from './swagger-file.js';

export type SwaggerDocument = { swagger?: string; definitions: Record<string, unknown>; [key: string]: unknown };

export { defaultSwaggerPath } from './swagger-file.js';

export function loadSwagger(source: string | SwaggerDocument = defaultSwagger()): SwaggerDocument {
  if (typeof source !== 'string') {
    if (source === null || typeof source !== 'object' || typeof source.definitions !== 'object') {
      throw new BmcError('INVALID_ARGUMENT', 'swagger: the document has no "definitions" object');
    }
    return source;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(source, 'utf8'));
  } catch (err) {
    throw new BmcError('CONFIG', `swagger: cannot read ${source}: ${(err as Error).message}`, { cause: err });
  }
  return loadSwagger(parsed as SwaggerDocument);
}

function collectFormats(value: unknown, into: Set<string>): Set<string> {
  if (Array.isArray(value)) for (const v of value) collectFormats(v, into);
  else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'format' && typeof v === 'string') into.add(v);
      else collectFormats(v, into);
    }
  }
  return into;
}

export interface SchemaValidator {
  (value: unknown): { ok: true } | { ok: false; errors: string };
}

function errorsText(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? [])
    .slice(0, 10)
    .map((e) => `${e.instancePath === '' ? '(body)' : e.instancePath} ${e.message ?? 'is invalid'}`)
    .join('; ');
}

/**
 * Compiles `#/definitions/<name>` of the swagger document. Unknown keywords (`x-go-type`,
 * `readOnly`, ...) are ignored and every `format` is accepted: Swagger's formats (`int32`,
 * `float`, `date-time`) describe Go types, not constraints worth failing a stand-in over.
 */
export function compileDefinition(swagger: SwaggerDocument, name: string): SchemaValidator {
  if (!(name in swagger.definitions)) throw new BmcError('INVALID_ARGUMENT', `swagger: no definition named "${name}"`);
  const formats = Object.fromEntries([...collectFormats(swagger.definitions, new Set())].map((f) => [f, true as const]));
  const ajv = new Ajv({ strict: false, allErrors: true, logger: false, validateSchema: false, formats });
  const validate: ValidateFunction = ajv.compile({ definitions: swagger.definitions, $ref: `#/definitions/${name}` });
  return (value: unknown) => (validate(value) ? { ok: true } : { ok: false, errors: errorsText(validate.errors) });
}
