/**
 * Owner references: who controls an object, and the reference a controller puts on what it
 * creates. Generic over every capability (the garbage collector and every built-in controller
 * follow the same rules), so they live in the runtime rather than in one capability.
 */
import type { KubeObject, OwnerReference } from './resources.ts';

/** The controller owner reference of an object (the one with `controller: true`), if it has one. */
export function controllerRef(obj: KubeObject): OwnerReference | undefined {
  return obj.metadata?.ownerReferences?.find((ref) => ref.controller === true);
}

/** Whether `obj`'s controller is the object with `ownerUid` (other, non-controller references do not count). */
export function isControlledBy(obj: KubeObject, ownerUid: string): boolean {
  return controllerRef(obj)?.uid === ownerUid;
}

/** An owner as a reference needs it: identity from its metadata, apiVersion and kind set. */
export interface OwnerObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata?: { readonly name?: string; readonly uid?: string };
}

/**
 * The controller reference to `owner` for an object we create. `blockOwnerDeletion` defaults to
 * false: the garbage collector removes our objects with their owner either way, and blocking the
 * owner's foreground deletion on them would need `update` on the owner's finalizers in RBAC.
 *
 * @throws Error when `owner` has no name or uid (an object not read from the API server).
 */
export function controllerReferenceTo(owner: OwnerObject, options: { readonly blockOwnerDeletion?: boolean } = {}): OwnerReference {
  const name = owner.metadata?.name;
  const uid = owner.metadata?.uid;
  if (!name || !uid) throw new Error(`an owner reference needs the owner's name and uid (got ${owner.kind} ${name ?? '<no name>'})`);
  return { apiVersion: owner.apiVersion, kind: owner.kind, name, uid, controller: true, blockOwnerDeletion: options.blockOwnerDeletion ?? false };
}
