/**
 * The guard controller (leader only). Per GuardPolicy key (`namespace/name`) it:
 *
 * 1. feeds the detectors with the selected pods' status (crash loops, OOM kills) and with what the
 *    sidecars and log agents reported (signals.ts): failing health probes, error log lines,
 *    undeclared listening ports, and a group's rate anomalies;
 * 2. opens an incident per pod whose detector fired (one open incident per pod), and climbs the
 *    action ladder once for it — Event, Quarantine, Isolate, Preventive, Evict, as listed — each
 *    step checked against the rails (dryRun, cooldown, maxQuarantined, PodDisruptionBudgets) and
 *    recorded with its outcome in status, in an Event on the pod and the policy, and in metrics;
 * 3. releases or deletes quarantined pods whose ttl ended, and closes incidents whose pod is gone
 *    or healthy again;
 * 4. writes the status (conditions, counts, incidents with evidence and actions).
 *
 * Detection state lives in this process (the leader's memory); incidents are seeded back from the
 * policy's status when another replica takes over. Writes to pods are guarded JSON patches (uid and
 * resourceVersion tested) that touch only the labels, annotation and owner reference quarantine
 * decides on; NetworkPolicies are server-side applied as guard's field manager. Guard never writes
 * a workload's `replicas`.
 *
 * NEVER modify objects from the caches: they are shared, read-only state.
 */
import { createHash } from 'node:crypto';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { type ActionOutcome, type DetectorName, GuardPolicyApi, GuardPolicyConditions, type GuardAction, type GuardPolicy, type GuardPolicySpec, type GuardPolicyStatus, type Incident, MAX_STATUS_INCIDENTS } from './api.ts';
import { DecayingStats, judge } from './anomaly.ts';
import { QUARANTINE_LABEL, type QuarantineRecord } from './contract.ts';
import { type Finding, formatWindow, OomTracker, RestartTracker } from './detect.ts';
import { cooldownRail, type DisruptionBudget, type GroupSituation, heldRetryDelayMs, ladderSteps, quarantineRail, rolloutInProgress } from './ladder.ts';
import { controllerOf, type GuardPod, guardPod } from './pods.ts';
import { isolationPolicy, isolationPolicyName, type JsonPatchOperation, labelsToRemove, quarantinePatch, quarantineRecordOf, releasePatch } from './quarantine.ts';
import { type GuardSignals, undeclaredListeners } from './signals.ts';
import { addTaintPatch, decideTaint, GUARD_TAINT_FINALIZER, GUARD_TAINT_KEY, guardTaintOf, hasGuardTaint, type NodeLike, removeTaintPatch, stampTaintPatch, taintEndMs, taintValue } from './taint.ts';
import { durationMs } from '../kube/api/schema.ts';
import type { Clock } from '../kube/clock.ts';
import type { KubeClient } from '../kube/client/client.ts';
import { describeError, isConflict, isNotFound, isTooManyRequests, statusCode } from '../kube/client/errors.ts';
import { formatConditionTime, setStatusCondition } from '../kube/objects/conditions.ts';
import type { EventRecorder, EventType, RegardingObject } from '../kube/objects/events.ts';
import { isManagedByUs } from '../kube/objects/labels.ts';
import { type KubeObject, objectPath, Resources, type ResourceType } from '../kube/objects/resources.ts';
import { type LabelSelector, matchesLabelSelector } from '../kube/objects/selector.ts';
import { isNewerResourceVersion, type StatusWriter } from '../kube/objects/status.ts';
import type { ObjectWriter } from '../kube/objects/writer.ts';
import { type Logger, silentLogger } from '../kube/logger-type.ts';
import { done, type Outcome, requeueAfter } from '../kube/runtime/controller.ts';

/** A policy is looked at again this often without any event: windows slide and ttls end. */
export const RESYNC_MS = 15_000;
/** Group baselines take one sample per pod at most this often. */
const ANOMALY_SAMPLE_MS = 10_000;
/** The anomaly detector's deviation floor, in events per minute (see anomaly.ts zScore). */
const ANOMALY_MIN_STD_DEV = 0.5;
const MS_PER_MINUTE = 60_000;
/** Tries of a quarantine patch against a pod that keeps changing (its status). */
const QUARANTINE_ATTEMPTS = 3;
/** How a taken taint step's message starts (read back when a new leader seeds the cooldown). */
const TAINTED_PREFIX = 'tainted node ';
/** Tries of a taint patch against a node that keeps changing. */
const NODE_PATCH_ATTEMPTS = 3;

export interface PodDisruptionBudgetLike extends KubeObject {
  spec?: { selector?: LabelSelector };
  status?: { disruptionsAllowed?: number };
}

export interface GuardControllerDeps {
  readonly policy: (namespace: string, name: string) => GuardPolicy | undefined;
  readonly podsIn: (namespace: string) => readonly GuardPod[];
  readonly budgetsIn: (namespace: string) => readonly PodDisruptionBudgetLike[];
  /** The cluster's nodes (the Preventive step's taint); none when absent. */
  readonly nodes?: () => readonly NodeLike[];
  /** Pod patches, evictions, owner reads. */
  readonly api: Pick<KubeClient, 'json'>;
  /** NetworkPolicies, deletes (guard's field manager). */
  readonly writer: ObjectWriter;
  readonly statusWriter: Pick<StatusWriter<GuardPolicyStatus>, 'write' | 'forget'>;
  readonly signals: GuardSignals;
  readonly recorder?: Pick<EventRecorder, 'event'>;
  readonly clock: Clock;
  readonly registry?: Registry;
  readonly logger?: Logger;
}

interface PodTrack {
  readonly restarts: RestartTracker;
  readonly ooms: OomTracker;
  lastSampleMs: number;
}

interface PolicyState {
  readonly uid: string;
  readonly pods: Map<string, PodTrack>;
  incidents: Incident[];
  /** group → when a disruptive step last ran on it. */
  readonly lastDisruption: Map<string, number>;
  /** pod uid → when its last incident closed (the pod's own cooldown). */
  readonly closedAt: Map<string, number>;
  /** `group/signal` → the group's baseline. */
  readonly baselines: Map<string, DecayingStats>;
  /** pod uid → the resourceVersion our quarantine patch produced (the cache may not show it yet). */
  readonly patched: Map<string, string>;
  // A node taint's end is not kept here: it is its timeAdded (on the node) plus the ttl.
  /** incident id → its held steps (Evict, Preventive's restart) and when each is tried again. */
  readonly held: Map<string, Map<HeldStep, HeldRetry>>;
}

/** Steps that, held back by a rail or refused by the API server, are tried again while their incident is open. */
type HeldStep = 'Evict' | 'Preventive';

interface HeldRetry {
  /** Retries made so far. */
  tries: number;
  dueMs: number;
}

export const NETWORK_POLICIES: ResourceType = { group: 'networking.k8s.io', version: 'v1', resource: 'networkpolicies', kind: 'NetworkPolicy', namespaced: true };
export const POD_DISRUPTION_BUDGETS: ResourceType = { group: 'policy', version: 'v1', resource: 'poddisruptionbudgets', kind: 'PodDisruptionBudget', namespaced: true };

const DISRUPTIVE: ReadonlySet<GuardAction> = new Set(['Quarantine', 'Preventive', 'Evict']);
const OWNER_TYPES: Readonly<Record<string, ResourceType>> = {
  ReplicaSet: Resources.replicaSets, StatefulSet: Resources.statefulSets, DaemonSet: Resources.daemonSets, Job: Resources.jobs,
};

