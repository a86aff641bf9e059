/**
 * The logaccess controller: every opted-in workload gets a Role that allows `pods/log` on
 * exactly its current pods (and, optionally, a ServiceAccount and RoleBinding of the same name),
 * kept in sync as pods come and go. Replaces podlogreader without its permission widenings.
 *
 * Reads top to bottom in call order: registerLogAccess (the caches it asks the manager for) →
 * LogAccessController → reconcile → ensureRole / ensureDependent / removeAll → eventHandlers
 * (how changes become work).
 *
 * Work arrives as workload keys (`Kind/namespace/name`); the reconciler reads only the informer
 * caches and writes only when the cached object differs from the desired one, so a settled
 * cluster costs no API calls and a pod change costs at most one write. It is built from its
 * caches and a writer, so its unit tests (controller.test.ts) preload caches, run one reconcile
 * and assert the writes, as kubernetes/sample-controller's do.
 */
import { Gauge, Counter, type Registry } from 'prom-client';
import { INDEX_OWNER, type StoreHandler } from '../kube/runtime/cache.ts';
import { done, type Outcome, requeueAfter } from '../kube/runtime/controller.ts';
import type { EventRecorder } from '../kube/objects/events.ts';
import type { InformerView } from '../kube/runtime/informer.ts';
import { FIELD_MANAGERS, isManagedByUs, LEGACY_FIELD_MANAGER, MANAGED_SELECTOR } from '../kube/objects/labels.ts';
import { silentLogger, type Logger } from '../kube/logger-type.ts';
import type { CacheTransform, Manager } from '../kube/runtime/manager.ts';
import { controllerRef, isControlledBy } from '../kube/objects/owners.ts';
import { Interner, StringInterner } from '../kube/runtime/intern.ts';
import { type KubeObject, metadataOnly, type ObjectMeta, type OwnerReference, type ResourceType, Resources } from '../kube/objects/resources.ts';
import type { ObjectWriter } from '../kube/objects/writer.ts';
import { hasFieldManager, keepFieldManagers } from '../kube/objects/writes.ts';
import {
  desiredRole,
  desiredRoleBinding,
  desiredServiceAccount,
  formatKey,
  isOptedIn,
  isPodlogreaders,
  LABEL_WORKLOAD_KIND,
  type LogAccessOptions,
  matchesDesired,
  OPT_IN_ALIAS_LABEL,
  OPT_IN_ALIAS_VALUE,
  OPT_IN_LABEL,
  OPT_IN_VALUE,
  parseKey,
  PODLOGREADER_PREFIX,
  templateLabelsOnly,
  type WorkloadKey,
  type WorkloadKind,
  WORKLOAD_KINDS,
  workloadOfObject,
  workloadOfPod,
} from './desired.ts';

export { OPT_IN_ALIAS_LABEL, OPT_IN_LABEL, type LogAccessOptions } from './desired.ts';

export const CONTROLLER_NAME = 'logaccess';
/**
 * How often a workload whose Role name is taken by someone else's Role is looked at again: that
 * Role is not in our (label-filtered) cache, so no event tells us when it goes away.
 */
const NAME_TAKEN_RECHECK_MS = 5 * 60_000;
/** Bound of the remembered bare-pod uids; past it the set starts over (a repeated log line at worst). */
const IGNORED_PODS_REMEMBERED = 10_000;
/** Retry delay when the API has an object of ours that our cache has not seen yet. */
const CACHE_LAG_RETRY_MS = 1_000;

const WORKLOAD_TYPES: Readonly<Record<WorkloadKind, ResourceType>> = {
  Deployment: Resources.deployments,
  StatefulSet: Resources.statefulSets,
  DaemonSet: Resources.daemonSets,
  Job: Resources.jobs,
  CronJob: Resources.cronJobs,
  ReplicaSet: Resources.replicaSets,
};

