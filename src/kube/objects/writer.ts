/**
 * The write side a capability receives from the manager: the helpers of writes.ts bound to the
 * capability's field manager. A controller holds an {@link ObjectWriter} and never a client, so
 * its unit tests hand it a recording fake (fake-writer.ts) and assert the writes it made, as
 * sample-controller's tests assert the actions of a fake clientset.
 */
import type { FieldManager } from './labels.ts';
import type { KubeObject, ResourceType } from './resources.ts';
import {
  addFinalizer, createObject, createOrGet, type CreateOrGetResult, deleteObject, type KubeRequester, migrateFieldManager, removeFinalizer,
  serverSideApply,
} from './writes.ts';

/** Per-call options; the field manager is the writer's. */
export interface WriteCallOptions {
  readonly signal?: AbortSignal;
  /** Validated and admitted, never persisted (`dryRun=All`). */
  readonly dryRun?: boolean;
}

/** Identity of an object to delete: it is deleted only if it still has this uid (and resourceVersion, when given). */
export interface ObjectRef {
  readonly namespace?: string;
  readonly name: string;
  readonly uid: string;
  readonly resourceVersion?: string;
}

/** Writes as one capability. Every method throws the API server's error (KubeApiError) unless it says otherwise. */
export interface ObjectWriter {
  /** The field manager every write is recorded under. */
  readonly fieldManager: FieldManager;
  /** Creates; 409 AlreadyExists when the name is taken. */
  create<T extends KubeObject>(type: ResourceType, obj: T, options?: WriteCallOptions): Promise<T>;
  /** Creates, or reads the object that holds the name (see writes.ts {@link createOrGet}). */
  createOrGet<T extends KubeObject>(type: ResourceType, obj: T, options?: WriteCallOptions): Promise<CreateOrGetResult<T>>;
  /** Server-side apply, forced; put the object's uid in `metadata` so a replaced object is refused (409). */
  apply<T extends KubeObject>(type: ResourceType, obj: T, options?: WriteCallOptions): Promise<T>;
  /** Deletes if still the object of `ref`; false when it was gone or replaced. */
  delete(type: ResourceType, ref: ObjectRef, options?: WriteCallOptions): Promise<boolean>;
  /** Hands the fields manager `from` owns to this writer's manager (see writes.ts {@link migrateFieldManager}). */
  migrateFieldManager(type: ResourceType, ref: Omit<ObjectRef, 'uid' | 'resourceVersion'> & { readonly uid?: string }, from: string, options?: WriteCallOptions): Promise<boolean>;
  addFinalizer<T extends KubeObject>(type: ResourceType, obj: T, finalizer: string, options?: WriteCallOptions): Promise<T>;
  removeFinalizer<T extends KubeObject>(type: ResourceType, obj: T, finalizer: string, options?: WriteCallOptions): Promise<T | undefined>;
}

/** An {@link ObjectWriter} on the API server, writing as `fieldManager`. */
export function kubeObjectWriter(client: KubeRequester, fieldManager: FieldManager): ObjectWriter {
  const as = (options: WriteCallOptions = {}) => ({ ...options, fieldManager });
  return {
    fieldManager,
    create: (type, obj, options) => createObject(client, type, obj, as(options)),
    createOrGet: (type, obj, options) => createOrGet(client, type, obj, as(options)),
    apply: (type, obj, options) => serverSideApply(client, type, obj, as(options)),
    delete: (type, ref, options = {}) => deleteObject(client, type, ref, options),
    migrateFieldManager: (type, ref, from, options) => migrateFieldManager(client, type, ref, from, as(options)),
    addFinalizer: (type, obj, finalizer, options) => addFinalizer(client, type, obj, finalizer, as(options)),
    removeFinalizer: (type, obj, finalizer, options) => removeFinalizer(client, type, obj, finalizer, as(options)),
  };
}
