/**
 * The action ladder's order and the guard rails, as pure decisions. The controller asks before
 * each disruptive step; a rail that holds returns the reason the step is skipped (recorded in
 * status and in an Event), undefined when the step may go ahead.
 */
import { GUARD_ACTIONS, type GuardAction } from './api.ts';
import { formatWindow } from './detect.ts';
import { controllerOf, type GuardPod } from './pods.ts';

/** The listed actions in ladder order (Event → Quarantine → Isolate → Preventive → Evict). */
export function ladderSteps(actions: readonly string[] | undefined): GuardAction[] {
  const listed = new Set(actions ?? ['Event']);
  return GUARD_ACTIONS.filter((a) => listed.has(a));
}

/** How many pods of a group of `groupSize` may be quarantined at once: a count, or a percentage rounded down. */
export function quarantineLimit(maxQuarantined: number | string | undefined, groupSize: number): number {
  const max = maxQuarantined ?? 1;
  if (typeof max === 'number') return max;
  const percent = Number(max.replace(/%$/, ''));
  return Number.isFinite(percent) ? Math.floor((percent * groupSize) / 100) : 0;
}

export interface DisruptionBudget {
  readonly name: string;
  readonly disruptionsAllowed: number;
}

export interface GroupSituation {
  readonly group: string;
  /** Pods of the group: those still selected plus those quarantined by this policy. */
  readonly size: number;
  readonly quarantined: number;
  /** When a disruptive step (Quarantine, Preventive, Evict) last ran on the group, if ever. */
  readonly lastDisruptionMs?: number;
  /** PodDisruptionBudgets selecting the pod. */
  readonly budgets: readonly DisruptionBudget[];
}

/** Why the group may not be disrupted now (cooldown), or undefined. */
export function cooldownRail(situation: GroupSituation, cooldownMs: number, nowMs: number): string | undefined {
  if (situation.lastDisruptionMs === undefined || cooldownMs <= 0) return undefined;
  const left = situation.lastDisruptionMs + cooldownMs - nowMs;
  if (left <= 0) return undefined;
  return `cooldown: the group ${situation.group} was last disrupted ${formatWindow(Math.max(1000, Math.round((nowMs - situation.lastDisruptionMs) / 1000) * 1000))} ago; cooldown ${formatWindow(cooldownMs)}`;
}

/** Why one more pod of the group may not be quarantined, or undefined. */
export function quarantineRail(situation: GroupSituation, maxQuarantined: number | string | undefined): string | undefined {
  const limit = quarantineLimit(maxQuarantined, situation.size);
  if (situation.quarantined + 1 > limit) {
    return `maxQuarantined: ${situation.quarantined} of ${situation.size} pods of group ${situation.group} quarantined already, at most ${limit} (${String(maxQuarantined ?? 1)})`;
  }
  return budgetRail(situation);
}

/** Why the pod may not be taken away from its PodDisruptionBudgets now, or undefined. */
export function budgetRail(situation: GroupSituation): string | undefined {
  const exhausted = situation.budgets.find((b) => b.disruptionsAllowed < 1);
  return exhausted ? `PodDisruptionBudget ${exhausted.name} allows no disruption now` : undefined;
}

/** A held step (Evict refused by a PDB, Preventive waiting for its group) is tried again after 5 s, then 10 s, 20 s, ... at most a minute apart. */
export const HELD_RETRY_FIRST_MS = 5_000;
export const HELD_RETRY_MAX_MS = 60_000;

/** How long to wait before the `tries`-th retry (1 = the first) of a held step: doubling, capped. */
export function heldRetryDelayMs(tries: number): number {
  return Math.min(HELD_RETRY_MAX_MS, HELD_RETRY_FIRST_MS * 2 ** Math.max(0, Math.min(tries - 1, 16)));
}

/**
 * Why restarting a pod of the group now would race someone else who is restarting them, or
 * undefined: a workload whose pods carry more than one revision (a Deployment, StatefulSet or
 * DaemonSet rolling out), or pods of the group being deleted. `group`: its pods, terminating ones
 * included.
 */
export function rolloutInProgress(group: readonly GuardPod[]): string | undefined {
  const revisions = new Map<string, Map<string, number>>();
  for (const pod of group) {
    if (pod.metadata.deletionTimestamp) continue;
    const revision = revisionOf(pod);
    if (!revision) continue;
    const byRevision = revisions.get(revision.workload) ?? new Map<string, number>();
    byRevision.set(revision.revision, (byRevision.get(revision.revision) ?? 0) + 1);
    revisions.set(revision.workload, byRevision);
  }
  for (const [workload, byRevision] of revisions) {
    if (byRevision.size < 2) continue;
    const counts = [...byRevision].sort(([a], [b]) => a.localeCompare(b)).map(([revision, pods]) => `${revision}: ${pods}`).join(', ');
    return `${workload} is being rolled out by someone else (its pods carry ${byRevision.size} revisions: ${counts}): the rollout restarts them already; guard restarts none until it is done`;
  }
  const terminating = group.filter((p) => p.metadata.deletionTimestamp).map((p) => p.metadata.name).sort();
  if (terminating.length > 0) return `pods of the group are being deleted (${terminating.join(', ')}): guard restarts none until they are gone`;
  return undefined;
}

/** The workload that owns `pod` (a ReplicaSet's Deployment by the ReplicaSet's name) and the pod's revision of it. */
function revisionOf(pod: GuardPod): { workload: string; revision: string } | undefined {
  const owner = controllerOf(pod);
  const labels = pod.metadata.labels ?? {};
  if (owner?.kind === 'ReplicaSet') {
    const hash = labels['pod-template-hash'];
    if (!hash || !owner.name.endsWith(`-${hash}`)) return undefined; // a ReplicaSet of its own, not a Deployment's
    return { workload: `Deployment ${owner.name.slice(0, -hash.length - 1)}`, revision: hash };
  }
  if (owner?.kind === 'StatefulSet' || owner?.kind === 'DaemonSet') {
    const hash = labels['controller-revision-hash'];
    return hash ? { workload: `${owner.kind} ${owner.name}`, revision: hash } : undefined;
  }
  return undefined;
}