/** The caches logaccess reads; shared with any other capability that asks for the same objects. */
export interface LogAccessInformers {
  /**
   * Pods carrying one of the two opt-in labels; one label-filtered informer per label because a
   * label selector cannot express "A or B". Only these pods ever appear in a Role.
   */
  readonly pods: readonly InformerView[];
  readonly workloads: Readonly<Record<WorkloadKind, InformerView>>;
  /** Only the objects we manage (label-filtered): someone else's Role is never in here. */
  readonly roles: InformerView;
  readonly serviceAccounts: InformerView;
  readonly roleBindings: InformerView;
}

/** What {@link LogAccessController} works with. */
export interface LogAccessDeps {
  readonly informers: LogAccessInformers;
  /** Writes as {@link FIELD_MANAGERS.logaccess}. */
  readonly writer: ObjectWriter;
  readonly recorder: Pick<EventRecorder, 'event'>;
  readonly options: LogAccessOptions;
  readonly logger?: Logger;
  /** Registry for `crowsnest_logaccess_*`. Default: the metrics are kept but not exported. */
  readonly registry?: Registry;
}

/**
 * Registers logaccess with the manager: its caches, its controller (run only while this replica
 * leads) and the handlers that feed it.
 */
export function registerLogAccess(manager: Manager, options: LogAccessOptions): void {
  const logger = manager.logger.child?.({ controller: CONTROLLER_NAME }) ?? manager.logger;
  const logAccess = new LogAccessController({
    informers: logAccessInformers(manager),
    writer: manager.writer(FIELD_MANAGERS.logaccess),
    recorder: manager.recorder,
    options,
    logger,
    registry: manager.registry,
  });
  const controller = manager.addController({ name: CONTROLLER_NAME, reconcile: (key) => logAccess.reconcile(key) });
  for (const [informer, handler] of logAccess.eventHandlers((key) => controller.enqueue(key))) controller.watch(informer, handler);
}

/** Shared copies of namespaces and of each ReplicaSet's (Job's, …) owner reference among cached pods. */
const namespaces = new StringInterner();
const ownerReferences = new Interner<readonly OwnerReference[]>();

/**
 * Pods are cached as their identity and controller reference only (asked of the server as
 * metadata, so their specs never arrive): that is all a Role needs, and full pods would be most
 * of the operator's memory at scale. A pod's labels are not kept either: the informers are
 * label-filtered, and the owner chain, not labels, decides whose pod it is. The namespace and
 * the owner reference are shared with every other pod that has the same (see intern.ts).
 */
export const POD_OWNERS: CacheTransform = {
  name: 'pod-owners',
  apply: (pod) => {
    const m = pod.metadata ?? {};
    const owner = controllerRef(pod);
    const metadata: ObjectMeta = { name: m.name, namespace: namespaces.intern(m.namespace), uid: m.uid, resourceVersion: m.resourceVersion };
    if (owner) {
      metadata.ownerReferences = ownerReferences.get(`${owner.uid}/${owner.kind}/${owner.name}`, () => [
        { apiVersion: owner.apiVersion, kind: owner.kind, name: owner.name, uid: owner.uid, controller: true },
      ]) as OwnerReference[];
    }
    if (m.deletionTimestamp) metadata.deletionTimestamp = m.deletionTimestamp;
    return { apiVersion: pod.apiVersion, kind: pod.kind, metadata };
  },
};

/** Workloads keep their metadata plus the pod template labels that decide opt-in. */
export const WORKLOAD_TEMPLATE_LABELS: Readonly<Record<WorkloadKind, CacheTransform>> = Object.fromEntries(
  WORKLOAD_KINDS.map((kind) => [kind, { name: `template-labels-${kind.toLowerCase()}`, apply: (obj: KubeObject) => metadataOnly(obj, (o) => templateLabelsOnly(kind, o)) }]),
) as Record<WorkloadKind, CacheTransform>;

/** Our own objects keep the names of their field managers, so the one-time move from the legacy manager is decided from the cache. */
const FIELD_MANAGER_NAMES: CacheTransform = { name: 'field-managers', apply: keepFieldManagers };

