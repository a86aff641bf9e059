/**
 * The Preventive step's node taint, as pure decisions and patches: when a group's incidents
 * concentrate on one node, that node gets a NoSchedule taint naming the policy, so the group's
 * replacements land elsewhere. The rails: at most one node per policy at a time, and never a node
 * the group's pods need: for every placement among the group's pods (nodeSelector, required node
 * affinity, tolerations; placement.ts), another Ready node that admits it must remain. Guard only
 * ever adds or removes its own taint (key and value both match): taints others set are left
 * exactly as they are, `timeAdded` included, and every patch tests the node's resourceVersion so a
 * concurrent change is never overwritten.
 *
 * The taint's end is written on the node, not kept in a replica's memory: guard sets the taint's
 * `timeAdded` when it adds it (the API server keeps it), and the taint ends `ttl` after that,
 * whichever replica leads then and however often the operator restarted meanwhile.
 */
import { createHash } from 'node:crypto';
import type { Incident } from './api.ts';
import { formatWindow } from './detect.ts';
import { admits, type NodeLike, type NodeTaint, type PodPlacement } from './placement.ts';
import type { JsonPatchOperation } from './quarantine.ts';
import { formatConditionTime } from '../kube/objects/conditions.ts';
import { FINALIZER_PREFIX } from '../kube/objects/labels.ts';
import type { KubeObject } from '../kube/objects/resources.ts';

export type { NodeLike, NodeTaint } from './placement.ts';

/** The key of the taint guard puts on a node; its value is `<namespace>.<policy>`. */
export const GUARD_TAINT_KEY = 'guard.crowsnest.dev/failing';
/** On a GuardPolicy while a node may carry its taint: deleting the policy removes the taint first. */
export const GUARD_TAINT_FINALIZER = `${FINALIZER_PREFIX}guard-node-taint`;

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
  return guardTaintOf(node, value) !== undefined;
}

/** This policy's taint on `node`, if it carries it. */
export function guardTaintOf(node: NodeLike, value: string): NodeTaint | undefined {
  return (node.spec?.taints ?? []).find((t) => isOurs(t, value));
}

function isOurs(taint: NodeTaint, value: string): boolean {
  return taint.key === GUARD_TAINT_KEY && taint.value === value;
}

/**
 * When `taint` ends (epoch ms): `ttlMs` after its `timeAdded`. Undefined when it has no readable
 * `timeAdded` (added by hand, or by a guard before it wrote one): see {@link stampTaintPatch}.
 */
