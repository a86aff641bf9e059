/**
 * Writes through {@link KubeClient} (pooled connections) for controllers: create-only, server-side
 * apply with a uid/resourceVersion precondition, preconditioned delete, finalizers with optimistic
 * concurrency, and the one-time move of field ownership from an old field manager to a new one.
 *
 * Every helper takes {@link WriteOptions}: the capability's field manager (one per capability, see
 * {@link FIELD_MANAGERS}), an abort `signal`, and `dryRun` (the API server validates, runs
 * admission and answers with the would-be object, persisting nothing). Each returns what the API
 * server answered or throws {@link KubeApiError}.
 */
import type { KubeClient } from '../client/client.ts';
import { isAlreadyExists, isConflict, isNotFound } from '../client/errors.ts';
import { FINALIZER_PREFIX, type FieldManager } from './labels.ts';
import { collectionPath, type KubeObject, objectPath, type ResourceType } from './resources.ts';

/** The part of {@link KubeClient} the helpers use: tests hand in one that counts or fails calls. */
export type KubeRequester = Pick<KubeClient, 'json'>;

export interface WriteOptions {
  /** Recorded in `metadata.managedFields`; the writing capability's entry of {@link FIELD_MANAGERS}. */
  readonly fieldManager: FieldManager;
  readonly signal?: AbortSignal;
  /** Send with `dryRun=All`: validated and admitted, never persisted. */
  readonly dryRun?: boolean;
}

/** Options of writes that record no field ownership (deletes). */
export type DeleteOptions = Pick<WriteOptions, 'signal' | 'dryRun'>;

function writeQuery(options: Pick<WriteOptions, 'dryRun'> & { readonly fieldManager?: string }): Record<string, string | boolean | undefined> {
  return { fieldManager: options.fieldManager, dryRun: options.dryRun ? 'All' : undefined };
}

function signalOf(options: { readonly signal?: AbortSignal }): { signal?: AbortSignal } {
  return options.signal ? { signal: options.signal } : {};
}

/**
 * Creates `obj`; fails with 409 AlreadyExists when an object of that name exists — which is how
 * a controller learns, without overwriting anything, that the name is taken by someone else.
 */
export async function createObject<T extends KubeObject>(client: KubeRequester, type: ResourceType, obj: T, options: WriteOptions): Promise<T> {
  return await client.json<T>(collectionPath(type, obj.metadata?.namespace), {
    method: 'POST',
    query: writeQuery(options),
    body: obj,
    ...signalOf(options),
  });
}

/** What {@link createOrGet} found: the object it created, or the one that already had the name. */
export type CreateOrGetResult<T> = { readonly created: true; readonly object: T } | { readonly created: false; readonly existing: KubeObject };

/**
 * Creates `obj`, or, when the name is taken (409 AlreadyExists), reads the object that holds it so
 * the caller can tell its own (cache lag) from someone else's. If that read fails, the error is
 * thrown: an object we could not read is neither ours nor theirs, and must not be reported as
 * "not managed by crowsnest" (retry instead).
 */
export async function createOrGet<T extends KubeObject>(client: KubeRequester, type: ResourceType, obj: T, options: WriteOptions): Promise<CreateOrGetResult<T>> {
  try {
    return { created: true, object: await createObject(client, type, obj, options) };
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  }
  const existing = await client.json<KubeObject>(objectPath(type, obj.metadata!.name!, obj.metadata?.namespace), signalOf(options));
  return { created: false, existing };
}

/**
 * Server-side apply of `obj` as `options.fieldManager`, forcing ownership of conflicting fields.
 * Only for objects we created: pass their `uid` (and, to refuse a change made since it was read,
 * `resourceVersion`) in `metadata`, so the apply fails (409) instead of taking over an object
 * replaced under the same name.
 */
export async function serverSideApply<T extends KubeObject>(client: KubeRequester, type: ResourceType, obj: T, options: WriteOptions): Promise<T> {
  return await client.json<T>(objectPath(type, obj.metadata!.name!, obj.metadata?.namespace), {
    method: 'PATCH',
    query: { ...writeQuery(options), force: true },
    contentType: 'application/apply-patch+yaml',
    body: obj,
    ...signalOf(options),
  });
}

/**
 * Deletes an object only if it is still the one we saw (uid, and resourceVersion when given).
 * Returns false when it was already gone or had been replaced.
 */
