/**
 * Writes an object's status through its `/status` subresource, and only when it changed.
 *
 * How: server-side apply of `{metadata: {name, namespace, uid}, status}` to `/status` under the
 * capability's field manager, forced. Chosen over a guarded update (GET-modify-PUT with the
 * resourceVersion) because
 * - a spec edit between our read and our write does not fail the write: status and spec have
 *   separate owners, and apply needs no resourceVersion, so there is no 409 retry loop on busy
 *   objects;
 * - fields we stop setting disappear (a condition type we no longer report), while fields another
 *   manager owns (a second controller's condition, with `x-kubernetes-list-type: map` keyed by
 *   `type`) stay — a PUT would overwrite them.
 *
 * The apply carries the resourceVersion the caller read: a status computed from an object that
 * has changed since (a spec edit, or deleted and recreated under the same name) is refused with
 * 409 instead of landing on the newer object. The change that caused it is on its way to the
 * caller's informer, which enqueues the object again; callers treat the 409 as "requeue". (The
 * uid alone is no guard here: the status subresource takes metadata from the stored object, so a
 * uid in the body is ignored.)
 *
 * "Only when changed": the desired status is compared with the status of the object the caller
 * read (normally from the informer cache) and with what this writer last wrote for that uid, so a
 * reconcile that runs before our own write reached the cache does not write again. An unchanged
 * status costs no request — which, together with {@link generationChanged} on the informer's update
 * events, keeps our own status writes from re-enqueueing the object in a loop.
 */
import type { FieldManager } from './labels.ts';
import { apiVersionOf, type KubeObject, objectPath, type ResourceType } from './resources.ts';
import type { KubeRequester, WriteOptions } from './writes.ts';

export interface StatusWriterOptions {
  readonly client: KubeRequester;
  readonly type: ResourceType;
  /** The capability's field manager; status fields are owned under it. */
  readonly fieldManager: FieldManager;
  /** Objects whose last write is remembered (to skip rewrites while the cache lags). Default 10,000. */
  readonly rememberedObjects?: number;
}

/** An object as the caller read it, with the status it carries now. */
export type WithStatus<S> = KubeObject & { status?: S };

export type StatusWriteResult<T> =
  /** Desired equals what the object has (or what we wrote and the cache has not seen yet): no request. */
  | { readonly written: false }
  | { readonly written: true; readonly object: T };

const DEFAULT_REMEMBERED = 10_000;

export class StatusWriter<S> {
  private readonly client: KubeRequester;
  private readonly type: ResourceType;
  private readonly fieldManager: FieldManager;
  private readonly capacity: number;
  /** Last status written per object uid, with the resourceVersion the server answered. */
  private readonly lastWritten = new Map<string, { readonly statusJson: string; readonly resourceVersion: string }>();

  constructor(options: StatusWriterOptions) {
    this.client = options.client;
    this.type = options.type;
    this.fieldManager = options.fieldManager;
    this.capacity = options.rememberedObjects ?? DEFAULT_REMEMBERED;
  }

  /**
   * Writes `status` for `current` (name, namespace, uid, resourceVersion and the status it has
   * now, as read) unless it is already there. Throws the API server's error for the caller's
   * queue: 404 when the object is gone, 409 when it changed since it was read.
   */
  async write<T extends WithStatus<S>>(current: T, status: S, options: Pick<WriteOptions, 'signal' | 'dryRun'> = {}): Promise<StatusWriteResult<T>> {
    const meta = current.metadata ?? {};
    const uid = meta.uid;
    if (!meta.name || !uid) throw new Error('status write needs the object\'s name and uid');
    const statusJson = canonicalJson(status);
    if (current.status !== undefined && canonicalJson(current.status) === statusJson) return { written: false };
    const last = this.lastWritten.get(uid);
    if (last && last.statusJson === statusJson && !isNewerResourceVersion(meta.resourceVersion, last.resourceVersion)) return { written: false };

    const object = await this.client.json<T>(`${objectPath(this.type, meta.name, meta.namespace)}/status`, {
      method: 'PATCH',
      query: { fieldManager: this.fieldManager, force: true, dryRun: options.dryRun ? 'All' : undefined },
      contentType: 'application/apply-patch+yaml',
      body: {
        apiVersion: apiVersionOf(this.type),
        kind: this.type.kind,
        metadata: {
          name: meta.name,
          ...(meta.namespace ? { namespace: meta.namespace } : {}),
          uid,
          ...(meta.resourceVersion ? { resourceVersion: meta.resourceVersion } : {}),
        },
        status,
      },
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (!options.dryRun) {
      if (this.lastWritten.size >= this.capacity) this.lastWritten.clear();
      this.lastWritten.set(uid, { statusJson, resourceVersion: object.metadata?.resourceVersion ?? '' });
    }
    return { written: true, object };
  }

  /** Drops what was remembered for a deleted object. */
  forget(uid: string): void {
    this.lastWritten.delete(uid);
  }
}

/**
 * Whether resourceVersion `a` is newer than `b`. Kubernetes calls them opaque, but an API server
 * backed by etcd hands out its revisions; when either is not an integer the answer is true, which
 * costs at most a redundant (no-op) write.
 */
export function isNewerResourceVersion(a: string | undefined, b: string): boolean {
  if (!a || !/^\d+$/.test(a) || !/^\d+$/.test(b)) return true;
  return BigInt(a) > BigInt(b);
}

/** JSON with object keys sorted and undefined members dropped: equal values, equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (!v || typeof v !== 'object' || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const key of Object.keys(v).sort()) sorted[key] = (v as Record<string, unknown>)[key];
    return sorted;
  });
}

/**
 * Informer update predicate (controller-runtime's GenerationChangedPredicate): true when the spec
 * changed — `metadata.generation` moved — or the object started being deleted. Status writes, our
 * own included, do not bump the generation of an object with a status subresource, so a
 * controller that enqueues only on this does not wake itself up by writing status.
 * Objects without a generation (most built-ins' metadata-only copies) always count as changed.
 */
export function generationChanged(old: KubeObject, current: KubeObject): boolean {
  const before = old.metadata?.generation;
  const after = current.metadata?.generation;
  if (before === undefined || after === undefined) return true;
  if (!old.metadata?.deletionTimestamp && current.metadata?.deletionTimestamp) return true;
  return before !== after;
}