export function taintEndMs(taint: NodeTaint, ttlMs: number): number | undefined {
  const added = taint.timeAdded ? Date.parse(taint.timeAdded) : Number.NaN;
  return Number.isNaN(added) ? undefined : added + ttlMs;
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
 * and each of `placements` (those of the group's pods; none: pods without constraints) is
 * admitted by another Ready node, so no pod of the group is left without a node to go to.
 */
export function decideTaint(
  incident: Incident, incidents: readonly Incident[], nodes: readonly NodeLike[], placements: readonly PodPlacement[], value: string, settings: TaintSettings, nowMs: number,
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
  // The API server keeps one taint per key and effect: the node cannot take ours too (it is out of bounds for new pods already).
  const another = target.spec?.taints?.find((t) => t.key === GUARD_TAINT_KEY && t.effect === 'NoSchedule');
  if (another) return { taint: false, message: `node ${node} carries the taint of policy ${another.value ?? ''} already (a node takes one ${GUARD_TAINT_KEY}:NoSchedule)` };
  const others = nodes.filter((n) => n.metadata.name !== node);
  const distinct = distinctPlacements(placements.length > 0 ? placements : [{}]);
  const stranded = distinct.find((p) => !others.some((n) => admits(n, p)));
  if (stranded) {
    return { taint: false, message: `node ${node} is not tainted: no other Ready node would admit pods of group ${incident.group} (${describePlacement(stranded)})` };
  }
  const refuges = others.filter((n) => distinct.some((p) => admits(n, p))).length;
  return { taint: true, node, message: `${here} of ${recent.length} incidents of group ${incident.group} within ${window} on node ${node}; ${refuges} other node${refuges === 1 ? '' : 's'} admit${refuges === 1 ? 's' : ''} the group's pods` };
}

/** `placements` without repeats (a group's pods mostly share their template's). */
function distinctPlacements(placements: readonly PodPlacement[]): PodPlacement[] {
  const seen = new Map<string, PodPlacement>();
  for (const p of placements) {
    const key = JSON.stringify([p.nodeSelector ?? null, p.affinity ?? null, p.tolerations ?? null]);
    if (!seen.has(key)) seen.set(key, p);
  }
  return [...seen.values()];
}

/** A placement in a few words, for the rail's message. */
function describePlacement(p: PodPlacement): string {
  const parts: string[] = [];
  const selector = Object.entries(p.nodeSelector ?? {}).map(([k, v]) => `${k}=${v}`);
  if (selector.length > 0) parts.push(`nodeSelector ${selector.join(',')}`);
  const terms = p.affinity?.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.length;
  if (terms !== undefined) parts.push(`required node affinity of ${terms} term${terms === 1 ? '' : 's'}`);
  const tolerations = p.tolerations?.length ?? 0;
  if (tolerations > 0) parts.push(`${tolerations} toleration${tolerations === 1 ? '' : 's'}`);
  return parts.length > 0 ? parts.join('; ') : 'no nodeSelector, node affinity or toleration';
}

/**
 * A JSON patch adding our NoSchedule taint, added at `nowMs` (`timeAdded`), guarded by the node's
 * resourceVersion; undefined when it is there (its `timeAdded` stays: the ttl is not restarted).
 */
export function addTaintPatch(node: NodeLike, value: string, nowMs: number): JsonPatchOperation[] | undefined {
  const taints = node.spec?.taints ?? [];
  if (taints.some((t) => isOurs(t, value))) return undefined;
  return taintsPatch(node, [...taints, { key: GUARD_TAINT_KEY, value, effect: 'NoSchedule', timeAdded: formatConditionTime(nowMs) }]);
}

/**
 * A JSON patch giving our taint the `timeAdded` `nowMs` when it has no readable one (a taint added
 * by hand, or by a guard before it wrote one): its ttl then runs from now, the same for every
 * replica after. Undefined when there is nothing to stamp.
 */
export function stampTaintPatch(node: NodeLike, value: string, nowMs: number): JsonPatchOperation[] | undefined {
  const taints = node.spec?.taints ?? [];
  const ours = taints.find((t) => isOurs(t, value));
  if (!ours || taintEndMs(ours, 0) !== undefined) return undefined;
  return taintsPatch(node, taints.map((t) => (t === ours ? { ...t, timeAdded: formatConditionTime(nowMs) } : t)));
}

/** A JSON patch removing our taint (only ours), guarded by the node's resourceVersion; undefined when it is not there. */
export function removeTaintPatch(node: NodeLike, value: string): JsonPatchOperation[] | undefined {
  const taints = node.spec?.taints ?? [];
  if (!taints.some((t) => isOurs(t, value))) return undefined;
  return taintsPatch(node, taints.filter((t) => !isOurs(t, value)));
}

/** The node's taints replaced by `taints` (each as read, so others' fields and `timeAdded` stay), if it has not changed since. */
function taintsPatch(node: NodeLike, taints: readonly NodeTaint[]): JsonPatchOperation[] {
  return [
    { op: 'test', path: '/metadata/resourceVersion', value: node.metadata.resourceVersion ?? '' },
    { op: 'add', path: '/spec/taints', value: taints },
  ];
}

/**
 * The node cache transform: what the rails and the expiry read (name, labels for nodeSelector and
 * node affinity, cordon, taints, conditions' type and status). A node's image list and addresses
 * are large and dropped.
 */
export function guardNode(obj: KubeObject): KubeObject {
  const node = obj as unknown as NodeLike;
  const m = node.metadata;
  const slim: NodeLike = {
    metadata: {
      name: m.name, ...(m.uid ? { uid: m.uid } : {}), ...(m.resourceVersion ? { resourceVersion: m.resourceVersion } : {}), ...(m.labels ? { labels: m.labels } : {}),
    },
    spec: { ...(node.spec?.unschedulable ? { unschedulable: true } : {}), ...(node.spec?.taints ? { taints: node.spec.taints } : {}) },
    status: { conditions: (node.status?.conditions ?? []).map((c) => ({ type: c.type, status: c.status })) },
  };
  return slim as unknown as KubeObject;
}
