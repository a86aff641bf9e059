/**
 * Interning for cache transforms: 150,000 pods of one namespace hold 150,000 copies of its name
 * after JSON.parse, and the pods of one ReplicaSet as many copies of the same owner reference.
 * An {@link Interner} hands out one shared instance per distinct value instead, so the cache holds
 * each once. Values handed out are frozen: cached objects are never modified, and a shared one
 * must not be, by anyone.
 *
 * The table is bounded: past `maxEntries` it starts over, which costs only sharing (values
 * interned before and after are equal, just not the same instance), never correctness.
 */
export class Interner<V> {
  private readonly maxEntries: number;
  private values = new Map<string, V>();

  /** @param maxEntries distinct values kept before the table starts over. Default 100,000. */
  constructor(maxEntries = 100_000) {
    this.maxEntries = maxEntries;
  }

  /** The shared value for `key`, made (and frozen) by `make` the first time. */
  get(key: string, make: () => V): V {
    let value = this.values.get(key);
    if (value === undefined) {
      if (this.values.size >= this.maxEntries) this.values = new Map();
      value = deepFreeze(make());
      this.values.set(key, value);
    }
    return value;
  }

  /** Number of values held. */
  get size(): number {
    return this.values.size;
  }
}

/** One shared copy of each distinct string (namespaces, kinds, owner names). */
export class StringInterner {
  private readonly table: Interner<string>;

  constructor(maxEntries?: number) {
    this.table = new Interner<string>(maxEntries);
  }

  intern(value: string): string;
  intern(value: string | undefined): string | undefined;
  intern(value: string | undefined): string | undefined {
    return value === undefined ? undefined : this.table.get(value, () => value);
  }
}

function deepFreeze<V>(value: V): V {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
