/**
 * The NetworkProber controller (leader only): keeps each prober's status — conditions,
 * observedGeneration, injected pods, reachable and unreachable pairs — and records Events when
 * its health changes. Reads top to bottom in call order: the reconciler, then the handlers that
 * turn cache changes into keys.
 *
 * Work arrives as keys (`namespace/name`) from: prober changes of generation (spec edits; our own
 * status writes do not wake it), injected pod changes in the prober's namespace, a report that
 * changed some pair's state (peer-server.ts), and a requeue every {@link REFRESH_MS} while the
 * prober exists, because reports age out without any event.
 *
 * NEVER modify objects from the caches: they are shared, read-only state.
 */
import { Gauge, type Registry } from 'prom-client';
import type { StoreHandler } from '../kube/runtime/cache.ts';
import type { Clock } from '../kube/clock.ts';
import { findStatusCondition } from '../kube/objects/conditions.ts';
import { done, type Outcome, requeueAfter } from '../kube/runtime/controller.ts';
import { isNotFound, isConflict } from '../kube/client/errors.ts';
import type { EventRecorder } from '../kube/objects/events.ts';
import { generationChanged, type StatusWriter } from '../kube/objects/status.ts';
import { NetworkProberConditions, type NetworkProber, type NetworkProberStatus } from './api.ts';
import type { SlimPod } from './members.ts';
import { isMember } from './members.ts';
import type { PeerDirectory, ReachabilityReports } from './peers.ts';
import { REASONS, desiredStatus } from './status.ts';

/** How often a prober's status is recomputed without any event (reports come and age). */
export const REFRESH_MS = 10_000;
const DEFAULT_NEIGHBOURS = 10;

export interface ProberControllerDeps {
  readonly prober: (namespace: string, name: string) => NetworkProber | undefined;
  readonly podsIn: (namespace: string) => readonly SlimPod[];
  readonly directory: PeerDirectory;
  readonly reports: ReachabilityReports;
  readonly statusWriter: Pick<StatusWriter<NetworkProberStatus>, 'write' | 'forget'>;
  readonly recorder?: Pick<EventRecorder, 'event'>;
  readonly clock: Clock;
  readonly registry?: Registry;
}

export class ProberStatusReconciler {
  private readonly deps: ProberControllerDeps;
  private readonly metrics: ProberMetrics | undefined;
  /** key → uid of the prober last reconciled, so a deleted one's remembered status write is dropped. */
  private readonly uids = new Map<string, string>();

  constructor(deps: ProberControllerDeps) {
    this.deps = deps;
    this.metrics = deps.registry ? proberMetrics(deps.registry) : undefined;
  }

  /** Brings the status of the NetworkProber `namespace/name` up to date. */
  readonly reconcile = async (key: string, signal: AbortSignal): Promise<Outcome> => {
    const [namespace, name] = splitKey(key);
    const prober = this.deps.prober(namespace, name);
    if (!prober || prober.metadata?.deletionTimestamp) {
      this.forget(key, namespace, name);
      return done;
    }
    const pods = this.deps.podsIn(namespace);
    const members = pods.filter((pod) => isMember(prober, pod));
    const ring = this.deps.directory.ring(prober);
    const summary = this.deps.reports.summarize(key, ring, prober.spec.neighbours ?? DEFAULT_NEIGHBOURS, this.deps.clock.now());
    const status = desiredStatus(prober, members.length, summary, this.deps.clock);
    this.recordTransitions(prober, status);
    if (prober.metadata?.uid) this.uids.set(key, prober.metadata.uid);
    this.metrics?.injected.set({ namespace, networkprober: name }, members.length);
    this.metrics?.pairs.set({ namespace, networkprober: name, state: 'reachable' }, summary.reachable);
    this.metrics?.pairs.set({ namespace, networkprober: name, state: 'unreachable' }, summary.unreachable);
    try {
      await this.deps.statusWriter.write(prober, status, { signal });
    } catch (err) {
      // Gone or changed since the cache saw it: the informer's event brings the key back.
      if (isNotFound(err) || isConflict(err)) return requeueAfter(REFRESH_MS);
      throw err;
    }
    return requeueAfter(REFRESH_MS);
  };