/** Asks the manager for every cache logaccess reads. */
export function logAccessInformers(manager: Pick<Manager, 'informer'>): LogAccessInformers {
  const ours = `${MANAGED_SELECTOR},${LABEL_WORKLOAD_KIND}`;
  return {
    pods: [
      manager.informer({ type: Resources.pods, labelSelector: `${OPT_IN_LABEL}=${OPT_IN_VALUE}`, metadataOnly: true, transform: POD_OWNERS }),
      manager.informer({ type: Resources.pods, labelSelector: `${OPT_IN_ALIAS_LABEL}=${OPT_IN_ALIAS_VALUE}`, metadataOnly: true, transform: POD_OWNERS }),
    ],
    workloads: Object.fromEntries(
      (Object.entries(WORKLOAD_TYPES) as Array<[WorkloadKind, ResourceType]>).map(([kind, type]) => [kind, manager.informer({ type, transform: WORKLOAD_TEMPLATE_LABELS[kind] })]),
    ) as Record<WorkloadKind, InformerView>,
    roles: manager.informer({ type: Resources.roles, labelSelector: ours, transform: FIELD_MANAGER_NAMES }),
    serviceAccounts: manager.informer({ type: Resources.serviceAccounts, labelSelector: ours, transform: FIELD_MANAGER_NAMES }),
    roleBindings: manager.informer({ type: Resources.roleBindings, labelSelector: ours, transform: FIELD_MANAGER_NAMES }),
  };
}

type Workload = KubeObject & { apiVersion: string; kind: WorkloadKind };

export class LogAccessController {
  private readonly informers: LogAccessInformers;
  private readonly writer: ObjectWriter;
  private readonly recorder: Pick<EventRecorder, 'event'>;
  private readonly logger: Logger;
  private readonly options: LogAccessOptions;
  private readonly metrics: LogAccessMetrics;
  /**
   * What we last wrote per object (`resource/namespace/name`), so that a reconcile running
   * before our own write reached the cache neither writes the same content again nor takes the
   * object for someone else's.
   */
  private readonly written = new Map<string, WrittenObject>();
  /** Uids of bare opted-in pods already reported, so the log says it once. */
  private readonly ignoredPods = new Set<string>();

  constructor(deps: LogAccessDeps) {
    this.informers = deps.informers;
    this.writer = deps.writer;
    this.recorder = deps.recorder;
    this.logger = deps.logger ?? silentLogger;
    this.options = deps.options;
    this.metrics = logAccessMetrics(deps.registry, deps.informers.roles);
  }

  /**
   * Reconciles one workload: the Role (and SA/RoleBinding) exist and are exact while it is opted
   * in, and are gone otherwise. Errors are thrown so the queue retries with backoff; the Role on
   * the server stays as it was, never wider.
   */
  async reconcile(keyText: string): Promise<Outcome> {
    const key = parseKey(keyText);
    const workload = this.informers.workloads[key.kind].store.getByName(key.namespace, key.name) as Workload | undefined;
    const name = this.options.namePrefix + key.name;
    // A ReplicaSet under a Deployment or a Job under a CronJob is part of that workload, not one of its own.
    const standsFor = workload && workloadOfObject(key.kind, workload);
    if (!workload || standsFor?.kind !== key.kind || !isOptedIn(key.kind, workload)) {
      await this.removeAll(key, name);
      return done;
    }
    const roleOutcome = await this.ensureRole(workload, name);
    if (this.options.createServiceAccountAndRoleBinding) {
      await this.ensureDependent(workload, Resources.serviceAccounts, this.informers.serviceAccounts, desiredServiceAccount(workload, this.options), 'ServiceAccountExists');
      await this.ensureDependent(workload, Resources.roleBindings, this.informers.roleBindings, desiredRoleBinding(workload, this.options), 'RoleBindingExists');
    } else {
      // Started once with --create-sa-and-rolebinding and now without: what we created goes.
      await this.removeManaged(key, name, [[Resources.roleBindings, this.informers.roleBindings], [Resources.serviceAccounts, this.informers.serviceAccounts]]);
    }
    return roleOutcome;
  }

