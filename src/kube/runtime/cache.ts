/**
 * The indexed, in-memory store a reflector fills. Readers get the objects as the reflector last
 * saw them; NEVER modify an object you got from here — it is shared, read-only state (the same
 * rule as client-go's informer cache).
 *
 * Indexes map an object to zero or more index values; `byIndex(name, value)` answers in O(result).
 * `owner` (ownerReference uids) is always present; others, `namespace` among them
 * ({@link namespaceIndex}), only when asked for: each costs an entry per object.
 */
import { type KubeObject, objectKey } from '../objects/resources.ts';

/** Returns the index values of an object (e.g. its namespace, or the uids of its owners). */
export type IndexFunc<T> = (obj: T) => readonly string[];

/** Notified after the store has changed. Handlers must be quick: enqueue keys, do not call the API. */
export interface StoreHandler<T> {
  onAdd?(obj: T): void;
  onUpdate?(oldObj: T, newObj: T): void;
  /**
   * `finalStateUnknown` is true when the delete was inferred from a relist (the watch missed the
   * DELETED event, e.g. across an apiserver restart): `obj` is then the last state we saw.
   */
  onDelete?(obj: T, finalStateUnknown: boolean): void;
}

/**
 * The read side of a {@link Store}: what controllers, webhook handlers and listers get. The
 * reflector alone writes.
 */
export type ReadonlyStore<T extends KubeObject = KubeObject> = Pick<Store<T>, 'hasSynced' | 'size' | 'get' | 'getByName' | 'list' | 'keys' | 'byIndex'>;

export const INDEX_NAMESPACE = 'namespace';
export const INDEX_OWNER = 'owner';

/** The namespace index, for stores that ask for it (`indexers: { [INDEX_NAMESPACE]: namespaceIndex }`). */
export const namespaceIndex: IndexFunc<KubeObject> = (obj) => (obj.metadata?.namespace ? [obj.metadata.namespace] : []);

const builtinIndexers: Record<string, IndexFunc<KubeObject>> = {
  [INDEX_OWNER]: (obj) => (obj.metadata?.ownerReferences ?? []).map((ref) => ref.uid),
};

export class Store<T extends KubeObject = KubeObject> {
  private readonly items = new Map<string, T>();
  private readonly indexers: Record<string, IndexFunc<T>>;
  /** index name → index value → keys */
  private readonly indices = new Map<string, Map<string, Set<string>>>();
  private readonly handlers = new Set<StoreHandler<T>>();
  private synced = false;

  constructor(options: { readonly indexers?: Readonly<Record<string, IndexFunc<T>>> } = {}) {
    this.indexers = { ...(builtinIndexers as Record<string, IndexFunc<T>>), ...options.indexers };
    for (const name of Object.keys(this.indexers)) this.indices.set(name, new Map());
  }

  /**
   * Adds indexes (several users of one shared informer may each bring theirs). Existing objects
   * are indexed at once. Adding an index under a name that exists with another function is a
   * programming error (the two users would read each other's index) and throws.
   */
  addIndexers(indexers: Readonly<Record<string, IndexFunc<T>>>): void {
    for (const [name, fn] of Object.entries(indexers)) {
      const existing = this.indexers[name];
      if (existing === fn) continue;
      if (existing) throw new Error(`index ${name} already exists with another function`);
      this.indexers[name] = fn;
      const index = new Map<string, Set<string>>();
      this.indices.set(name, index);
      for (const [key, obj] of this.items) {
        for (const value of fn(obj)) {
          let keys = index.get(value);
          if (!keys) { keys = new Set(); index.set(value, keys); }
          keys.add(key);
        }
      }
    }
  }

  /** True once the first complete list has been stored. */
  get hasSynced(): boolean {
    return this.synced;
  }

  get size(): number {
    return this.items.size;
  }

  get(key: string): T | undefined {
    return this.items.get(key);
  }

  /** The object with this namespace and name. */
  getByName(namespace: string | undefined, name: string): T | undefined {
    return this.items.get(namespace ? `${namespace}/${name}` : name);
  }

  list(): T[] {
    return [...this.items.values()];
  }

  keys(): string[] {
    return [...this.items.keys()];
  }

  /** Objects whose index `indexName` contains `value`. Throws for an unknown index (a programming error). */
  byIndex(indexName: string, value: string): T[] {
    const index = this.indices.get(indexName);
    if (!index) throw new Error(`no index named ${indexName}`);
    const keys = index.get(value);
    if (!keys) return [];
    const out: T[] = [];
    for (const key of keys) {
      const obj = this.items.get(key);
      if (obj) out.push(obj);
    }
    return out;
  }

  /** Registers a handler; returns a function that unregisters it. Existing objects are not replayed. */
  subscribe(handler: StoreHandler<T>): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  /** Adds or replaces one object (watch ADDED/MODIFIED). */
  upsert(obj: T): void {
    const key = objectKey(obj);
    const old = this.items.get(key);
    this.put(key, obj, old);
    if (old) this.emit((h) => h.onUpdate?.(old, obj));
    else this.emit((h) => h.onAdd?.(obj));
  }

  /** Removes one object (watch DELETED). */
  delete(obj: T): void {
    const key = objectKey(obj);
    const old = this.items.get(key);
    if (!old) return;
    this.remove(key, old);
    this.emit((h) => h.onDelete?.(obj, false));
  }

  /**
   * Replaces the whole content with a fresh list. Objects missing from the list are deleted
   * (finalStateUnknown), new ones added, changed ones (by resourceVersion) updated, unchanged
   * ones left alone so a relist after a reconnect causes no spurious work.
   */
  replace(objects: readonly T[]): void {
    const fresh = new Map<string, T>();
    for (const obj of objects) fresh.set(objectKey(obj), obj);
    for (const [key, old] of [...this.items]) {
      if (fresh.has(key)) continue;
      this.remove(key, old);
      this.emit((h) => h.onDelete?.(old, true));
    }
    for (const [key, obj] of fresh) {
      const old = this.items.get(key);
      if (old && old.metadata?.resourceVersion === obj.metadata?.resourceVersion && old.metadata?.uid === obj.metadata?.uid) continue;
      if (old && old.metadata?.uid !== obj.metadata?.uid) {
        // Same name, new object: the old one was deleted while we were not watching.
        this.remove(key, old);
        this.emit((h) => h.onDelete?.(old, true));
        this.put(key, obj, undefined);
        this.emit((h) => h.onAdd?.(obj));
        continue;
      }
      this.put(key, obj, old);
      if (old) this.emit((h) => h.onUpdate?.(old, obj));
      else this.emit((h) => h.onAdd?.(obj));
    }
    this.synced = true;
  }

  private put(key: string, obj: T, old: T | undefined): void {
    if (old) this.unindex(key, old);
    this.items.set(key, obj);
    for (const [name, fn] of Object.entries(this.indexers)) {
      const index = this.indices.get(name)!;
      for (const value of fn(obj)) {
        let keys = index.get(value);
        if (!keys) { keys = new Set(); index.set(value, keys); }
        keys.add(key);
      }
    }
  }

  private remove(key: string, old: T): void {
    this.unindex(key, old);
    this.items.delete(key);
  }

  private unindex(key: string, obj: T): void {
    for (const [name, fn] of Object.entries(this.indexers)) {
      const index = this.indices.get(name)!;
      for (const value of fn(obj)) {
        const keys = index.get(value);
        if (!keys) continue;
        keys.delete(key);
        if (keys.size === 0) index.delete(value);
      }
    }
  }

  private emit(call: (handler: StoreHandler<T>) => void): void {
    for (const handler of this.handlers) call(handler);
  }
}