export class GuardController {
  private readonly deps: GuardControllerDeps;
  private readonly logger: Logger;
  private readonly metrics: GuardMetrics | undefined;
  private readonly states = new Map<string, PolicyState>();

  constructor(deps: GuardControllerDeps) {
    this.deps = deps;
    this.logger = deps.logger ?? silentLogger;
    this.metrics = deps.registry ? guardMetrics(deps.registry) : undefined;
  }

  readonly reconcile = async (key: string, signal: AbortSignal): Promise<Outcome> => {
    const [namespace, name] = splitKey(key);
    const stored = this.deps.policy(namespace, name);
    if (stored?.metadata?.deletionTimestamp && stored.metadata.finalizers?.includes(GUARD_TAINT_FINALIZER)) {
      // The taint is a cluster-scoped side effect no ownerReference cleans up: remove it, then let go.
      await this.untaintAll(stored, signal);
      await this.deps.writer.removeFinalizer(GuardPolicyApi.type, stored, GUARD_TAINT_FINALIZER, { signal });
    }
    if (!stored || stored.metadata?.deletionTimestamp || !stored.metadata?.uid) {
      this.forget(key, namespace, name);
      return done;
    }
    const validated = GuardPolicyApi.validate(stored);
    if (!validated.valid) {
      // The API server validated it; only an older CRD could let this through. Report, act on nothing.
      await this.writeStatus(stored, this.status(stored, [], 0, 0, 'InvalidSpec', validated.errors.map((e) => `${e.field}: ${e.message}`).join('; ')), signal);
      return requeueAfter(RESYNC_MS);
    }
    const policy = validated.value as GuardPolicy;
    const state = this.stateFor(key, policy);
    const now = this.deps.clock.now();
    const pods = this.deps.podsIn(namespace);
    const selected = pods.filter((p) => !p.metadata.deletionTimestamp && !(QUARANTINE_LABEL in (p.metadata.labels ?? {})) && matchesLabelSelector(policy.spec.targets.podSelector, p.metadata.labels));
    const quarantined = pods.filter((p) => QUARANTINE_LABEL in (p.metadata.labels ?? {}) && quarantineRecordOf(p)?.policy === name);

    for (const closed of this.closeFinished(policy, state, pods, selected, now)) await this.removeIsolation(namespace, closed, signal);
    for (const pod of selected) {
      const findings = this.detect(policy.spec, state, pod, selected, now);
      const open = state.incidents.find((i) => !i.closedAt && i.podUid === pod.metadata.uid);
      if (open || findings.length === 0) continue;
      const cooledAt = state.closedAt.get(pod.metadata.uid);
      if (cooledAt !== undefined && now - cooledAt < cooldownMs(policy.spec)) continue;
      const [detector, finding] = findings[0]!;
      await this.openIncident(policy, state, pod, detector, finding, selected, signal);
    }
    await this.resumeHeld(policy, state, selected, signal);
    const quarantineExpiry = await this.expireQuarantines(policy, state, quarantined, now, signal);
    const taintExpiry = await this.expireTaints(policy, now, signal);
    const nextExpiry = [quarantineExpiry, taintExpiry, this.nextHeldRetry(state)].reduce<number | undefined>((next, at) => (at === undefined ? next : Math.min(next ?? at, at)), undefined);

    for (const uid of state.pods.keys()) if (!selected.some((p) => p.metadata.uid === uid)) state.pods.delete(uid);
    const open = state.incidents.filter((i) => !i.closedAt).length;
    const stillQuarantined = pods.filter((p) => QUARANTINE_LABEL in (p.metadata.labels ?? {}) && quarantineRecordOf(p)?.policy === name).length;
    this.metrics?.openIncidents.set({ namespace, policy: name }, open);
    this.metrics?.quarantined.set({ namespace, policy: name }, stillQuarantined);
    await this.writeStatus(stored, this.status(policy, state.incidents, selected.length, stillQuarantined), signal);
    return requeueAfter(Math.max(1_000, Math.min(RESYNC_MS, nextExpiry === undefined ? RESYNC_MS : nextExpiry - now)));
  };

  // --- detection -----------------------------------------------------------------------------------

  private detect(spec: GuardPolicySpec, state: PolicyState, pod: GuardPod, selected: readonly GuardPod[], now: number): Array<[DetectorName, Finding]> {
    let track = state.pods.get(pod.metadata.uid);
    if (!track) {
      track = { restarts: new RestartTracker(), ooms: new OomTracker(), lastSampleMs: 0 };
      state.pods.set(pod.metadata.uid, track);
    }
    const d = spec.detectors;
    const findings: Array<[DetectorName, Finding]> = [];
    const crashWindow = durationMs(d.crashLoop?.window ?? '10m');
    track.restarts.observe(pod, now, Math.max(crashWindow, MS_PER_MINUTE));
    if (d.crashLoop) {
      const found = track.restarts.finding(pod, now, d.crashLoop.restarts ?? 3, crashWindow);
      if (found) findings.push(['crashLoop', found]);
    }
    if (d.oomKilled) {
      const window = durationMs(d.oomKilled.window ?? '30m');
      track.ooms.observe(pod, now, window);
      const found = track.ooms.finding(now, d.oomKilled.kills ?? 1, window);
      if (found) findings.push(['oomKilled', found]);
    }
    const reported = this.deps.signals.of(pod.metadata.uid);
    if (d.health && reported) {
      const window = durationMs(d.health.window ?? '2m');
      const failures = reported.healthFailures.count(now, window);
      const threshold = d.health.failures ?? 3;
      if (failures >= threshold) {
        findings.push(['health', { reason: 'HealthChecksFailing', evidence: [`${failures} failed health probes within ${formatWindow(window)} (threshold ${threshold})`, ...reported.healthFailures.recentSamples()] }]);
      }
    }
    if (d.errorLogs && reported) {
      const window = durationMs(d.errorLogs.window ?? '1m');
      const lines = reported.errorLines.count(now, window);
      const threshold = d.errorLogs.lines ?? 20;
      if (lines >= threshold) {
        findings.push(['errorLogs', { reason: 'ErrorLogs', evidence: [`${lines} log lines matching /${d.errorLogs.pattern ?? ''}/ within ${formatWindow(window)} (threshold ${threshold})`, ...reported.errorLines.recentSamples()] }]);
      }
    }
    if (d.undeclaredPort && reported?.listening) {
      const undeclared = undeclaredListeners(reported.listening, pod.spec.ports);
      if (undeclared.length > 0) {
        findings.push(['undeclaredPort', {
          reason: 'UndeclaredListeningPort',
          evidence: [`listening on ${undeclared.map((s) => `${s.protocol} ${s.address}:${s.port}`).join(', ')}; declared: ${pod.spec.ports.map((p) => `${p.protocol}/${p.port}`).join(', ') || 'none'}`],
        }]);
      }
    }
    if (d.anomaly) {
      const found = this.anomaly(spec, state, track, pod, selected, now);
      if (found) findings.push(['anomaly', found]);
    }
    return findings;
  }