  private async ensureRole(workload: Workload, name: string): Promise<Outcome> {
    const desired = desiredRole(workload, this.podNamesOf(workload), this.options);
    const cached = this.informers.roles.store.getByName(workload.metadata!.namespace, name);
    if (cached) return await this.updateIfChanged(workload, Resources.roles, cached, desired, 'RoleExists');
    return await this.createOrReport(workload, Resources.roles, desired, 'RoleExists');
  }

  /** ServiceAccount and RoleBinding: created once, kept matching, never someone else's. */
  private async ensureDependent(workload: Workload, type: ResourceType, informer: InformerView, desired: KubeObject, takenReason: string): Promise<void> {
    const cached = informer.store.getByName(workload.metadata!.namespace, desired.metadata!.name!);
    if (cached) await this.updateIfChanged(workload, type, cached, desired, takenReason);
    else await this.createOrReport(workload, type, desired, takenReason);
  }

  private async updateIfChanged(workload: Workload, type: ResourceType, cached: KubeObject, desired: KubeObject, takenReason: string): Promise<Outcome> {
    const owner = controllerRef(cached);
    if (owner?.uid !== workload.metadata!.uid) {
      if (owner?.kind === workload.kind && owner.name === workload.metadata!.name) {
        // Ours, for an earlier workload of this kind and name (deleted and recreated): remove
        // it; its delete event brings us back here to create the new one.
        await this.deleteManaged(type, cached);
        return done;
      }
      // Ours, but it serves another workload with the same name (a Deployment and a
      // StatefulSet both called "web"): the first one keeps it; taking turns would flap.
      return this.reportTaken(workload, type, desired, takenReason, owner ? `${owner.kind} ${owner.name}` : undefined);
    }
    const id = writtenId(type, desired);
    const last = this.written.get(id);
    const desiredJson = JSON.stringify(desired);
    if (last && last.desiredJson === desiredJson && isOlder(cached.metadata?.resourceVersion, last.resourceVersion)) return done;
    if (matchesDesired(cached, desired)) return done;
    await this.apply(type, desired, cached.metadata!.uid!, cached);
    return done;
  }

  /**
   * Server-side apply guarded by the object's uid: if the object was deleted and recreated by
   * someone else under the same name, the API server refuses the write instead of taking it over.
   *
   * An object written by a version that used the shared field manager `crowsnest` first has that
   * manager's fields handed to ours: otherwise a field we stop setting (a label, a rule) would stay,
   * still owned by the old name.
   */
  private async apply(type: ResourceType, desired: KubeObject, uid: string, cached?: KubeObject): Promise<void> {
    if (cached && hasFieldManager(cached, LEGACY_FIELD_MANAGER)) {
      await this.writer.migrateFieldManager(type, { namespace: desired.metadata!.namespace!, name: desired.metadata!.name!, uid }, LEGACY_FIELD_MANAGER);
    }
    const result = await this.writer.apply(type, { ...desired, metadata: { ...desired.metadata, uid } });
    this.metrics.writes.inc({ kind: type.kind, verb: 'apply' });
    this.remember(type, desired, result);
  }

  private remember(type: ResourceType, desired: KubeObject, result: KubeObject): void {
    this.written.set(writtenId(type, desired), { desiredJson: JSON.stringify(desired), resourceVersion: result.metadata?.resourceVersion ?? '', uid: result.metadata?.uid ?? '' });
  }

