/**
 * An {@link ObjectWriter} for controller unit tests, after client-go's fake clientset: it keeps
 * the objects "on the server" in memory with the API server's answers for the cases controllers
 * rely on (409 AlreadyExists on create, uid preconditions on apply and delete, resourceVersions
 * that grow), and records every call as an action a test asserts.
 */
import { KubeApiError } from '../client/client.ts';
import { FIELD_MANAGERS, type FieldManager } from './labels.ts';
import { type KubeObject, objectPath, type ResourceType } from './resources.ts';
import type { ObjectRef, ObjectWriter, WriteCallOptions } from './writer.ts';
import type { CreateOrGetResult, ManagedFieldsEntry } from './writes.ts';

export type WriteVerb = 'create' | 'get' | 'apply' | 'delete' | 'migrate' | 'addFinalizer' | 'removeFinalizer';

/** One call, as a test asserts it: `apply roles ns/podlogreader-web`. */
export interface WriteAction {
  readonly verb: WriteVerb;
  /** Plural resource name, e.g. `roles`. */
  readonly resource: string;
  readonly namespace: string | undefined;
  readonly name: string;
  /** What was sent (create, apply), as sent. */
  readonly object?: KubeObject;
  readonly dryRun?: boolean;
}

export interface FakeWriterOptions {
  /** Default {@link FIELD_MANAGERS.operator}. */
  readonly fieldManager?: FieldManager;
  /** Objects that exist before the test starts (each needs metadata.name; a uid is made up if absent). */
  readonly objects?: ReadonlyArray<readonly [ResourceType, KubeObject]>;
}

export class FakeWriter implements ObjectWriter {
  readonly fieldManager: FieldManager;
  /** Every call, in order. */
  readonly actions: WriteAction[] = [];
  private readonly objects = new Map<string, KubeObject>();
  private readonly failures = new Map<WriteVerb, unknown[]>();
  private resourceVersion = 1000;
  private uids = 0;

  constructor(options: FakeWriterOptions = {}) {
    this.fieldManager = options.fieldManager ?? FIELD_MANAGERS.operator;
    for (const [type, obj] of options.objects ?? []) this.store(type, obj);
  }

  /** Makes the next call of `verb` throw `error` (each call to this queues one failure). */
  failNext(verb: WriteVerb, error: unknown): void {
    const queue = this.failures.get(verb) ?? [];
    queue.push(error);
    this.failures.set(verb, queue);
  }

  /** The object as the fake server holds it now. */
  get(type: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.objects.get(id(type, namespace, name));
  }

  /** `verb resource namespace/name` per action: compact for deepEqual. */
  summary(): string[] {
    return this.actions.map((a) => `${a.verb} ${a.resource} ${a.namespace ? `${a.namespace}/` : ''}${a.name}`);
  }

  async create<T extends KubeObject>(type: ResourceType, obj: T, options: WriteCallOptions = {}): Promise<T> {
    this.record('create', type, obj.metadata?.namespace, obj.metadata?.name ?? '', options, obj);
    if (this.get(type, obj.metadata?.namespace, obj.metadata!.name!)) throw apiError('POST', type, obj, 409, 'AlreadyExists', `${type.resource} "${obj.metadata?.name}" already exists`);
    return (options.dryRun ? structuredClone(obj) : this.store(type, obj)) as T;
  }

  async createOrGet<T extends KubeObject>(type: ResourceType, obj: T, options: WriteCallOptions = {}): Promise<CreateOrGetResult<T>> {
    try {
      return { created: true, object: await this.create(type, obj, options) };
    } catch (err) {
      if (!(err instanceof KubeApiError) || err.reason !== 'AlreadyExists') throw err;
    }
    this.record('get', type, obj.metadata?.namespace, obj.metadata!.name!, options);
    const existing = this.get(type, obj.metadata?.namespace, obj.metadata!.name!);
    if (!existing) throw apiError('GET', type, obj, 404, 'NotFound', 'not found');
    return { created: false, existing: structuredClone(existing) };
  }

