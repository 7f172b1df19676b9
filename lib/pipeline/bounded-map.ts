// A map that holds at most `max` entries, forgetting the oldest first, in two generations: when
// the newer one holds half the bound, it becomes the older one and the previous older one is
// dropped. So the latest max / 2 entries at least are always held, and no walk over old entries
// is ever needed. (One Map with its oldest key deleted per insert looked simpler, but V8 keeps
// deleted entries as holes that every walk from the oldest key steps over: a million inserts took
// half a minute.) The memory of delivered messageIds uses it.

export interface BoundedMap<V> {
  get(key: string): V | undefined;
  set(key: string, value: V): void;
  delete(key: string): void;
  /** Entries held, at most the bound. */
  readonly size: number;
}

export function boundedMap<V>(max: number): BoundedMap<V> {
  const generation = Math.max(1, Math.floor(max / 2));
  let newer = new Map<string, V>();
  let older = new Map<string, V>();
  return {
    get: (key) => newer.get(key) ?? older.get(key),
    set(key, value) {
      older.delete(key);
      newer.set(key, value);
      if (newer.size >= generation) {
        older = newer;
        newer = new Map();
      }
    },
    delete(key) {
      newer.delete(key);
      older.delete(key);
    },
    get size() {
      return newer.size + older.size;
    },
  };
}
