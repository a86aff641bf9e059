/**
 * Status conditions with the semantics of apimachinery's `meta.SetStatusCondition`, so our
 * conditions read the way `kubectl wait --for=condition=Ready` and every dashboard expect:
 *
 * - one condition per `type`;
 * - `lastTransitionTime` moves only when `status` flips (True ↔ False ↔ Unknown), never when only
 *   the reason or message changes — "since when is it not Ready" stays answerable;
 * - `observedGeneration` says which spec the condition was computed from;
 * - `reason` is a CamelCase word a program can match on; the sentence goes in `message`.
 *
 * Pure functions over arrays: callers build the status they want and hand it to the status writer
 * (`status.ts`), which writes only when it differs from what the server has.
 */
import type { Clock } from '../clock.ts';

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** metav1.Condition. */
export interface Condition {
  /** CamelCase kind of condition: `Ready`, `Degraded`. */
  readonly type: string;
  readonly status: ConditionStatus;
  /** `metadata.generation` of the object the condition was computed from. */
  readonly observedGeneration?: number;
  /** RFC 3339 with second precision, as metav1.Time serialises. */
  readonly lastTransitionTime: string;
  /** CamelCase, machine-readable: `AllAgentsReachable`, `WebhookUnavailable`. */
  readonly reason: string;
  /** Human-readable detail; may be empty. */
  readonly message: string;
}

/** What a controller says about one condition; {@link setStatusCondition} decides the transition time. */
export interface ConditionUpdate {
  readonly type: string;
  readonly status: ConditionStatus;
  readonly reason: string;
  readonly message?: string;
  readonly observedGeneration?: number;
}

/** metav1.Condition's limits, as the API server validates them. */
export const CONDITION_LIMITS = { typeMaxLength: 316, reasonMaxLength: 1024, messageMaxLength: 32_768 } as const;

/** metav1.Condition's `type` pattern: an optional DNS-subdomain prefix and a qualified name. */
export const CONDITION_TYPE_PATTERN = '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$';
/** metav1.Condition's `reason` pattern (what the API server accepts). */
export const CONDITION_REASON_PATTERN = '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$';
/**
 * What we write ourselves, stricter than the API server: CamelCase, starting upper-case, letters
 * and digits only (`PodsInjected`, not `pods_injected` or `Pods Injected`).
 */
const CAMEL_CASE = /^[A-Z][A-Za-z0-9]*$/;

/** Throws when `update` is not a condition we would write (a programming error, not user input). */
export function validateConditionUpdate(update: ConditionUpdate): void {
  if (!CAMEL_CASE.test(update.type) || update.type.length > CONDITION_LIMITS.typeMaxLength) {
    throw new Error(`condition type "${update.type}" must be CamelCase (e.g. Ready)`);
  }
  if (!CAMEL_CASE.test(update.reason) || update.reason.length > CONDITION_LIMITS.reasonMaxLength) {
    throw new Error(`condition ${update.type}: reason "${update.reason}" must be CamelCase (e.g. AgentsReachable)`);
  }
  if ((update.message ?? '').length > CONDITION_LIMITS.messageMaxLength) {
    throw new Error(`condition ${update.type}: message longer than ${CONDITION_LIMITS.messageMaxLength} characters`);
  }
}

/** metav1.Time's wire form: RFC 3339 in UTC, whole seconds. */
export function formatConditionTime(epochMs: number): string {
  return new Date(Math.floor(epochMs / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** The condition of `type`, if present. */
export function findStatusCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** Whether the condition of `type` is present with status True. */
export function isStatusConditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findStatusCondition(conditions, type)?.status === 'True';
}

/**
 * `conditions` with `update` set, as `meta.SetStatusCondition` does: a new type is appended with
 * `lastTransitionTime` = now; an existing one keeps its transition time unless its status flips.
 * Reason, message and observedGeneration are always taken from `update`. The input is not
 * modified; `changed` says whether the result differs from it.
 *
 * @throws Error when `update`'s type or reason is not CamelCase (see {@link validateConditionUpdate}).
 */
export function setStatusCondition(
  conditions: readonly Condition[] | undefined,
  update: ConditionUpdate,
  clock: Pick<Clock, 'now'>,
): { readonly conditions: Condition[]; readonly changed: boolean } {
  validateConditionUpdate(update);
  const existing = findStatusCondition(conditions, update.type);
  const next: Condition = {
    type: update.type,
    status: update.status,
    ...(update.observedGeneration !== undefined ? { observedGeneration: update.observedGeneration } : {}),
    lastTransitionTime: existing && existing.status === update.status ? existing.lastTransitionTime : formatConditionTime(clock.now()),
    reason: update.reason,
    message: update.message ?? '',
  };
  if (!existing) return { conditions: [...(conditions ?? []), next], changed: true };
  const changed = existing.status !== next.status || existing.reason !== next.reason || existing.message !== next.message
    || existing.observedGeneration !== next.observedGeneration;
  return { conditions: changed ? conditions!.map((c) => (c.type === update.type ? next : c)) : [...conditions!], changed };
}

/** `conditions` without the condition of `type` (`meta.RemoveStatusCondition`). */
export function removeStatusCondition(conditions: readonly Condition[] | undefined, type: string): { readonly conditions: Condition[]; readonly changed: boolean } {
  const kept = (conditions ?? []).filter((c) => c.type !== type);
  return { conditions: kept, changed: kept.length !== (conditions ?? []).length };
}