  /** The pod's rate (per minute, over the last minute) against its group's baseline; the sample joins the baseline after. */
  private anomaly(spec: GuardPolicySpec, state: PolicyState, track: PodTrack, pod: GuardPod, selected: readonly GuardPod[], now: number): Finding | undefined {
    const a = spec.detectors.anomaly!;
    const signalName = a.signal ?? 'restarts';
    const reported = this.deps.signals.of(pod.metadata.uid);
    const rate = signalName === 'restarts'
      ? track.restarts.count(now, MS_PER_MINUTE)
      : signalName === 'errorLogs' ? (reported?.errorLines.count(now, MS_PER_MINUTE) ?? 0) : (reported?.healthFailures.count(now, MS_PER_MINUTE) ?? 0);
    const group = groupOf(pod, spec);
    const baselineKey = `${group}\n${signalName}`;
    let stats = state.baselines.get(baselineKey);
    if (!stats) {
      stats = new DecayingStats(durationMs(a.halfLife ?? '15m'));
      state.baselines.set(baselineKey, stats);
    }
    const verdict = judge(stats, rate, { threshold: a.zScore ?? 3, minSamples: a.minSamples ?? 10, minStdDev: ANOMALY_MIN_STD_DEV });
    if (now - track.lastSampleMs >= ANOMALY_SAMPLE_MS) {
      track.lastSampleMs = now;
      stats.add(rate, now);
    }
    if (!verdict.anomalous) return undefined;
    const size = selected.filter((p) => groupOf(p, spec) === group).length;
    return {
      reason: 'RateAnomaly',
      evidence: [`${signalName} at ${rate}/min, z-score ${verdict.score.toFixed(1)} (threshold ${a.zScore ?? 3}) against group ${group} (${size} pods): mean ${verdict.baseline.mean.toFixed(2)}/min, deviation ${verdict.baseline.stdDev.toFixed(2)}, ${verdict.baseline.samples} samples`],
    };
  }

  // --- incidents and the ladder --------------------------------------------------------------------

  private async openIncident(
    policy: GuardPolicy, state: PolicyState, pod: GuardPod, detector: DetectorName, finding: Finding,
    selected: readonly GuardPod[], signal: AbortSignal,
  ): Promise<void> {
    const now = this.deps.clock.now();
    const spec = policy.spec;
    const group = groupOf(pod, spec);
    const incident: Incident = {
      id: incidentId(detector, pod.metadata.uid, now),
      pod: pod.metadata.name,
      podUid: pod.metadata.uid,
      ...(pod.spec.nodeName ? { node: pod.spec.nodeName } : {}),
      group,
      detector,
      reason: finding.reason,
      evidence: finding.evidence.slice(0, 10).map((e) => e.slice(0, 1024)),
      openedAt: formatConditionTime(now),
      actions: [],
    };
    state.incidents.unshift(incident);
    const labels = { namespace: pod.metadata.namespace, policy: policy.metadata.name ?? '' };
    this.metrics?.incidents.inc({ ...labels, detector });
    const changed = latestContainerChange(pod);
    if (changed !== undefined && changed <= now) this.metrics?.detectionLatency.observe({ detector }, (now - changed) / 1000);
    this.logger.info({ ...labels, pod: pod.metadata.name, incident: incident.id, detector, reason: finding.reason, group, evidence: incident.evidence }, 'guard incident opened');
    await this.climb(policy, state, pod, incident, selected, ladderSteps(spec.actions), signal);
  }

  /** The group's situation for the rails, as seen from `pod`. */
  private situation(policy: GuardPolicy, state: PolicyState, pod: GuardPod, selected: readonly GuardPod[]): GroupSituation {
    const spec = policy.spec;
    const group = groupOf(pod, spec);
    // From our own record, not the cache: a quarantine made a moment ago (this reconcile, or one
    // the cache has not seen yet) counts against the rail at once.
    const quarantinedUids = new Set(state.incidents
      .filter((i) => !i.closedAt && i.group === group && i.podUid !== pod.metadata.uid && i.actions.some((a) => a.action === 'Quarantine' && a.outcome === 'Taken'))
      .map((i) => i.podUid));
    return {
      group,
      // A pod quarantined a moment ago may still look selected in the cache: counted once.
      size: selected.filter((p) => groupOf(p, spec) === group && !quarantinedUids.has(p.metadata.uid)).length + quarantinedUids.size,
      quarantined: quarantinedUids.size,
      ...(state.lastDisruption.has(group) ? { lastDisruptionMs: state.lastDisruption.get(group)! } : {}),
      budgets: budgetsFor(this.deps.budgetsIn(pod.metadata.namespace), pod),
    };
  }

  /**
   * An open incident whose quarantine a rail held back (maxQuarantined, a PDB, the cooldown) is
   * quarantined, and isolated when listed, once the rails let it: at most N of a group at a time
   * means the next one goes when a slot frees, not never. Nothing is recorded while they hold.
   */
  private async resumeHeld(policy: GuardPolicy, state: PolicyState, selected: readonly GuardPod[], signal: AbortSignal): Promise<void> {
    const spec = policy.spec;
    if (spec.dryRun) return;
    for (const incident of [...state.incidents].reverse()) {
      if (incident.closedAt) continue;
      const quarantine = incident.actions.filter((a) => a.action === 'Quarantine').at(-1);
      if (quarantine?.outcome !== 'Skipped') continue;
      const pod = selected.find((p) => p.metadata.uid === incident.podUid);
      if (!pod) continue;
      const situation = this.situation(policy, state, pod, selected);
      const now = this.deps.clock.now();
      if (cooldownRail(situation, cooldownMs(spec), now) ?? quarantineRail(situation, spec.quarantine?.maxQuarantined)) continue;
      await this.climb(policy, state, pod, incident, selected, ladderSteps(spec.actions).filter((step) => step === 'Quarantine' || step === 'Isolate'), signal);
    }
    await this.retryHeld(policy, state, selected, signal);
  }

  /**
   * Tries again the held steps that are due: an eviction a PodDisruptionBudget refused, a
   * preventive restart its group was not ready for. Nothing is recorded while they stay held (the
   * first refusal is, with its reason); the step is recorded once it is taken. The waits double
   * (ladder.ts heldRetryDelayMs), so a budget that stays exhausted costs an eviction request a
   * minute, not one per reconcile.
   */
  private async retryHeld(policy: GuardPolicy, state: PolicyState, selected: readonly GuardPod[], signal: AbortSignal): Promise<void> {
    for (const incident of [...state.incidents].reverse()) {
      const held = state.held.get(incident.id);
      if (!held) continue;
      const pod = selected.find((p) => p.metadata.uid === incident.podUid);
      if (incident.closedAt || !pod || policy.spec.dryRun) {
        // Closed (closeFinished saw the pod gone or healthy), quarantined meanwhile, or dry run: nothing left to retry.
        if (incident.closedAt || policy.spec.dryRun) state.held.delete(incident.id);
        continue;
      }
      const now = this.deps.clock.now();
      const due = ladderSteps(policy.spec.actions).filter((step): step is HeldStep => (step === 'Evict' || step === 'Preventive') && (held.get(step)?.dueMs ?? Number.POSITIVE_INFINITY) <= now);
      if (due.length === 0) continue;
      const outcomes = await this.climb(policy, state, pod, incident, selected, due, signal, true);
      for (const step of due) {
        const retry = held.get(step);
        if (!retry) continue; // taken
        retry.tries++;
        retry.dueMs = this.deps.clock.now() + heldRetryDelayMs(retry.tries + 1);
        this.logger.debug({ namespace: policy.metadata.namespace, policy: policy.metadata.name, incident: incident.id, step, outcome: outcomes.get(step), tries: retry.tries }, 'guard step still held');
      }
    }
  }

