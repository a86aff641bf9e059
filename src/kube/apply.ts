/**
 * Writes through server-side apply, plus the owner-reference and guarded-delete helpers a
 * reconciler needs around it.
 *
 * Server-side apply sends the *desired* object and lets the API server merge it, recording which
 * fields belong to our field manager. Re-applying the same intent is a no-op, fields we stop
 * sending are removed (when only we owned them), and fields other managers own are left alone —
 * so a reconciler never needs read-modify-write cycles or resourceVersion bookkeeping to converge.
 */
import {
  KubernetesObjectApi,
  PatchStrategy,
  type KubeConfig,
  type KubernetesObject,
  type V1DeleteOptions,
  type V1OwnerReference,
} from '@kubernetes/client-node';
import { isConflict, isNotFound } from './errors.ts';
import { FIELD_MANAGER, isManagedByUs, managedLabels } from './labels.ts';

/** The part of `KubernetesObjectApi` these helpers call; tests pass a fake. */
export type ObjectApi = Pick<KubernetesObjectApi, 'patch' | 'delete'>;

/** Where a write goes: a kubeconfig (a client is built once per config) or a ready client. */
export type ApplyTarget = KubeConfig | ObjectApi;

/** The `dryRun` query value that runs every admission and validation stage but persists nothing. */
const DRY_RUN_ALL = 'All';

/**
 * `KubernetesObjectApi` caches API discovery per instance; building one per call would re-run
 * discovery for every write. One client per kubeconfig, dropped together with the config.
 */
const objectApiByConfig = new WeakMap<KubeConfig, KubernetesObjectApi>();

/** The client for `target`: itself when it already is one, else the cached client of the kubeconfig. */
export function objectApiFor(target: ApplyTarget): ObjectApi {
  if (isObjectApi(target)) return target;
  let api = objectApiByConfig.get(target);
  if (!api) {
    api = KubernetesObjectApi.makeApiClient(target);
    objectApiByConfig.set(target, api);
  }
  return api;
}

function isObjectApi(target: ApplyTarget): target is ObjectApi {
  return typeof (target as Partial<ObjectApi>).patch === 'function' && typeof (target as Partial<ObjectApi>).delete === 'function';
}

/** Options of {@link applyObject}. */
export interface ApplyOptions {
  /** Field manager recorded as owner of the applied fields. Default {@link FIELD_MANAGER}. */
  readonly fieldManager?: string;
  /**
   * Take over fields another manager owns instead of failing with 409. Default `true`: a
   * controller is the authority over the objects it manages, and a conflict it cannot resolve
   * would only make it retry forever.
   */
  readonly force?: boolean;
  /** Validate and admit the request on the server without persisting it. Default `false`. */
  readonly dryRun?: boolean;
}

/**
 * Server-side applies `obj` and returns the object as stored (or as it would be, with `dryRun`).
 *
 * `obj` needs `apiVersion`, `kind` and `metadata.name`; a namespaced object without
 * `metadata.namespace` goes to the kubeconfig context's namespace. `obj` is not modified.
 * `metadata.managedFields` is dropped because the API server rejects an apply that carries it;
 * everything else is sent as given — include only the fields you intend to own.
 *
 * @throws the client's `ApiException` (see errors.ts) when the server refuses the apply.
 */
export async function applyObject<T extends KubernetesObject>(target: ApplyTarget, obj: T, options: ApplyOptions = {}): Promise<T> {
  const { fieldManager = FIELD_MANAGER, force = true, dryRun = false } = options;
  if (!obj.apiVersion || !obj.kind || !obj.metadata?.name) {
    throw new Error(`applyObject needs apiVersion, kind and metadata.name (got ${describeRef(obj)})`);
  }
  // KubernetesObjectApi fills in defaults (namespace) on the object it is given: hand it a copy.
  const { managedFields: _dropped, ...metadata } = obj.metadata;
  const body = { ...obj, metadata } as T;
  return objectApiFor(target).patch(
    body,
    undefined, // pretty
    dryRun ? DRY_RUN_ALL : undefined,
    fieldManager,
    force,
    PatchStrategy.ServerSideApply,
  );
}

/** The parts of an object an owner reference is built from. */
export interface OwnerLike {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata?: { readonly name?: string; readonly uid?: string };
}

/** Options of {@link ownerReference}. */
export interface OwnerReferenceOptions {
  /**
   * Mark the owner as the managing controller. At most one owner reference of an object may be
   * the controller; adoption and `isControlledBy` go by it. Default `true`.
   */
  readonly controller?: boolean;
  /**
   * With foreground deletion, keep the owner until this dependent is gone. Setting it requires
   * `update` on the owner's `finalizers` subresource in RBAC. Default `true`.
   */
  readonly blockOwnerDeletion?: boolean;
}

/**
 * An owner reference to `owner`, for the `metadata.ownerReferences` of an object it owns, so the
 * garbage collector deletes the dependent with its owner. The owner must be a stored object
 * (it needs a `uid`) in the same namespace as the dependent, or cluster-scoped.
 */