  async apply<T extends KubeObject>(type: ResourceType, obj: T, options: WriteCallOptions = {}): Promise<T> {
    this.record('apply', type, obj.metadata?.namespace, obj.metadata!.name!, options, obj);
    const current = this.get(type, obj.metadata?.namespace, obj.metadata!.name!);
    const uid = obj.metadata?.uid;
    if (uid && current?.metadata?.uid !== uid) {
      throw apiError('PATCH', type, obj, 409, 'Conflict', `Precondition failed: UID in precondition: ${uid}, UID in object meta: ${current?.metadata?.uid ?? ''}`);
    }
    const merged = { ...current, ...obj, metadata: { ...current?.metadata, ...obj.metadata } };
    return (options.dryRun ? merged : this.store(type, merged)) as T;
  }

  async delete(type: ResourceType, ref: ObjectRef, options: WriteCallOptions = {}): Promise<boolean> {
    this.record('delete', type, ref.namespace, ref.name, options);
    const current = this.get(type, ref.namespace, ref.name);
    if (!current || current.metadata?.uid !== ref.uid) return false;
    if (ref.resourceVersion && current.metadata?.resourceVersion !== ref.resourceVersion) return false;
    if (!options.dryRun) this.objects.delete(id(type, ref.namespace, ref.name));
    return true;
  }

  async migrateFieldManager(type: ResourceType, ref: { readonly namespace?: string; readonly name: string; readonly uid?: string }, from: string, options: WriteCallOptions = {}): Promise<boolean> {
    this.record('migrate', type, ref.namespace, ref.name, options);
    const current = this.get(type, ref.namespace, ref.name);
    const entries = (current?.metadata?.managedFields ?? []) as ManagedFieldsEntry[];
    if (!current || (ref.uid && current.metadata?.uid !== ref.uid) || !entries.some((e) => e.manager === from)) return false;
    if (!options.dryRun) current.metadata!.managedFields = entries.map((e) => (e.manager === from ? { ...e, manager: this.fieldManager, operation: 'Apply' } : e));
    return true;
  }

  async addFinalizer<T extends KubeObject>(type: ResourceType, obj: T, finalizer: string, options: WriteCallOptions = {}): Promise<T> {
    this.record('addFinalizer', type, obj.metadata?.namespace, obj.metadata!.name!, options);
    const current = this.get(type, obj.metadata?.namespace, obj.metadata!.name!);
    if (!current || current.metadata?.finalizers?.includes(finalizer) || current.metadata?.deletionTimestamp) return (current ?? obj) as T;
    return this.store(type, { ...current, metadata: { ...current.metadata, finalizers: [...(current.metadata?.finalizers ?? []), finalizer] } }) as T;
  }

  async removeFinalizer<T extends KubeObject>(type: ResourceType, obj: T, finalizer: string, options: WriteCallOptions = {}): Promise<T | undefined> {
    this.record('removeFinalizer', type, obj.metadata?.namespace, obj.metadata!.name!, options);
    const current = this.get(type, obj.metadata?.namespace, obj.metadata!.name!);
    if (!current) return undefined;
    return this.store(type, { ...current, metadata: { ...current.metadata, finalizers: (current.metadata?.finalizers ?? []).filter((f) => f !== finalizer) } }) as T;
  }

  private record(verb: WriteVerb, type: ResourceType, namespace: string | undefined, name: string, options: WriteCallOptions, object?: KubeObject): void {
    this.actions.push({ verb, resource: type.resource, namespace, name, ...(object ? { object: structuredClone(object) } : {}), ...(options.dryRun ? { dryRun: true } : {}) });
    const failure = this.failures.get(verb)?.shift();
    if (failure !== undefined) throw failure;
  }

  /** Stores a copy as the server would: a uid if it has none, the next resourceVersion. */
  private store(type: ResourceType, obj: KubeObject): KubeObject {
    const stored = structuredClone(obj);
    stored.metadata = { ...stored.metadata, uid: stored.metadata?.uid ?? `uid-${++this.uids}`, resourceVersion: String(++this.resourceVersion) };
    this.objects.set(id(type, stored.metadata.namespace, stored.metadata.name!), stored);
    return structuredClone(stored);
  }
}

function id(type: ResourceType, namespace: string | undefined, name: string): string {
  return `${type.resource}/${namespace ?? ''}/${name}`;
}

function apiError(method: string, type: ResourceType, obj: KubeObject, status: number, reason: string, message: string): KubeApiError {
  return new KubeApiError({
    method, path: objectPath(type, obj.metadata?.name ?? '', obj.metadata?.namespace), status,
    body: JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: status, reason, message }),
  });
}