  /** Events when Ready or Degraded change reason (the recorder folds repeats into series). */
  private recordTransitions(prober: NetworkProber, status: NetworkProberStatus): void {
    const recorder = this.deps.recorder;
    if (!recorder || !prober.metadata?.name) return;
    const regarding = { apiVersion: 'crowsnest.dev/v1alpha1', kind: 'NetworkProber', namespace: prober.metadata.namespace ?? '', name: prober.metadata.name, ...(prober.metadata.uid ? { uid: prober.metadata.uid } : {}) };
    for (const type of [NetworkProberConditions.ready, NetworkProberConditions.degraded]) {
      const before = findStatusCondition(prober.status?.conditions, type);
      const after = findStatusCondition(status.conditions, type);
      if (!after || before?.reason === after.reason) continue;
      const warning = after.reason === REASONS.pairsUnreachable || after.reason === REASONS.agentsNotReporting || (after.reason === REASONS.noAgents && before !== undefined);
      recorder.event(regarding, warning ? 'Warning' : 'Normal', after.reason, 'UpdateStatus', after.message);
    }
  }

  private forget(key: string, namespace: string, name: string): void {
    this.deps.directory.forget(namespace, name);
    this.deps.reports.forget(key);
    this.metrics?.injected.remove({ namespace, networkprober: name });
    this.metrics?.pairs.remove({ namespace, networkprober: name, state: 'reachable' });
    this.metrics?.pairs.remove({ namespace, networkprober: name, state: 'unreachable' });
    const uid = this.uids.get(key);
    this.uids.delete(key);
    if (uid) this.deps.statusWriter.forget(uid);
  }
}

// ---------------------------------------------------------------------------------------------
// Handlers: cache changes → keys. Quick, no API calls.

/** NetworkProber changes: created, spec edited (not our status writes), deleted. */
export function proberHandler(enqueue: (key: string) => void): StoreHandler<NetworkProber> {
  const key = (p: NetworkProber): string => `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`;
  return {
    onAdd: (p) => enqueue(key(p)),
    onUpdate: (old, current) => {
      if (generationChanged(old, current) || Boolean(old.metadata?.deletionTimestamp) !== Boolean(current.metadata?.deletionTimestamp)) enqueue(key(current));
    },
    onDelete: (p) => enqueue(key(p)),
  };
}

/** Pod changes are folded into one reconcile of their prober per this long (a rollout is hundreds of events). */
export const POD_CHANGE_BATCH_MS = 1_000;

/**
 * Injected pod changes: the prober that injected it is enqueued within {@link POD_CHANGE_BATCH_MS}
 * (the queue keeps one pending delay per key, so a burst costs one reconcile), and the
 * namespace's rings are rebuilt on their next use (`invalidate`).
 */
export function podHandler(enqueueAfter: (key: string, delayMs: number) => void, invalidate: (namespace: string) => void, proberOf: (pod: SlimPod) => string | undefined): StoreHandler<SlimPod> {
  const changed = (pod: SlimPod): void => {
    invalidate(pod.metadata.namespace);
    const prober = proberOf(pod);
    if (prober) enqueueAfter(`${pod.metadata.namespace}/${prober}`, POD_CHANGE_BATCH_MS);
  };
  return {
    onAdd: changed,
    onUpdate: (old, current) => {
      // What membership reads; a pod's status churns (conditions, container states) without touching it.
      const view = (p: SlimPod) => JSON.stringify([p.metadata.labels, p.metadata.annotations, p.metadata.deletionTimestamp, p.status.phase, p.status.podIP, p.spec.nodeName, p.spec.agentPort]);
      if (view(old) !== view(current)) changed(current);
    },
    onDelete: changed,
  };
}

function splitKey(key: string): [string, string] {
  const slash = key.indexOf('/');
  return [key.slice(0, slash), key.slice(slash + 1)];
}

interface ProberMetrics {
  readonly injected: Gauge<'namespace' | 'networkprober'>;
  readonly pairs: Gauge<'namespace' | 'networkprober' | 'state'>;
}

const metricsByRegistry = new WeakMap<Registry, ProberMetrics>();

function proberMetrics(registry: Registry): ProberMetrics {
  let metrics = metricsByRegistry.get(registry);
  if (!metrics) {
    metrics = {
      injected: new Gauge({ name: 'crowsnest_prober_injected_pods', help: 'Running pods with the agent, per NetworkProber.', labelNames: ['namespace', 'networkprober'], registers: [registry] }),
      pairs: new Gauge({ name: 'crowsnest_prober_pairs', help: 'Probed pairs of pods per NetworkProber, by the state their source last reported: reachable, unreachable.', labelNames: ['namespace', 'networkprober', 'state'], registers: [registry] }),
    };
    metricsByRegistry.set(registry, metrics);
  }
  return metrics;
}