  private async createOrReport(workload: Workload, type: ResourceType, desired: KubeObject, takenReason: string): Promise<Outcome> {
    const last = this.written.get(writtenId(type, desired));
    if (last?.uid) {
      // We created it moments ago and our cache has not seen it yet.
      if (last.desiredJson !== JSON.stringify(desired)) await this.apply(type, desired, last.uid);
      return done;
    }
    // A failed read of the object holding the name throws (and is retried): one we could not
    // read must not be reported as someone else's.
    const result = await this.writer.createOrGet(type, desired);
    if (result.created) {
      this.remember(type, desired, result.object);
      this.metrics.writes.inc({ kind: type.kind, verb: 'create' });
      this.recorder.event(regardingOf(workload), 'Normal', `${type.kind}Created`, 'Create', `created ${type.kind} ${desired.metadata!.name} for log access to this ${workload.kind}'s pods`);
      return done;
    }
    // The name is taken. If it is ours, our cache is just behind: its event will bring us back.
    // Otherwise it belongs to someone else and stays exactly as it is.
    const existing = result.existing;
    const owner = controllerRef(existing);
    const oursForThisWorkload = isManagedByUs(existing) && existing.metadata?.labels?.[LABEL_WORKLOAD_KIND] && owner?.kind === workload.kind && owner.name === workload.metadata!.name;
    if (oursForThisWorkload) return requeueAfter(CACHE_LAG_RETRY_MS);
    if (this.options.adoptPodlogreader && workload.kind === 'Deployment' && desired.metadata!.name === PODLOGREADER_PREFIX + workload.metadata!.name && isPodlogreaders(existing, workload.metadata!.name!)) {
      return await this.adopt(workload, type, existing, desired);
    }
    const heldBy = isManagedByUs(existing) && owner ? `${owner.kind} ${owner.name}` : undefined;
    return this.reportTaken(workload, type, desired, takenReason, heldBy);
  }

  /**
   * Takes over what podlogreader made for this Deployment (see `isPodlogreaders`): one forced
   * apply guarded by its uid gives it our labels, owner and content. The object is updated in
   * place, never deleted and recreated, so a ServiceAccount keeps its uid and the tokens issued
   * to it keep working; a RoleBinding keeps binding it.
   */
  private async adopt(workload: Workload, type: ResourceType, existing: KubeObject, desired: KubeObject): Promise<Outcome> {
    const name = desired.metadata!.name!;
    await this.apply(type, desired, existing.metadata!.uid!);
    this.metrics.adoptions.inc({ kind: type.kind });
    const tokens = type === Resources.serviceAccounts ? ' (the same ServiceAccount: tokens issued to it keep working)' : '';
    this.recorder.event(regardingOf(workload), 'Normal', `${type.kind}Adopted`, 'Adopt', `adopted ${type.kind} ${name}, which podlogreader created: crowsnest keeps it from now on${tokens}`);
    this.logger.info({ workload: formatKey(keyOf(workload)), kind: type.kind, name }, 'adopted an object podlogreader created');
    return done;
  }

  /**
   * The name is taken by an object that is not this workload's: it stays exactly as it is, and
   * an Event on the workload says why it has no log access. `heldBy` names the other workload
   * when the object is ours but serves that one.
   */
  private reportTaken(workload: Workload, type: ResourceType, desired: KubeObject, reason: string, heldBy: string | undefined): Outcome {
    const name = desired.metadata!.name!;
    this.metrics.conflicts.inc({ kind: type.kind });
    const why = heldBy ? `is kept by crowsnest for ${heldBy} in this namespace` : 'exists and is not managed by crowsnest';
    this.recorder.event(regardingOf(workload), 'Warning', reason, 'Create', `${type.kind} ${name} ${why}; it is left unchanged (rename the workload or set --logaccess-name-prefix)`);
    this.logger.warn({ workload: formatKey(keyOf(workload)), kind: type.kind, name, heldBy }, 'name taken; leaving it alone');
    return type === Resources.roles ? requeueAfter(NAME_TAKEN_RECHECK_MS) : done;
  }

  /** Opt-out or workload gone: delete what we manage for it (the garbage collector may beat us). */
  private async removeAll(key: WorkloadKey, name: string): Promise<void> {
    const { roleBindings, roles, serviceAccounts } = this.informers;
    await this.removeManaged(key, name, [[Resources.roleBindings, roleBindings], [Resources.roles, roles], [Resources.serviceAccounts, serviceAccounts]]);
  }

  /** Deletes the named objects we manage for this workload from the given caches' types. */
  private async removeManaged(key: WorkloadKey, name: string, stores: ReadonlyArray<readonly [ResourceType, InformerView]>): Promise<void> {
    for (const [type, informer] of stores) {
      const cached = informer.store.getByName(key.namespace, name);
      const owner = cached && controllerRef(cached);
      if (cached && owner?.kind === key.kind && owner.name === key.name) await this.deleteManaged(type, cached);
    }
  }