  /** When the next held step is due, if any. */
  private nextHeldRetry(state: PolicyState): number | undefined {
    let next: number | undefined;
    for (const held of state.held.values()) for (const retry of held.values()) next = Math.min(next ?? retry.dueMs, retry.dueMs);
    return next;
  }

  /**
   * Takes `steps` (in ladder order) for `incident`, each checked against the rails and recorded;
   * returns their outcomes. An Evict or Preventive restart held back (Skipped) is kept in
   * `state.held` to be tried again. `retrying`: such a retry, which records nothing unless the step
   * is taken now.
   */
  private async climb(
    policy: GuardPolicy, state: PolicyState, pod: GuardPod, incident: Incident, selected: readonly GuardPod[], steps: readonly GuardAction[], signal: AbortSignal,
    retrying = false,
  ): Promise<Map<GuardAction, ActionOutcome>> {
    const spec = policy.spec;
    const now = this.deps.clock.now();
    const labels = { namespace: pod.metadata.namespace, policy: policy.metadata.name ?? '' };
    const situation = this.situation(policy, state, pod, selected);
    const group = situation.group;
    const cooldown = cooldownRail(situation, cooldownMs(spec), now);
    const dryRun = spec.dryRun ?? false;
    const outcomes = new Map<GuardAction, ActionOutcome>();
    /** `disrupts`: whether a taken step starts the group's cooldown (a node taint evicts nothing). */
    const record = (action: GuardAction, outcome: ActionOutcome, message: string, disrupts = DISRUPTIVE.has(action), holds = false): void => {
      outcomes.set(action, outcome);
      const step = action === 'Evict' || action === 'Preventive' ? action : undefined;
      if (retrying && (outcome === 'Skipped' || outcome === 'Failed')) {
        this.logger.debug({ ...labels, pod: pod.metadata.name, incident: incident.id, action, outcome, message }, 'guard step still held');
        return;
      }
      if (step && outcome === 'Skipped' && holds && !dryRun && !state.held.get(incident.id)?.has(step)) {
        const held = state.held.get(incident.id) ?? new Map<HeldStep, HeldRetry>();
        held.set(step, { tries: 0, dueMs: this.deps.clock.now() + heldRetryDelayMs(1) });
        state.held.set(incident.id, held);
        message = `${message}; held: tried again with backoff while the incident is open`;
      } else if (step && outcome !== 'Skipped') {
        state.held.get(incident.id)?.delete(step);
        if (state.held.get(incident.id)?.size === 0) state.held.delete(incident.id);
      }
      incident.actions.push({ action, at: formatConditionTime(this.deps.clock.now()), outcome, message: message.slice(0, 1024) });
      this.metrics?.actions.inc({ ...labels, action, outcome });
      this.logger.info({ ...labels, pod: pod.metadata.name, incident: incident.id, action, outcome, message }, 'guard action');
      if (action !== 'Event') this.event(policy, pod, outcome === 'Taken' ? 'Normal' : 'Warning', `${action}${outcome}`, action, `incident ${incident.id}: ${message}`);
      if (outcome === 'Taken' && disrupts) state.lastDisruption.set(group, this.deps.clock.now());
    };

    for (const step of steps) {
      const prefix = dryRun ? 'dry run: would ' : '';
      try {
        switch (step) {
          case 'Event': {
            this.event(policy, pod, 'Warning', 'IncidentOpened', 'Detect', `incident ${incident.id} (${incident.detector}): ${incident.reason}: ${incident.evidence[0] ?? ''}${dryRun ? ' (dry run: nothing will be changed)' : ''}`);
            record('Event', 'Taken', `recorded on pod ${pod.metadata.name} and on the policy`);
            break;
          }
          case 'Quarantine': {
            const rail = cooldown ?? quarantineRail(situation, spec.quarantine?.maxQuarantined);
            if (rail) {
              record('Quarantine', 'Skipped', rail);
              break;
            }
            const message = await this.quarantine(policy, state, pod, incident, dryRun, signal);
            record('Quarantine', dryRun ? 'DryRun' : 'Taken', `${prefix}${message}`);
            break;
          }
          case 'Isolate': {
            const before = outcomes.get('Quarantine');
            if (before !== 'Taken' && before !== 'DryRun') {
              record('Isolate', 'Skipped', `needs Quarantine, which was ${before?.toLowerCase() ?? 'not listed'}`);
              break;
            }
            await this.deps.writer.apply(NETWORK_POLICIES, isolationPolicy(owner(policy), incident.id), { signal, dryRun });
            record('Isolate', dryRun ? 'DryRun' : 'Taken', `${prefix}deny all ingress and egress of the pod with NetworkPolicy ${isolationPolicyName(incident.id)}`);
            break;
          }
          case 'Preventive': {
            if (spec.preventive?.taintNode && !retrying) {
              // A taint evicts nothing: the cooldown does not hold it back.
              const [outcome, message] = await this.taintNode(policy, state, pod, incident, selected, dryRun, signal);
              record('Preventive', outcome, message, false);
              if (spec.preventive.restartSimilar === false) break;
            }
            if (spec.preventive?.restartSimilar === false) {
              record('Preventive', 'Skipped', 'no preventive action is enabled (preventive.restartSimilar is false)');
              break;
            }
            if (cooldown) {
              record('Preventive', 'Skipped', cooldown, true, true);
              break;
            }
            const [outcome, message] = await this.preventive(policy, pod, group, selected, dryRun, signal);
            record('Preventive', outcome, message, true, true);
            break;
          }
          case 'Evict': {
            if (cooldown) {
              record('Evict', 'Skipped', cooldown, true, true);
              break;
            }
            const refused = await this.evict(policy, pod, dryRun, signal);
            if (refused) record('Evict', 'Skipped', refused, true, true);
            else record('Evict', dryRun ? 'DryRun' : 'Taken', `${prefix}evict the pod through the Eviction API (its owner makes a replacement the scheduler places)`);
            break;
          }
        }
      } catch (err) {
        if (signal.aborted) throw err;
        record(step, 'Failed', describeError(err));
      }
    }
    return outcomes;
  }

