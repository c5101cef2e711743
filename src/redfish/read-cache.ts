/**
 * Reads of one BMC for one purpose (a report), each resource at most once: a GET already made
 * or under way is shared, so vendor detection, the inventory and speculative read-ahead never ask
 * the BMC twice for the same thing. A failed read stays failed for the cache's life (the next
 * reader sees the same error rather than a second request). Drop the cache when done: it holds
 * the bodies it read.
 *
 * Collections are read with their members inline (`$expand`) where the service root says the
 * service supports it; the members land in the cache under their own paths. A service that
 * ignores `$expand` (members as bare links) is read member by member. Every other failure of the
 * expanded read is read the plain way: a refusal (HTTP 4xx/5xx, e.g. QueryNotSupportedOnResource,
 * or bmcweb's expand allowed on a few URIs only), a 2xx answer without a `Members` array (an
 * error object), and a transport failure (a timeout or a dropped connection on an expansion the
 * BMC finds expensive, bad JSON); only the caller's abort ends the read. An inline member without
 * its `Id` (AMI firmware that drops required properties of expanded members) or with
 * `@Message.ExtendedInfo` (DSP0266: a member the service could not expand carries its error
 * there) is read on its own.
 */
import { isBmcError } from '../errors.js';
import { arr, asObject, odataId, prop, str } from './json.js';
import type { ExpandSupport } from './parse.js';
import { listMembers, type ReadOptions, type RedfishGetter } from './resources.js';

export interface ReadCache extends RedfishGetter {
  /** `path`'s body is on its way already (read elsewhere); if that fails, it is read here */
  seed(path: string, body: Promise<unknown>, options?: ReadOptions): void;
  /** starts reading `path` now; a failure surfaces when someone gets it */
  prefetch(path: string, options?: ReadOptions): void;
  /** member paths of a collection, with the members read inline where `$expand` works */
  members(path: string, expand: ExpandSupport | undefined, options?: ReadOptions): Promise<string[]>;
  /** every path requested from the BMC, in order (a path with `$expand` as sent) */
  readonly requested: readonly string[];
}

export function expandQuery(e: ExpandSupport): string {
  return `$expand=${e.operator}${e.levels ? '($levels=1)' : ''}`;
}

/** An inline member complete enough to stand for its own GET. */
function fullMember(m: unknown): m is Record<string, unknown> {
  return asObject(m) !== undefined && odataId(m) !== undefined && str(m, 'Id') !== undefined && prop(m, '@Message.ExtendedInfo') === undefined;
}

export function readCache(client: RedfishGetter): ReadCache {
  const cache = new Map<string, Promise<unknown>>();
  const requested: string[] = [];
  const expanding = new Map<string, Promise<boolean>>();

  function get<T = unknown>(path: string, options: ReadOptions = {}): Promise<T> {
    let p = cache.get(path);
    if (p === undefined) {
      requested.push(path);
      p = client.get(path, options);
      p.catch(() => undefined); // observed here; the error reaches whoever awaits it
      cache.set(path, p);
    }
    return p as Promise<T>;
  }

  async function expanded(path: string, expand: ExpandSupport, options: ReadOptions): Promise<boolean> {
    const query = `${path}${path.includes('?') ? '&' : '?'}${expandQuery(expand)}`;
    requested.push(query);
    let body: unknown;
    try {
      body = await client.get(query, options);
    } catch (err) {
      if (options.signal?.aborted || isBmcError(err, 'ABORTED')) throw err;
      return false; // refused or failed: read it the plain way
    }
    const members = arr(body, 'Members');
    if (members === undefined) return false; // a 2xx that is not the collection
    cache.set(path, Promise.resolve(body));
    for (const m of members) {
      // a member already read on its own keeps that read (the full resource)
      const id = odataId(m);
      if (fullMember(m) && !cache.has(id!)) cache.set(id!, Promise.resolve(m));
    }
    return true;
  }

  return {
    get,
    requested,
    seed(path, body, options = {}) {
      if (cache.has(path)) return;
      const p = body.catch(() => {
        requested.push(path);
        return client.get(path, options);
      });
      p.catch(() => undefined);
      cache.set(path, p);
    },
    prefetch(path, options = {}) {
      void get(path, options);
    },
    async members(path, expand, options = {}) {
      if (expand !== undefined && !cache.has(path)) {
        let e = expanding.get(path);
        if (e === undefined) {
          e = expanded(path, expand, options);
          expanding.set(path, e);
        }
        await e;
      }
      return listMembers({ get }, path, options);
    },
  };
}