  private async deleteManaged(type: ResourceType, cached: KubeObject): Promise<void> {
    this.written.delete(writtenId(type, cached));
    const deleted = await this.writer.delete(type, { namespace: cached.metadata!.namespace!, name: cached.metadata!.name!, uid: cached.metadata!.uid! });
    if (deleted) this.metrics.writes.inc({ kind: type.kind, verb: 'delete' });
  }

  /** Names of the workload's pods that carry an opt-in label, found by owner references. */
  private podNamesOf(workload: Workload): string[] {
    const uid = workload.metadata!.uid!;
    const intermediates = workload.kind === 'Deployment' ? this.ownedBy(this.informers.workloads.ReplicaSet, uid)
      : workload.kind === 'CronJob' ? this.ownedBy(this.informers.workloads.Job, uid)
        : [workload];
    const names = new Set<string>();
    for (const owner of intermediates) {
      for (const informer of this.informers.pods) {
        for (const pod of this.ownedBy(informer, owner.metadata!.uid!)) names.add(pod.metadata!.name!);
      }
    }
    return [...names];
  }

  /** Objects whose *controller* owner has this uid (the owner index also lists non-controller refs). */
  private ownedBy(informer: InformerView, ownerUid: string): KubeObject[] {
    return informer.store.byIndex(INDEX_OWNER, ownerUid).filter((o) => isControlledBy(o, ownerUid));
  }

  // --- event handlers: changes become workload keys -----------------------------------------------

  /**
   * The handler for each cache: every change becomes the key of the workload it concerns. The
   * manager attaches them while this replica leads, replaying what each cache holds, which is
   * how a new leader (or a restart) catches up with changes made while none ran.
   */
  eventHandlers(enqueue: (key: string) => void): Array<readonly [InformerView, StoreHandler<KubeObject>]> {
    const { workloads } = this.informers;
    const owners = {
      replicaSet: (ns: string, n: string) => workloads.ReplicaSet.store.getByName(ns, n),
      job: (ns: string, n: string) => workloads.Job.store.getByName(ns, n),
    };
    const enqueueWorkload = (key: WorkloadKey): void => enqueue(formatKey(key));
    const enqueueOwnerOf = (obj: KubeObject): void => {
      const owner = controllerRef(obj);
      const namespace = obj.metadata?.namespace;
      if (!owner || !namespace || !(owner.kind in WORKLOAD_TYPES)) return;
      enqueueWorkload({ kind: owner.kind as WorkloadKind, namespace, name: owner.name });
    };
    const handlers: Array<readonly [InformerView, StoreHandler<KubeObject>]> = [];

    const onPod = (pod: KubeObject): void => {
      const key = workloadOfPod(pod, owners);
      if (key) enqueueWorkload(key);
      else if (!controllerRef(pod)) this.noteIgnoredPod(pod);
    };
    for (const informer of this.informers.pods) {
      handlers.push([informer, { onAdd: onPod, onUpdate: (old, pod) => { onPod(old); onPod(pod); }, onDelete: onPod }]);
    }
    for (const [kind, informer] of Object.entries(workloads) as Array<[WorkloadKind, InformerView]>) {
      const onWorkload = (obj: KubeObject): void => {
        // A ReplicaSet or Job stands for its Deployment or CronJob (their pods hang off it), or
        // for itself when it has no controller. Every workload gets a key, opted in or not:
        // reconcile decides, and one that opted out must lose its Role.
        const workload = workloadOfObject(kind, obj);
        if (workload) enqueueWorkload(workload);
      };
      handlers.push([informer, { onAdd: onWorkload, onUpdate: (_old, obj) => onWorkload(obj), onDelete: onWorkload }]);
    }
    // Our own objects: a change by someone else (or a delete) is reverted by the next reconcile.
    const managed: Array<[ResourceType, InformerView]> = [[Resources.roles, this.informers.roles], [Resources.serviceAccounts, this.informers.serviceAccounts], [Resources.roleBindings, this.informers.roleBindings]];
    for (const [type, informer] of managed) {
      handlers.push([informer, {
        onAdd: enqueueOwnerOf,
        onUpdate: (_old, o) => enqueueOwnerOf(o),
        onDelete: (o) => {
          // Whatever we wrote is gone: the next reconcile must not take it for cache lag.
          const last = this.written.get(writtenId(type, o));
          if (last && (!last.uid || last.uid === o.metadata?.uid)) this.written.delete(writtenId(type, o));
          enqueueOwnerOf(o);
        },
      }]);
    }
    return handlers;
  }

