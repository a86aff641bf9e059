/**
 * Informers for controller unit tests: a {@link Store} the test fills by hand, seen through the
 * same {@link InformerView} a controller gets from the manager. Add objects with `add`, then
 * `sync()` (as the first list would), and run one reconcile.
 */
import { type IndexFunc, Store } from './cache.ts';
import type { InformerView } from './informer.ts';
import type { KubeObject } from '../objects/resources.ts';

export class FixtureInformer<T extends KubeObject = KubeObject> implements InformerView<T> {
  readonly name: string;
  readonly store: Store<T>;

  constructor(name: string, options: { readonly indexers?: Readonly<Record<string, IndexFunc<T>>> } = {}) {
    this.name = name;
    this.store = new Store<T>(options.indexers ? { indexers: options.indexers } : {});
  }

  get hasSynced(): boolean {
    return this.store.hasSynced;
  }

  /** Adds or replaces objects, as watch events would (handlers are called). */
  add(...objects: T[]): this {
    for (const obj of objects) this.store.upsert(obj);
    return this;
  }

  /** Removes an object, as a DELETED event would. */
  remove(obj: T): this {
    this.store.delete(obj);
    return this;
  }

  /** Marks the cache synced with what it holds, as the end of the first list does. */
  sync(): this {
    this.store.replace(this.store.list());
    return this;
  }

  addEventHandler(handler: Parameters<InformerView<T>['addEventHandler']>[0]): () => void {
    for (const obj of this.store.list()) handler.onAdd?.(obj);
    return this.store.subscribe(handler);
  }
}
