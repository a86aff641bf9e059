/**
 * Writes through {@link KubeClient} (pooled connections) for controllers that write often:
 * create-only, server-side apply with a resourceVersion precondition, and preconditioned delete.
 * Each returns what the API server answered or throws {@link KubeApiError}.
 */
import type { KubeClient } from './client.ts';
import { isConflict, isNotFound } from './errors.ts';
import { FIELD_MANAGER } from './labels.ts';
import { collectionPath, type KubeObject, objectPath, type ResourceType } from './resources.ts';

/**
 * Creates `obj`; fails with 409 AlreadyExists when an object of that name exists — which is how
 * a controller learns, without overwriting anything, that the name is taken by someone else.
 */
export async function createObject<T extends KubeObject>(client: KubeClient, type: ResourceType, obj: T): Promise<T> {
  return await client.json<T>(collectionPath(type, obj.metadata?.namespace), {
    method: 'POST',
    query: { fieldManager: FIELD_MANAGER },
    body: obj,
  });
}

/**
 * Server-side apply of `obj` as field manager `crowsnest`, forcing ownership of conflicting
 * fields. Only for objects we created: pass their `resourceVersion` as `metadata.resourceVersion`
 * so the apply fails (409) instead of taking over an object replaced under the same name.
 */
export async function serverSideApply<T extends KubeObject>(client: KubeClient, type: ResourceType, obj: T): Promise<T> {
  return await client.json<T>(objectPath(type, obj.metadata!.name!, obj.metadata?.namespace), {
    method: 'PATCH',
    query: { fieldManager: FIELD_MANAGER, force: true },
    contentType: 'application/apply-patch+yaml',
    body: obj,
  });
}

/**
 * Deletes an object only if it is still the one we saw (uid, and resourceVersion when given).
 * Returns false when it was already gone or had been replaced.
 */
export async function deleteObject(
  client: KubeClient,
  type: ResourceType,
  ref: { readonly namespace?: string; readonly name: string; readonly uid: string; readonly resourceVersion?: string },
): Promise<boolean> {
  try {
    await client.json(objectPath(type, ref.name, ref.namespace), {
      method: 'DELETE',
      body: {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        propagationPolicy: 'Background',
        preconditions: { uid: ref.uid, ...(ref.resourceVersion ? { resourceVersion: ref.resourceVersion } : {}) },
      },
    });
    return true;
  } catch (err) {
    // 409: a precondition (uid, resourceVersion) no longer holds.
    if (isNotFound(err) || isConflict(err)) return false;
    throw err;
  }
}