export async function deleteObject(
  client: KubeRequester,
  type: ResourceType,
  ref: { readonly namespace?: string; readonly name: string; readonly uid: string; readonly resourceVersion?: string },
  options: DeleteOptions = {},
): Promise<boolean> {
  try {
    await client.json(objectPath(type, ref.name, ref.namespace), {
      method: 'DELETE',
      // With a DeleteOptions body the API server reads dryRun from the body, not the query.
      body: {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        propagationPolicy: 'Background',
        ...(options.dryRun ? { dryRun: ['All'] } : {}),
        preconditions: { uid: ref.uid, ...(ref.resourceVersion ? { resourceVersion: ref.resourceVersion } : {}) },
      },
      ...signalOf(options),
    });
    return true;
  } catch (err) {
    // 409: a precondition (uid, resourceVersion) no longer holds.
    if (isNotFound(err) || isConflict(err)) return false;
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Finalizers

/**
 * How often a finalizer change is tried against a fresher copy after a conflict before the error
 * goes to the caller's queue (which retries with backoff).
 */
const FINALIZER_ATTEMPTS = 5;

function assertFinalizerName(finalizer: string): void {
  if (!finalizer.startsWith(FINALIZER_PREFIX) || finalizer.length === FINALIZER_PREFIX.length) {
    throw new Error(`finalizer "${finalizer}" must be named ${FINALIZER_PREFIX}<what it cleans up>`);
  }
}

/**
 * Adds `finalizer` to `obj` unless it is there already (then no request is sent). For what owner
 * references cannot clean up: cluster-scoped objects a namespaced one caused, node taints.
 *
 * Optimistic concurrency: a merge patch that carries `obj`'s uid and resourceVersion replaces the
 * finalizer list, so a list changed by someone else meanwhile is never overwritten: on 409 the
 * object is read again and the change retried (up to 5 times, then the 409 is thrown).
 * An object already being deleted gets no new finalizer (the API server forbids it): it is
 * returned unchanged. Returns the object as last seen.
 */
export async function addFinalizer<T extends KubeObject>(client: KubeRequester, type: ResourceType, obj: T, finalizer: string, options: WriteOptions): Promise<T> {
  assertFinalizerName(finalizer);
  return await changeFinalizers(client, type, obj, options, (current) => {
    if (current.metadata?.deletionTimestamp || current.metadata?.finalizers?.includes(finalizer)) return undefined;
    return [...(current.metadata?.finalizers ?? []), finalizer];
  }) ?? obj;
}

/**
 * Removes `finalizer` from `obj` if it is there (else no request). Same optimistic concurrency as
 * {@link addFinalizer}. Returns the object as last seen, or `undefined` when it is gone (removing
 * the last finalizer of a deleted object lets the API server delete it; a 404 counts as done).
 */
export async function removeFinalizer<T extends KubeObject>(client: KubeRequester, type: ResourceType, obj: T, finalizer: string, options: WriteOptions): Promise<T | undefined> {
  assertFinalizerName(finalizer);
  return await changeFinalizers(client, type, obj, options, (current) => {
    const finalizers = current.metadata?.finalizers ?? [];
    return finalizers.includes(finalizer) ? finalizers.filter((f) => f !== finalizer) : undefined;
  });
}

/** Patches the finalizer list to `next(current)` (undefined: nothing to do), re-reading on conflict. */
async function changeFinalizers<T extends KubeObject>(
  client: KubeRequester, type: ResourceType, obj: T, options: WriteOptions, next: (current: T) => string[] | undefined,
): Promise<T | undefined> {
  const path = objectPath(type, obj.metadata!.name!, obj.metadata?.namespace);
  let current = obj;
  for (let attempt = 1; ; attempt++) {
    const finalizers = next(current);
    if (finalizers === undefined) return current;
    try {
      return await client.json<T>(path, {
        method: 'PATCH',
        query: writeQuery(options),
        contentType: 'application/merge-patch+json',
        // uid and resourceVersion in a patch are preconditions: 409 if the object changed.
        body: { metadata: { uid: current.metadata?.uid, resourceVersion: current.metadata?.resourceVersion, finalizers } },
        ...signalOf(options),
      });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      if (!isConflict(err) || attempt >= FINALIZER_ATTEMPTS) throw err;
    }
    try {
      const fresh = await client.json<T>(path, signalOf(options));
      // Replaced under the same name: not the object we were asked about.
      if (obj.metadata?.uid && fresh.metadata?.uid !== obj.metadata.uid) return undefined;
      current = fresh;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Field managers

/** One entry of `metadata.managedFields`. */
export interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  apiVersion?: string;
  time?: string;
  fieldsType?: string;
  fieldsV1?: Record<string, unknown>;
  subresource?: string;
}

/**
 * Informer transform for objects a capability writes: drops the bulky `fieldsV1` of
 * `metadata.managedFields` but keeps who manages the object, so {@link hasFieldManager} can
 * answer from the cache.
 */
export function keepFieldManagers<T extends KubeObject>(obj: T): T {
  const entries = obj.metadata?.managedFields as ManagedFieldsEntry[] | undefined;
  if (!entries) return obj;
  const managedFields = entries.map((e) => ({ manager: e.manager, operation: e.operation, ...(e.subresource ? { subresource: e.subresource } : {}) }));
  return { ...obj, metadata: { ...obj.metadata, managedFields } };
}

/** Whether `manager` owns fields of `obj` (its managedFields, full or as kept by {@link keepFieldManagers}). */
export function hasFieldManager(obj: KubeObject, manager: string): boolean {
  return ((obj.metadata?.managedFields ?? []) as ManagedFieldsEntry[]).some((e) => e.manager === manager);
}

/**
 * `managedFields` with every field `from` owns on the main resource — through applies and through
 * plain updates (its creates) alike — folded into `to`'s Apply entry of the same apiVersion (the
 * union of the field sets; the entry is made if `to` has none). Apply removes a field only when no
 * other entry owns it, so a field still owned by the old name, even by its create, would survive
 * every later apply that stops setting it. Entries of other managers and of subresources stay.
 * Returns undefined when `from` owns nothing.
 *
 * `to`'s own Update entries are left alone on purpose: they hold what its non-apply writes set,
 * finalizers among them, which its applies do not list and must not remove.
 */
export function transferFieldOwnership(entries: readonly ManagedFieldsEntry[], from: string, to: string): ManagedFieldsEntry[] | undefined {
  const moves = (e: ManagedFieldsEntry): boolean => e.manager === from && !e.subresource;
  if (!entries.some(moves)) return undefined;
  const isTarget = (e: ManagedFieldsEntry, apiVersion: string | undefined): boolean =>
    e.manager === to && e.operation === 'Apply' && !e.subresource && e.apiVersion === apiVersion;
  const result: ManagedFieldsEntry[] = [];
  for (const entry of entries) {
    if (!moves(entry) && !isTarget(entry, entry.apiVersion)) {
      result.push(entry);
      continue;
    }
    const index = result.findIndex((e) => isTarget(e, entry.apiVersion));
    if (index < 0) {
      result.push({ ...entry, manager: to, operation: 'Apply' });
      continue;
    }
    const target = result[index]!;
    result[index] = {
      ...target,
      fieldsV1: unionFieldSets(target.fieldsV1 ?? {}, entry.fieldsV1 ?? {}),
      time: [target.time, entry.time].filter((t): t is string => !!t).sort().at(-1) ?? target.time,
    } as ManagedFieldsEntry;
  }
  return result;
}

/** Union of two FieldsV1 tries (`{"f:metadata": {"f:labels": {"f:a": {}}}, ".": {}}`). */
function unionFieldSets(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [key, value] of Object.entries(b)) {
    const mine = out[key];
    out[key] = mine && typeof mine === 'object' && value && typeof value === 'object'
      ? unionFieldSets(mine as Record<string, unknown>, value as Record<string, unknown>)
      : value;
  }
  return out;
}

/**
 * Hands the fields `from` owns in an object to the capability's own manager (`options.fieldManager`),
 * before that manager applies to it (see {@link transferFieldOwnership}). Without this, an object applied by an older version under a
 * shared manager name keeps fields the new manager stops setting (they stay owned by the old
 * name, and server-side apply only removes fields that no manager owns any more).
 *
 * Reads the object (the cache keeps no field sets) and rewrites `metadata.managedFields` with a
 * JSON patch guarded by the resourceVersion it read. Returns true when it changed something.
 */
export async function migrateFieldManager(
  client: KubeRequester,
  type: ResourceType,
  ref: { readonly namespace?: string; readonly name: string; readonly uid?: string },
  from: string,
  options: WriteOptions,
): Promise<boolean> {
  const path = objectPath(type, ref.name, ref.namespace);
  let current: KubeObject;
  try {
    current = await client.json<KubeObject>(path, signalOf(options));
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
  if (ref.uid && current.metadata?.uid !== ref.uid) return false;
  const managedFields = transferFieldOwnership((current.metadata?.managedFields ?? []) as ManagedFieldsEntry[], from, options.fieldManager);
  if (!managedFields) return false;
  await client.json(path, {
    method: 'PATCH',
    query: writeQuery(options),
    contentType: 'application/json-patch+json',
    body: [
      { op: 'test', path: '/metadata/resourceVersion', value: current.metadata?.resourceVersion },
      { op: 'replace', path: '/metadata/managedFields', value: managedFields },
    ],
    ...signalOf(options),
  });
  return true;
}