  /** Says once per pod (not on every status update) that an opted-in bare pod gets no Role. */
  private noteIgnoredPod(pod: KubeObject): void {
    const uid = pod.metadata?.uid;
    if (!uid || this.ignoredPods.has(uid)) return;
    if (this.ignoredPods.size >= IGNORED_PODS_REMEMBERED) this.ignoredPods.clear();
    this.ignoredPods.add(uid);
    this.logger.info({ pod: `${pod.metadata?.namespace}/${pod.metadata?.name}` }, 'opted-in pod has no controller (Deployment, StatefulSet, DaemonSet, Job, ReplicaSet); no Role for it');
  }
}

interface WrittenObject {
  readonly desiredJson: string;
  readonly resourceVersion: string;
  readonly uid: string;
}

function writtenId(type: ResourceType, obj: KubeObject): string {
  return `${type.resource}/${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

/**
 * Whether resourceVersion `a` is older than `b`. Kubernetes calls them opaque, but every
 * apiserver backed by etcd hands out its revisions; if either is not an integer we answer
 * false, which only costs a redundant (no-op) write.
 */
function isOlder(a: string | undefined, b: string): boolean {
  if (!a || !/^\d+$/.test(a) || !/^\d+$/.test(b)) return false;
  return BigInt(a) < BigInt(b);
}

function keyOf(workload: Workload): WorkloadKey {
  return { kind: workload.kind, namespace: workload.metadata!.namespace!, name: workload.metadata!.name! };
}

function regardingOf(workload: Workload): { apiVersion: string; kind: string; namespace: string; name: string; uid: string } {
  return { apiVersion: workload.apiVersion, kind: workload.kind, namespace: workload.metadata!.namespace!, name: workload.metadata!.name!, uid: workload.metadata!.uid! };
}

interface LogAccessMetrics {
  readonly managedRoles: Gauge;
  readonly writes: Counter<'kind' | 'verb'>;
  readonly conflicts: Counter<'kind'>;
  readonly adoptions: Counter<'kind'>;
}

const metricsByRegistry = new WeakMap<Registry, LogAccessMetrics>();

/** The metrics of the controller on `registry` (none: kept but not exported); the Role count is read from `roles` at scrape time. */
function logAccessMetrics(registry: Registry | undefined, roles: InformerView): LogAccessMetrics {
  let metrics = registry && metricsByRegistry.get(registry);
  if (!metrics) {
    const registers = registry ? [registry] : [];
    metrics = {
      managedRoles: new Gauge({
        name: 'crowsnest_logaccess_managed_roles', help: 'Roles the logaccess controller manages (in its cache).', registers,
        collect() {
          this.set(roles.store.size);
        },
      }),
      writes: new Counter({ name: 'crowsnest_logaccess_writes_total', help: 'API writes by the logaccess controller, by object kind and verb.', labelNames: ['kind', 'verb'], registers }),
      conflicts: new Counter({ name: 'crowsnest_logaccess_name_conflicts_total', help: 'Objects not created because their name belongs to an object crowsnest does not manage.', labelNames: ['kind'], registers }),
      adoptions: new Counter({ name: 'crowsnest_logaccess_adoptions_total', help: 'Objects podlogreader created that the logaccess controller took over.', labelNames: ['kind'], registers }),
    };
    if (registry) metricsByRegistry.set(registry, metrics);
  }
  return metrics;
}
