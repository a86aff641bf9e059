/**
 * The action ladder's order and the guard rails, as pure decisions. The controller asks before
 * each disruptive step; a rail that holds returns the reason the step is skipped (recorded in
 * status and in an Event), undefined when the step may go ahead.
 */
import { GUARD_ACTIONS, type GuardAction } from './api.ts';
import { formatWindow } from './detect.ts';

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
