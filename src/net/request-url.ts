/**
 * A request's target as a URL that never throws. `new URL(req.url, base)` takes a target starting
 * with `//` for a scheme-relative URL (`GET ///` has an empty host) and throws: one such request,
 * before any authentication, ended the process. The target is read as the path (and query) of a
 * fixed origin instead, so `//x` stays the path `//x`, which no route serves.
 */
const ORIGIN = 'http://request.invalid';

export function requestUrl(target: string | undefined): URL {
  const t = target === undefined || target === '' ? '/' : target;
  try {
    return new URL(`${ORIGIN}${t.startsWith('/') ? t : `/${t}`}`);
  } catch {
    // not seen with any input; a path no route serves all the same
    return new URL(`${ORIGIN}/.invalid-request-target`);
  }
}
