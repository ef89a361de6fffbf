/**
 * A Map as a bounded most-recently-used cache: a Map iterates in insertion order, so deleting
 * and re-inserting a key makes it the newest, and the first key is the least recently used.
 */

/** Makes `key` the newest entry of `map` (with `value`) and drops the oldest beyond `max` entries. */
export function setRecent<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value!);
}
