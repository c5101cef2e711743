/**
 * A Map as a bounded record of the latest: `setNewest` sets `key` as the newest entry and drops
 * the oldest ones beyond `max`. A Map keeps insertion order, so deleting before setting moves a
 * key to the end, and the first key is the one set longest ago.
 */
export function setNewest<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  while (map.size > max) map.delete(map.keys().next().value as K);
}