export function ownerReference(owner: OwnerLike, options: OwnerReferenceOptions = {}): V1OwnerReference {
  const { controller = true, blockOwnerDeletion = true } = options;
  const { apiVersion, kind } = owner;
  const name = owner.metadata?.name;
  const uid = owner.metadata?.uid;
  if (!apiVersion || !kind || !name || !uid) {
    throw new Error(`ownerReference needs apiVersion, kind, metadata.name and metadata.uid of the owner (got ${describeRef(owner)}, uid ${uid ?? 'missing'})`);
  }
  return { apiVersion, kind, name, uid, controller, blockOwnerDeletion };
}

/** A copy of `obj` whose labels include {@link managedLabels} (which win over same-named labels). */
export function withManagedLabels<T extends KubernetesObject>(obj: T): T {
  return {
    ...obj,
    metadata: { ...obj.metadata, labels: { ...obj.metadata?.labels, ...managedLabels() } },
  };
}

/** The owner reference marked `controller: true`, if any. */
export function controllerOf(obj: KubernetesObject): V1OwnerReference | undefined {
  return obj.metadata?.ownerReferences?.find((ref) => ref.controller === true);
}

/** Whether the controller owner reference of `obj` points at the object with `ownerUid`. */
export function isControlledBy(obj: KubernetesObject, ownerUid: string): boolean {
  return controllerOf(obj)?.uid === ownerUid;
}

/** Identifies an object to delete without holding the object itself. */
export interface ObjectRef {
  readonly apiVersion: string;
  readonly kind: string;
  /** Omit for cluster-scoped kinds. */
  readonly namespace?: string;
  readonly name: string;
}

/** Options of {@link deleteIfManaged}. */
export interface DeleteIfManagedOptions {
  /**
   * Delete only the object with this uid: a same-named object created after ours (a replacement)
   * is kept. Defaults to `metadata.uid` when `ref` is an object read from the API.
   */
  readonly uid?: string;
  /**
   * Delete only if the object is unchanged since this resourceVersion was read. Stricter than uid
   * (any update, even of status, fails the delete), so never defaulted.
   */
  readonly resourceVersion?: string;
  /** What happens to dependents. Default `Background`: the garbage collector deletes them after the owner. */
  readonly propagationPolicy?: 'Background' | 'Foreground' | 'Orphan';
  /** Run validation and admission on the server without deleting. Default `false`. */
  readonly dryRun?: boolean;
}

/**
 * What {@link deleteIfManaged} did:
 * - `deleted`: the API server accepted the delete (finalizers may still hold the object a while);
 * - `not-found`: nothing of that name exists; the goal is met;
 * - `precondition-failed`: the object is not the one we meant (other uid, or changed since
 *   `resourceVersion`); it was left alone — re-read before deciding again;
 * - `not-managed`: `ref` was an object without our managed-by label; no request was made.
 */
export type DeleteOutcome = 'deleted' | 'not-found' | 'precondition-failed' | 'not-managed';

/**
 * Deletes an object only if it is still the one the caller decided to delete, using the API
 * server's delete preconditions so the check and the delete are one atomic step.
 *
 * `ref` is either an object read from the API (then it must carry our managed-by label, and its
 * uid is the default precondition) or a bare {@link ObjectRef}, which requires `uid` and/or
 * `resourceVersion` in `options`: an unconditional delete is exactly what this helper exists to avoid.
 *
 * @throws for any other API error, and when a bare ref comes without preconditions.
 */
export async function deleteIfManaged(target: ApplyTarget, ref: ObjectRef | KubernetesObject, options: DeleteIfManagedOptions = {}): Promise<DeleteOutcome> {
  let spec: KubernetesObject;
  let uid = options.uid;
  if (isStoredObject(ref)) {
    if (!isManagedByUs(ref)) return 'not-managed';
    uid ??= ref.metadata?.uid;
    spec = { apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.metadata?.name, namespace: ref.metadata?.namespace } };
  } else {
    spec = { apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } };
  }
  const { resourceVersion, propagationPolicy = 'Background', dryRun = false } = options;
  if (uid === undefined && resourceVersion === undefined) {
    throw new Error(`deleteIfManaged(${describeRef(spec)}) needs a uid or resourceVersion precondition`);
  }
  const body: V1DeleteOptions = { preconditions: { uid, resourceVersion }, propagationPolicy };
  try {
    await objectApiFor(target).delete(
      spec,
      undefined, // pretty
      dryRun ? DRY_RUN_ALL : undefined,
      undefined, // gracePeriodSeconds: the object's own default
      undefined, // orphanDependents: deprecated, propagationPolicy says it
      undefined, // propagationPolicy: sent in the body with the preconditions
      body,
    );
    return 'deleted';
  } catch (err) {
    if (isNotFound(err)) return 'not-found';
    // A failed precondition is answered with 409 Conflict.
    if (isConflict(err)) return 'precondition-failed';
    throw err;
  }
}

function isStoredObject(ref: ObjectRef | KubernetesObject): ref is KubernetesObject {
  return 'metadata' in ref && ref.metadata !== undefined;
}

function describeRef(obj: OwnerLike & { readonly metadata?: { readonly namespace?: string } }): string {
  const namespace = obj.metadata?.namespace ? `${obj.metadata.namespace}/` : '';
  return `${obj.apiVersion ?? '?'} ${obj.kind ?? '?'} ${namespace}${obj.metadata?.name ?? '?'}`;
}