  /**
   * Quarantines `pod` (see quarantine.ts); returns what was done. A pod changed since the cache saw
   * it (a crash-looping pod's status changes all the time) fails the patch's resourceVersion test:
   * it is read again and judged again, up to {@link QUARANTINE_ATTEMPTS} times.
   */
  private async quarantine(policy: GuardPolicy, state: PolicyState, cached: GuardPod, incident: Incident, dryRun: boolean, signal: AbortSignal): Promise<string> {
    let pod = cached;
    for (let attempt = 1; ; attempt++) {
      const ownerRef = controllerOf(pod);
      let ownerSelector: LabelSelector | undefined;
      const ownerType = ownerRef ? OWNER_TYPES[ownerRef.kind] : undefined;
      if (ownerRef && ownerType) {
        const ownerObject = await this.deps.api.json<{ spec?: { selector?: LabelSelector } }>(objectPath(ownerType, ownerRef.name, pod.metadata.namespace), { signal });
        ownerSelector = ownerObject.spec?.selector;
      }
      const removedLabels = labelsToRemove(pod, ownerSelector, policy.spec.targets.podSelector);
      const now = this.deps.clock.now();
      const record: QuarantineRecord = {
        incident: incident.id, policy: policy.metadata.name ?? '', detector: incident.detector, at: formatConditionTime(now),
        until: formatConditionTime(now + durationMs(policy.spec.quarantine?.ttl ?? '24h')), removedLabels,
      };
      let patched: KubeObject | undefined;
      try {
        patched = await this.patchPod(pod, quarantinePatch(pod, record), dryRun, signal);
      } catch (err) {
        if (attempt >= QUARANTINE_ATTEMPTS || !(isConflict(err) || statusCode(err) === 422)) throw err;
        const fresh = guardPod(await this.deps.api.json<KubeObject>(objectPath(Resources.pods, pod.metadata.name, pod.metadata.namespace), { signal })) as GuardPod;
        if (fresh.metadata.uid !== cached.metadata.uid || fresh.metadata.deletionTimestamp) throw new Error(`pod ${pod.metadata.name} was deleted or replaced meanwhile`);
        if (QUARANTINE_LABEL in (fresh.metadata.labels ?? {})) throw new Error(`pod ${pod.metadata.name} was quarantined meanwhile (${fresh.metadata.labels?.[QUARANTINE_LABEL]})`);
        if (!matchesLabelSelector(policy.spec.targets.podSelector, fresh.metadata.labels)) throw new Error(`pod ${pod.metadata.name} is no longer selected by the policy`);
        pod = fresh;
        continue;
      }
      if (!dryRun && patched?.metadata?.resourceVersion) state.patched.set(pod.metadata.uid, patched.metadata.resourceVersion);
      const removed = Object.keys(removedLabels);
      return `take the pod out of ${ownerRef ? `${ownerRef.kind} ${ownerRef.name}` : 'its selectors'}: removed label${removed.length === 1 ? '' : 's'} ${removed.join(', ') || '(none)'}${ownerRef?.controller ? ' and its controller reference' : ''}; labelled ${QUARANTINE_LABEL}=${incident.id} until ${record.until}`;
    }
  }

  /**
   * Restarts one similar pod (deleted through the Eviction API, so its PDB holds and its owner
   * recreates it): the group's other pod with the most restarts, only while every other pod of the
   * group is ready and nobody else is rolling the group's pods over. One per incident: a group is
   * restarted one pod at a time across incidents and cooldowns, never all at once.
   */
  private async preventive(policy: GuardPolicy, pod: GuardPod, group: string, selected: readonly GuardPod[], dryRun: boolean, signal: AbortSignal): Promise<[ActionOutcome, string]> {
    const spec = policy.spec;
    // Terminating pods too (selected leaves them out): someone deleting them is restarting the group.
    const members = this.deps.podsIn(pod.metadata.namespace)
      .filter((p) => !(QUARANTINE_LABEL in (p.metadata.labels ?? {})) && matchesLabelSelector(spec.targets.podSelector, p.metadata.labels) && groupOf(p, spec) === group);
    const rollout = rolloutInProgress(members);
    if (rollout) return ['Skipped', rollout];
    const similar = selected.filter((p) => p.metadata.uid !== pod.metadata.uid && groupOf(p, spec) === group);
    if (similar.length === 0) return ['Skipped', `no similar pod in group ${group}`];
    const unready = similar.filter((p) => !p.status.containers.every((c) => c.ready));
    if (unready.length > 0) return ['Skipped', `similar pods not ready (${unready.map((p) => p.metadata.name).join(', ')}): restarting another now could take the group down`];
    const target = [...similar].sort((a, b) => restartsOf(b) - restartsOf(a) || a.metadata.name.localeCompare(b.metadata.name))[0]!;
    const refused = await this.evict(policy, target, dryRun, signal);
    if (refused) return ['Skipped', refused];
    return [dryRun ? 'DryRun' : 'Taken', `${dryRun ? 'dry run: would restart' : 'restarted'} similar pod ${target.metadata.name} (evicted; its owner recreates it)`];
  }

  /**
   * Taints the incident's node NoSchedule when the group's incidents concentrate there (taint.ts
   * decides; the rails: one node per policy at a time, and every placement among the group's pods
   * keeps another node). The policy gets its finalizer first, so deleting it always removes the
   * taint. The taint's `timeAdded` is now, and its end that plus the ttl.
   */
  private async taintNode(policy: GuardPolicy, state: PolicyState, pod: GuardPod, incident: Incident, selected: readonly GuardPod[], dryRun: boolean, signal: AbortSignal): Promise<[ActionOutcome, string]> {
    const settings = policy.spec.preventive!.taintNode!;
    const ttlMs = durationMs(settings.ttl ?? '30m');
    const value = taintValue(policy.metadata.namespace ?? '', policy.metadata.name ?? '');
    const now = this.deps.clock.now();
    // The incident's pod counts even when a step before quarantined it: its replacement is placed alike.
    const group = [pod, ...selected.filter((p) => p !== pod && groupOf(p, policy.spec) === incident.group)];
    const decision = decideTaint(incident, state.incidents, this.deps.nodes?.() ?? [], group.map((p) => p.spec), value, { incidents: settings.incidents ?? 2, windowMs: durationMs(settings.window ?? '10m') }, now);
    if (!decision.taint) return ['Skipped', decision.message];
    if (!dryRun) await this.deps.writer.addFinalizer(GuardPolicyApi.type, policy, GUARD_TAINT_FINALIZER, { signal });
    const { node } = await this.patchNode(decision.node, (n) => addTaintPatch(n, value, now), dryRun, signal);
    // Tainted already (the cache lagged): its own timeAdded stands.
    const taint = node && guardTaintOf(node, value);
    const until = (taint && taintEndMs(taint, ttlMs)) ?? now + ttlMs;
    const message = `${dryRun ? 'dry run: would taint node ' : TAINTED_PREFIX}${decision.node} ${GUARD_TAINT_KEY}=${value}:NoSchedule until ${formatConditionTime(until)}: ${decision.message}`;
    // The pod's and the policy's Events come with the step's record; a dry run leaves the node alone, Events included.
    if (!dryRun) this.nodeEvent(decision.node, node?.metadata?.uid, 'Warning', 'NodeTainted', 'Taint', `policy ${policy.metadata.namespace}/${policy.metadata.name}, incident ${incident.id}: ${message}`);
    return [dryRun ? 'DryRun' : 'Taken', message];
  }

