/**
 * The Preventive step's node taint, as pure decisions and patches: when a group's incidents
 * concentrate on one node, that node gets a NoSchedule taint naming the policy, so the group's
 * replacements land elsewhere. The rails: at most one node per policy at a time, and never the
 * last schedulable Ready node (another Ready, schedulable node without a NoSchedule/NoExecute
 * taint must remain). Guard only ever adds or removes its own taint (key and value both match):
 * taints others set are left exactly as they are, and every patch tests the node's
 * resourceVersion so a concurrent change is never overwritten.
 */
import { createHash } from 'node:crypto';
import type { Incident } from './api.ts';
import { formatWindow } from './detect.ts';
import type { JsonPatchOperation } from './quarantine.ts';
import { FINALIZER_PREFIX } from '../kube/objects/labels.ts';

/** The key of the taint guard puts on a node; its value is `<namespace>.<policy>`. */
export const GUARD_TAINT_KEY = 'guard.crowsnest.dev/failing';
/** On a GuardPolicy while a node may carry its taint: deleting the policy removes the taint first. */
export const GUARD_TAINT_FINALIZER = `${FINALIZER_PREFIX}guard-node-taint`;

export interface NodeTaint {
  readonly key: string;
  readonly value?: string;
  readonly effect: string;
  readonly timeAdded?: string;
}

/** What guard reads of a Node. */
export interface NodeLike {
  readonly metadata: { readonly name: string; readonly uid?: string; readonly resourceVersion?: string };
  readonly spec?: { readonly unschedulable?: boolean; readonly taints?: readonly NodeTaint[] };
  readonly status?: { readonly conditions?: ReadonlyArray<{ readonly type: string; readonly status: string }> };
}

/**
 * The taint value naming a policy: `<namespace>.<policy>` (a label value: at most 63 characters;
 * a longer pair is shortened with a hash so two policies never share a value).
 */
export function taintValue(namespace: string, policy: string): string {
  const full = `${namespace}.${policy}`;
  if (full.length <= 63) return full;
  const hash = createHash('sha256').update(full).digest('hex').slice(0, 10);
  return `${full.slice(0, 52).replace(/[^A-Za-z0-9]+$/, '')}.${hash}`;
}

export function hasGuardTaint(node: NodeLike, value: string): boolean {
  return (node.spec?.taints ?? []).some((t) => isOurs(t, value));
}

function isOurs(taint: NodeTaint, value: string): boolean {
  return taint.key === GUARD_TAINT_KEY && taint.value === value;
}

/** A node new pods may be scheduled on: Ready, not cordoned, no NoSchedule or NoExecute taint. */
export function isSchedulable(node: NodeLike): boolean {
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  const blocked = (node.spec?.taints ?? []).some((t) => t.effect === 'NoSchedule' || t.effect === 'NoExecute');
  return ready && !node.spec?.unschedulable && !blocked;
}

export interface TaintSettings {
  /** Incidents of the group on one node within the window that make it tainted. */
  readonly incidents: number;
  readonly windowMs: number;
}

export type TaintDecision =
  | { readonly taint: true; readonly node: string; readonly message: string }
  | { readonly taint: false; readonly message: string };

/**
 * Whether `incident`'s node should be tainted now: the group's incidents opened within the window
 * (closed ones included: they happened) number at least `settings.incidents` on that node and are
 * more than half of the group's incidents in the window; no node carries this policy's taint yet;
 * and another schedulable node remains.
 */
export function decideTaint(
  incident: Incident, incidents: readonly Incident[], nodes: readonly NodeLike[], value: string, settings: TaintSettings, nowMs: number,
): TaintDecision {
  const node = incident.node;
  if (!node) return { taint: false, message: 'the pod has no node' };
  const recent = incidents.filter((i) => i.group === incident.group && i.node && nowMs - Date.parse(i.openedAt) <= settings.windowMs);
  const here = recent.filter((i) => i.node === node).length;
  const window = formatWindow(settings.windowMs);
  if (here < settings.incidents) {
    return { taint: false, message: `no node tainted: ${here} incident${here === 1 ? '' : 's'} of group ${incident.group} on node ${node} within ${window} (taintNode.incidents ${settings.incidents})` };
  }
  if (here * 2 <= recent.length) {
    return { taint: false, message: `no node tainted: the group's failures do not concentrate on node ${node} (${here} of ${recent.length} incidents within ${window})` };
  }
  const tainted = nodes.find((n) => hasGuardTaint(n, value));
  if (tainted) return { taint: false, message: `node ${tainted.metadata.name} carries this policy's taint already (one node at a time)` };
  const target = nodes.find((n) => n.metadata.name === node);
  if (!target) return { taint: false, message: `node ${node} is gone` };
  const others = nodes.filter((n) => n.metadata.name !== node && isSchedulable(n));
  if (others.length === 0) return { taint: false, message: `node ${node} is not tainted: no other schedulable Ready node would remain for the group` };
  return { taint: true, node, message: `${here} of ${recent.length} incidents of group ${incident.group} within ${window} on node ${node}; ${others.length} other schedulable node${others.length === 1 ? ' remains' : 's remain'}` };
}

/** A JSON patch adding our NoSchedule taint, guarded by the node's resourceVersion; undefined when it is there. */
export function addTaintPatch(node: NodeLike, value: string): JsonPatchOperation[] | undefined {
  const taints = node.spec?.taints ?? [];
  if (taints.some((t) => isOurs(t, value))) return undefined;
  return [
    { op: 'test', path: '/metadata/resourceVersion', value: node.metadata.resourceVersion ?? '' },
    { op: 'add', path: '/spec/taints', value: [...taints, { key: GUARD_TAINT_KEY, value, effect: 'NoSchedule' }] },
  ];
}

/** A JSON patch removing our taint (only ours), guarded by the node's resourceVersion; undefined when it is not there. */
export function removeTaintPatch(node: NodeLike, value: string): JsonPatchOperation[] | undefined {
  const taints = node.spec?.taints ?? [];
  if (!taints.some((t) => isOurs(t, value))) return undefined;
  return [
    { op: 'test', path: '/metadata/resourceVersion', value: node.metadata.resourceVersion ?? '' },
    { op: 'add', path: '/spec/taints', value: taints.filter((t) => !isOurs(t, value)) },
  ];
}
