/**
 * Total, type-checking accessors over untrusted JSON. A value of the wrong type is
 * treated as absent (`undefined`); nothing here throws, whatever the input.
 */
export type JsonObject = Record<string, unknown>;

export function asObject(value: unknown): JsonObject | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as JsonObject) : undefined;
}

/** An own property only: keys such as `__proto__` or `constructor` never reach the prototype. */
export function prop(object: unknown, key: string): unknown {
  const o = asObject(object);
  return o !== undefined && Object.hasOwn(o, key) ? o[key] : undefined;
}

export function str(object: unknown, key: string): string | undefined {
  const v = prop(object, key);
  return typeof v === 'string' ? v : undefined;
}

export function num(object: unknown, key: string): number | undefined {
  const v = prop(object, key);
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

export function bool(object: unknown, key: string): boolean | undefined {
  const v = prop(object, key);
  return typeof v === 'boolean' ? v : undefined;
}

export function obj(object: unknown, key: string): JsonObject | undefined {
  return asObject(prop(object, key));
}

/** An array of strings; non-string entries are dropped, a non-array is absent. */
export function strArray(object: unknown, key: string): string[] | undefined {
  const v = prop(object, key);
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined;
}

export function arr(object: unknown, key: string): unknown[] | undefined {
  const v = prop(object, key);
  return Array.isArray(v) ? v : undefined;
}

/**
 * The longest `@odata.id` taken (real ones are paths of at most a few hundred characters; Dell's
 * drive paths, the longest seen, ~130): a BMC's link is followed, compared and quoted in errors,
 * and one of megabytes would cost each of those that much.
 */
export const MAX_ODATA_ID = 1024;

/** A path a BMC names under `key` (a nextLink, an action's target, a push URI), as `odataId` takes one: not empty, at most MAX_ODATA_ID characters. */
export function pathProp(object: unknown, key: string): string | undefined {
  const path = str(object, key);
  return path !== undefined && path.length > 0 && path.length <= MAX_ODATA_ID ? path : undefined;
}

/** `{"@odata.id": "/redfish/v1/..."}` → the path, or undefined (an empty or overlong one too). */
export function odataId(value: unknown): string | undefined {
  return pathProp(value, '@odata.id');
}

/**
 * A path without its trailing slashes, in linear time: `s.replace(/\/+$/, '')` is quadratic in
 * V8 for a run of slashes not at the end (the engine tries the run from each of its slashes), and
 * a BMC chooses these paths: 20,000 slashes took 1.4 s of the event loop.
 */
export function withoutTrailingSlashes(path: string): string {
  let end = path.length;
  while (end > 0 && path.charCodeAt(end - 1) === 0x2f) end--;
  return end === path.length ? path : path.slice(0, end);
}

/** A navigation property: `object[key]["@odata.id"]`. */
export function link(object: unknown, key: string): string | undefined {
  return odataId(prop(object, key));
}

/** An array of navigation references: `object[key][]["@odata.id"]`; a single reference counts as one. */
export function links(object: unknown, key: string): string[] {
  const v = prop(object, key);
  if (Array.isArray(v)) return v.map(odataId).filter((x): x is string => x !== undefined);
  const single = odataId(v);
  return single === undefined ? [] : [single];
}

/** Drops undefined-valued keys so that results compare cleanly and log compactly. */
export function compact<T extends object>(value: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = v;
  return out as T;
}