  /**
   * Removes this policy's taint from nodes where its ttl ended (its `timeAdded` plus the ttl, read
   * from the node: the same answer for every replica, before and after a restart), or from every
   * node when the policy no longer asks for taints; drops the finalizer once no taint is left and
   * none may come. A taint of ours without a `timeAdded` gets one (now). Returns the next ttl end,
   * if any. A taint is removed even in dry run: it only undoes what guard did.
   */
  private async expireTaints(policy: GuardPolicy, now: number, signal: AbortSignal): Promise<number | undefined> {
    const settings = policy.spec.preventive?.taintNode;
    const ttl = settings?.ttl ?? '30m';
    const ttlMs = durationMs(ttl);
    const value = taintValue(policy.metadata.namespace ?? '', policy.metadata.name ?? '');
    const tainted = (this.deps.nodes?.() ?? []).filter((n) => hasGuardTaint(n, value));
    let next: number | undefined;
    const nextAt = (at: number): void => { next = Math.min(next ?? at, at); };
    for (const node of tainted) {
      const name = node.metadata.name;
      const taint = guardTaintOf(node, value)!;
      const until = taintEndMs(taint, ttlMs);
      try {
        if (!settings) {
          await this.untaint(policy, name, 'the policy no longer taints nodes', signal);
        } else if (until === undefined) {
          await this.patchNode(name, (n) => stampTaintPatch(n, value, now), false, signal);
          nextAt(now + ttlMs);
        } else if (until > now) {
          nextAt(until);
        } else {
          await this.untaint(policy, name, `its ttl ${ttl} ended (added ${taint.timeAdded})`, signal);
        }
      } catch (err) {
        if (signal.aborted) throw err;
        this.logger.warn({ namespace: policy.metadata.namespace, policy: policy.metadata.name, node: name, err: describeError(err) }, 'guard could not end or stamp its node taint; retrying');
        nextAt(now + 5_000);
      }
    }
    if (!settings && tainted.length === 0 && policy.metadata.finalizers?.includes(GUARD_TAINT_FINALIZER)) {
      await this.deps.writer.removeFinalizer(GuardPolicyApi.type, policy, GUARD_TAINT_FINALIZER, { signal });
    }
    return next;
  }

  /** Removes this policy's taint from every node that carries it (the policy is being deleted). */
  private async untaintAll(policy: GuardPolicy, signal: AbortSignal): Promise<void> {
    const value = taintValue(policy.metadata?.namespace ?? '', policy.metadata?.name ?? '');
    for (const node of this.deps.nodes?.() ?? []) {
      if (hasGuardTaint(node, value)) await this.untaint(policy, node.metadata.name, 'the policy is being deleted', signal);
    }
  }

  private async untaint(policy: GuardPolicy, name: string, why: string, signal: AbortSignal): Promise<void> {
    const value = taintValue(policy.metadata?.namespace ?? '', policy.metadata?.name ?? '');
    const { node, patched } = await this.patchNode(name, (n) => removeTaintPatch(n, value), false, signal);
    // Gone already (the cache had not seen the last removal): said once.
    if (!patched) return;
    const message = `removed taint ${GUARD_TAINT_KEY}=${value}:NoSchedule from node ${name}: ${why}`;
    this.nodeEvent(name, node?.metadata?.uid, 'Normal', 'NodeUntainted', 'Untaint', `policy ${policy.metadata?.namespace}/${policy.metadata?.name}: ${message}`);
    this.deps.recorder?.event(policyRef(policy), 'Normal', 'NodeUntainted', 'Untaint', message);
    this.logger.info({ namespace: policy.metadata?.namespace, policy: policy.metadata?.name, node: name }, message);
  }

  /**
   * Patches node `name` with `build(current)` (undefined: nothing to do), read fresh from the API
   * server each try: the patch tests the resourceVersion, and a node that changed meanwhile is
   * read and judged again. Returns the node as last seen (undefined when it is gone) and whether
   * it was patched.
   */
  private async patchNode(name: string, build: (node: NodeLike) => JsonPatchOperation[] | undefined, dryRun: boolean, signal: AbortSignal): Promise<{ node: NodeLike | undefined; patched: boolean }> {
    const path = objectPath(Resources.nodes, name);
    for (let attempt = 1; ; attempt++) {
      let node: NodeLike;
      try {
        node = await this.deps.api.json<NodeLike>(path, { signal });
      } catch (err) {
        if (isNotFound(err)) return { node: undefined, patched: false };
        throw err;
      }
      const patch = build(node);
      if (!patch) return { node, patched: false };
      try {
        const patched = await this.deps.api.json<NodeLike>(path, {
          method: 'PATCH', contentType: 'application/json-patch+json',
          query: { fieldManager: this.deps.writer.fieldManager, dryRun: dryRun ? 'All' : undefined }, body: patch, signal,
        });
        return { node: patched, patched: true };
      } catch (err) {
        if (attempt >= NODE_PATCH_ATTEMPTS || !(isConflict(err) || statusCode(err) === 422)) throw err;
      }
    }
  }

  private nodeEvent(node: string, uid: string | undefined, type: EventType, reason: string, action: string, note: string): void {
    this.deps.recorder?.event({ apiVersion: 'v1', kind: 'Node', name: node, ...(uid ? { uid } : {}) }, type, reason, action, note);
  }

  /** Evicts `pod`; returns why the API server refused (a PDB), or undefined when evicted. */
  private async evict(policy: GuardPolicy, pod: GuardPod, dryRun: boolean, signal: AbortSignal): Promise<string | undefined> {
    const labels = { namespace: pod.metadata.namespace, policy: policy.metadata.name ?? '' };
    try {
      await this.deps.api.json(`${objectPath(Resources.pods, pod.metadata.name, pod.metadata.namespace)}/eviction`, {
        method: 'POST',
        body: {
          apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: pod.metadata.name, namespace: pod.metadata.namespace },
          deleteOptions: { preconditions: { uid: pod.metadata.uid }, ...(dryRun ? { dryRun: ['All'] } : {}) },
        },
        signal,
      });
      if (!dryRun) this.metrics?.evictions.inc({ ...labels, result: 'evicted' });
      return undefined;
    } catch (err) {
      if (isTooManyRequests(err)) {
        this.metrics?.evictions.inc({ ...labels, result: 'refused' });
        return `the Eviction API refused: ${describeError(err)} (a PodDisruptionBudget allows no disruption now)`;
      }
      throw err;
    }
  }

  private async patchPod(pod: GuardPod, patch: readonly JsonPatchOperation[], dryRun: boolean, signal: AbortSignal): Promise<KubeObject | undefined> {
    return await this.deps.api.json<KubeObject | undefined>(objectPath(Resources.pods, pod.metadata.name, pod.metadata.namespace), {
      method: 'PATCH',
      contentType: 'application/json-patch+json',
      query: { fieldManager: this.deps.writer.fieldManager, dryRun: dryRun ? 'All' : undefined },
      body: patch,
      signal,
    });
  }

  // --- closing and expiry ------------------------------------------------------------------------

  /**
   * Closes incidents whose pod is gone, released, or (never quarantined) no longer failing; returns
   * the ids of those that isolated their pod.
   */
  private closeFinished(policy: GuardPolicy, state: PolicyState, pods: readonly GuardPod[], selected: readonly GuardPod[], now: number): string[] {
    const isolated: string[] = [];
    for (const incident of state.incidents) {
      if (incident.closedAt) continue;
      const pod = pods.find((p) => p.metadata.uid === incident.podUid);
      let why: string | undefined;
      if (!pod || pod.metadata.deletionTimestamp) why = 'the pod is gone';
      else if (QUARANTINE_LABEL in (pod.metadata.labels ?? {})) continue;
      else if (incident.actions.some((a) => a.action === 'Quarantine' && a.outcome === 'Taken')) {
        // Not labelled in the cache: released, unless the cache has not seen our patch yet.
        const patched = state.patched.get(pod.metadata.uid);
        if (patched !== undefined && !isNewerResourceVersion(pod.metadata.resourceVersion, patched)) continue;
        why = 'the pod was released from quarantine';
      }
      else if (selected.includes(pod) && !this.stillFiring(policy.spec, state, pod, incident, now)) why = 'the detector no longer fires';
      if (!why) continue;
      state.patched.delete(incident.podUid ?? '');
      state.held.delete(incident.id);
      incident.closedAt = formatConditionTime(now);
      state.closedAt.set(incident.podUid ?? '', now);
      if (incident.actions.some((a) => a.action === 'Isolate' && a.outcome === 'Taken')) isolated.push(incident.id);
      this.logger.info({ namespace: policy.metadata.namespace, policy: policy.metadata.name, incident: incident.id, pod: incident.pod, why }, 'guard incident closed');
    }
    const open = state.incidents.filter((i) => !i.closedAt);
    const closed = state.incidents.filter((i) => i.closedAt).slice(0, Math.max(0, MAX_STATUS_INCIDENTS - open.length));
    state.incidents = [...open, ...closed];
    for (const [uid, at] of state.closedAt) if (now - at > cooldownMs(policy.spec)) state.closedAt.delete(uid);
    return isolated;
  }

  /** Deletes an incident's isolating NetworkPolicy, if it is still there and ours. */
  private async removeIsolation(namespace: string, incident: string, signal: AbortSignal): Promise<void> {
    let existing: KubeObject;
    try {
      existing = await this.deps.api.json<KubeObject>(objectPath(NETWORK_POLICIES, isolationPolicyName(incident), namespace), { signal });
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    if (!isManagedByUs(existing) || !existing.metadata?.uid) return;
    await this.deps.writer.delete(NETWORK_POLICIES, { namespace, name: isolationPolicyName(incident), uid: existing.metadata.uid }, { signal });
  }

  private stillFiring(spec: GuardPolicySpec, state: PolicyState, pod: GuardPod, incident: Incident, now: number): boolean {
    const track = state.pods.get(pod.metadata.uid);
    const reported = this.deps.signals.of(pod.metadata.uid);
    const d = spec.detectors;
    // Not observed yet (a new leader's first pass over incidents it seeded): judged once it has been.
    if (!track && (incident.detector === 'crashLoop' || incident.detector === 'oomKilled')) return true;
    switch (incident.detector) {
      case 'crashLoop':
        return Boolean(track && d.crashLoop && track.restarts.count(now, durationMs(d.crashLoop.window ?? '10m')) >= (d.crashLoop.restarts ?? 3));
      case 'oomKilled':
        return Boolean(track && d.oomKilled && track.ooms.count(now, durationMs(d.oomKilled.window ?? '30m')) >= (d.oomKilled.kills ?? 1));
      case 'health':
        return Boolean(reported && d.health && reported.healthFailures.count(now, durationMs(d.health.window ?? '2m')) >= (d.health.failures ?? 3));
      case 'errorLogs':
        return Boolean(reported && d.errorLogs && reported.errorLines.count(now, durationMs(d.errorLogs.window ?? '1m')) >= (d.errorLogs.lines ?? 20));
      case 'undeclaredPort':
        return Boolean(reported?.listening && undeclaredListeners(reported.listening, pod.spec.ports).length > 0);
      case 'anomaly':
        // Judged again on the next sample; an anomaly holds for one window of its signal.
        return now - Date.parse(incident.openedAt) < MS_PER_MINUTE;
    }
  }

  /** Releases or deletes quarantined pods whose ttl ended; returns the next ttl end, if any. */
  private async expireQuarantines(policy: GuardPolicy, state: PolicyState, quarantined: readonly GuardPod[], now: number, signal: AbortSignal): Promise<number | undefined> {
    let next: number | undefined;
    for (const pod of quarantined) {
      const record = quarantineRecordOf(pod)!;
      const until = record.until ? Date.parse(record.until) : Number.NaN;
      if (Number.isNaN(until)) continue;
      if (until > now) {
        next = Math.min(next ?? until, until);
        continue;
      }
      const deleteIt = (policy.spec.quarantine?.onExpiry ?? 'Delete') === 'Delete';
      // A policy switched to dry run after it quarantined changes nothing either: the pod waits.
      if (policy.spec.dryRun) continue;
      try {
        if (deleteIt) {
          await this.deps.writer.delete(Resources.pods, { namespace: pod.metadata.namespace, name: pod.metadata.name, uid: pod.metadata.uid }, { signal });
        } else {
          await this.patchPod(pod, releasePatch(pod, record), false, signal);
        }
        await this.removeIsolation(pod.metadata.namespace, record.incident, signal);
        const message = `quarantine of incident ${record.incident} ended (ttl ${policy.spec.quarantine?.ttl ?? '24h'}): pod ${deleteIt ? 'deleted' : 'released to its owner'}`;
        this.event(policy, pod, 'Normal', deleteIt ? 'QuarantineDeleted' : 'QuarantineReleased', 'Expire', message);
        this.logger.info({ namespace: pod.metadata.namespace, policy: policy.metadata.name, pod: pod.metadata.name, incident: record.incident }, message);
        const incident = state.incidents.find((i) => i.id === record.incident);
        if (incident && !incident.closedAt) incident.closedAt = formatConditionTime(now);
      } catch (err) {
        if (signal.aborted) throw err;
        if (isNotFound(err) || isConflict(err) || statusCode(err) === 422) continue; // changed meanwhile: the next pass sees it
        this.logger.warn({ namespace: pod.metadata.namespace, pod: pod.metadata.name, err: describeError(err) }, 'guard could not end a quarantine; retrying');
        next = now + 5_000;
      }
    }
    return next;
  }

  // --- status, events, state -----------------------------------------------------------------------

  private status(policy: GuardPolicy, incidents: readonly Incident[], watched: number, quarantined: number, invalidReason?: string, invalidMessage?: string): GuardPolicyStatus {
    const generation = policy.metadata?.generation;
    const open = incidents.filter((i) => !i.closedAt);
    const clock = this.deps.clock;
    let conditions = setStatusCondition(policy.status?.conditions, {
      type: GuardPolicyConditions.ready, status: invalidReason ? 'False' : 'True', reason: invalidReason ?? 'Watching',
      message: invalidMessage ?? `watching ${watched} pod${watched === 1 ? '' : 's'}${policy.spec.dryRun ? ' (dry run: actions are recorded, nothing is changed)' : ''}`,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
    }, clock).conditions;
    conditions = setStatusCondition(conditions, {
      type: GuardPolicyConditions.degraded, status: open.length > 0 ? 'True' : 'False', reason: open.length > 0 ? 'IncidentsOpen' : 'NoIncidents',
      message: open.length > 0 ? open.slice(0, 5).map((i) => `${i.pod}: ${i.reason}`).join('; ') : 'no open incidents',
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
    }, clock).conditions;
    return {
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      conditions, watchedPods: watched, quarantinedPods: quarantined, openIncidents: open.length, incidents: incidents.map((i) => ({ ...i, actions: [...i.actions] })),
    };
  }

  private async writeStatus(policy: GuardPolicy, status: GuardPolicyStatus, signal: AbortSignal): Promise<void> {
    try {
      await this.deps.statusWriter.write(policy, status, { signal });
    } catch (err) {
      // Gone or changed since the cache saw it: the informer's event or the resync brings the key back.
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }

  private event(policy: GuardPolicy, pod: GuardPod, type: EventType, reason: string, action: string, note: string): void {
    const recorder = this.deps.recorder;
    if (!recorder) return;
    const podRef: RegardingObject = { apiVersion: 'v1', kind: 'Pod', namespace: pod.metadata.namespace, name: pod.metadata.name, uid: pod.metadata.uid };
    recorder.event(podRef, type, reason, action, note);
    recorder.event(policyRef(policy), type, reason, action, `pod ${pod.metadata.name}: ${note}`);
  }

  private stateFor(key: string, policy: GuardPolicy): PolicyState {
    const uid = policy.metadata.uid!;
    let state = this.states.get(key);
    if (!state || state.uid !== uid) {
      // A new leader picks up where the last one left: the incidents it recorded.
      state = {
        uid, pods: new Map(), incidents: (policy.status?.incidents ?? []).map((i) => ({ ...i, actions: [...i.actions] })),
        lastDisruption: new Map(), closedAt: new Map(), baselines: new Map(), patched: new Map(), held: new Map(),
      };
      for (const incident of state.incidents) {
        // A node taint is a Preventive step that evicts nothing: it starts no cooldown.
        const disrupted = incident.actions.filter((a) => a.outcome === 'Taken' && DISRUPTIVE.has(a.action) && !a.message.startsWith(TAINTED_PREFIX)).map((a) => Date.parse(a.at));
        if (disrupted.length > 0) state.lastDisruption.set(incident.group, Math.max(state.lastDisruption.get(incident.group) ?? 0, ...disrupted));
        // An eviction the last leader was refused is tried again (a Preventive record may be a taint's: not told apart, left).
        if (!incident.closedAt && incident.actions.filter((a) => a.action === 'Evict').at(-1)?.outcome === 'Skipped') {
          state.held.set(incident.id, new Map([['Evict', { tries: 0, dueMs: this.deps.clock.now() }]]));
        }
      }
      this.states.set(key, state);
    }
    return state;
  }

  private forget(key: string, namespace: string, name: string): void {
    const state = this.states.get(key);
    this.states.delete(key);
    if (state) this.deps.statusWriter.forget(state.uid);
    this.metrics?.openIncidents.remove({ namespace, policy: name });
    this.metrics?.quarantined.remove({ namespace, policy: name });
  }

  /** The policies of `namespace` a pod concerns: those selecting it, and the one that quarantined it. */
  static policiesFor(pod: GuardPod, policies: readonly GuardPolicy[]): string[] {
    const record = quarantineRecordOf(pod);
    return policies
      .filter((p) => p.metadata?.name === record?.policy || matchesLabelSelector(p.spec?.targets?.podSelector, pod.metadata.labels))
      .map((p) => `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`);
  }
}

// ---------------------------------------------------------------------------------------------

/** The group of similar pods `pod` belongs to: its groupBy label values, else its controlling owner. */
export function groupOf(pod: GuardPod, spec: GuardPolicySpec): string {
  const keys = spec.targets.groupBy ?? [];
  if (keys.length > 0) return keys.map((k) => `${k}=${pod.metadata.labels?.[k] ?? ''}`).join(',');
  const ref = controllerOf(pod);
  return ref ? `${ref.kind}/${ref.name}` : `Pod/${pod.metadata.name}`;
}

function budgetsFor(budgets: readonly PodDisruptionBudgetLike[], pod: GuardPod): DisruptionBudget[] {
  return budgets
    .filter((b) => b.spec?.selector && matchesLabelSelector(b.spec.selector, pod.metadata.labels))
    .map((b) => ({ name: b.metadata?.name ?? '', disruptionsAllowed: b.status?.disruptionsAllowed ?? 0 }));
}

function restartsOf(pod: GuardPod): number {
  return pod.status.containers.reduce((sum, c) => sum + c.restartCount, 0);
}

/** When the kubelet last reported a container state change of `pod` (a termination or a restart). */
function latestContainerChange(pod: GuardPod): number | undefined {
  let latest: number | undefined;
  for (const c of pod.status.containers) {
    for (const text of [c.terminated?.finishedAt, c.lastTerminated?.finishedAt, c.startedAt]) {
      const at = text ? Date.parse(text) : Number.NaN;
      if (!Number.isNaN(at)) latest = Math.max(latest ?? at, at);
    }
  }
  return latest;
}

/** A short, unique, label-safe incident id: the detector and a hash of pod and time. */
export function incidentId(detector: DetectorName, podUid: string, nowMs: number): string {
  return `${detector.toLowerCase()}-${createHash('sha256').update(`${podUid}/${nowMs}`).digest('hex').slice(0, 10)}`;
}

function cooldownMs(spec: GuardPolicySpec): number {
  return durationMs(spec.cooldown ?? '5m');
}

function owner(policy: GuardPolicy): { name: string; namespace: string; uid: string; apiVersion: string; kind: string } {
  return { name: policy.metadata.name ?? '', namespace: policy.metadata.namespace ?? '', uid: policy.metadata.uid ?? '', apiVersion: GuardPolicyApi.apiVersion, kind: GuardPolicyApi.kind };
}

function policyRef(policy: GuardPolicy): RegardingObject {
  return { apiVersion: GuardPolicyApi.apiVersion, kind: GuardPolicyApi.kind, namespace: policy.metadata.namespace ?? '', name: policy.metadata.name ?? '', ...(policy.metadata.uid ? { uid: policy.metadata.uid } : {}) };
}

function splitKey(key: string): [string, string] {
  const slash = key.indexOf('/');
  return [key.slice(0, slash), key.slice(slash + 1)];
}

interface GuardMetrics {
  readonly incidents: Counter<'namespace' | 'policy' | 'detector'>;
  readonly actions: Counter<'namespace' | 'policy' | 'action' | 'outcome'>;
  readonly openIncidents: Gauge<'namespace' | 'policy'>;
  readonly quarantined: Gauge<'namespace' | 'policy'>;
  readonly detectionLatency: Histogram<'detector'>;
  readonly evictions: Counter<'namespace' | 'policy' | 'result'>;
}

const metricsByRegistry = new WeakMap<Registry, GuardMetrics>();

function guardMetrics(registry: Registry): GuardMetrics {
  let metrics = metricsByRegistry.get(registry);
  if (!metrics) {
    metrics = {
      incidents: new Counter({ name: 'crowsnest_guard_incidents_total', help: 'Incidents opened, by policy and detector.', labelNames: ['namespace', 'policy', 'detector'], registers: [registry] }),
      actions: new Counter({
        name: 'crowsnest_guard_actions_total', help: 'Ladder steps decided, by action and outcome (Taken, DryRun, Skipped by a rail, Failed).',
        labelNames: ['namespace', 'policy', 'action', 'outcome'], registers: [registry],
      }),
      openIncidents: new Gauge({ name: 'crowsnest_guard_open_incidents', help: 'Incidents not closed, per policy.', labelNames: ['namespace', 'policy'], registers: [registry] }),
      quarantined: new Gauge({ name: 'crowsnest_guard_quarantined_pods', help: 'Pods quarantined now, per policy.', labelNames: ['namespace', 'policy'], registers: [registry] }),
      detectionLatency: new Histogram({
        name: 'crowsnest_guard_detection_latency_seconds', help: 'From the container state change the kubelet reported last (a termination or a restart, second resolution) to the incident it opened.',
        labelNames: ['detector'], buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300], registers: [registry],
      }),
      evictions: new Counter({
        name: 'crowsnest_guard_evictions_total', help: 'Eviction API requests (Evict, and Preventive restarts), by result: evicted, or refused by a PodDisruptionBudget (HTTP 429; tried again with backoff).',
        labelNames: ['namespace', 'policy', 'result'], registers: [registry],
      }),
    };
    metricsByRegistry.set(registry, metrics);
  }
  return metrics;
}
