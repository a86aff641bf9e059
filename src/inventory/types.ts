/**
 * Which resource types a snapshot collects: the discovered types, narrowed by type selectors.
 *
 * A selector names types the way users write them (the seed's `addTypes`/`removeTypes`):
 *
 * - `pods`               the plural in the core group when the core group serves it, otherwise
 *                        in every group that serves it (`events` is core `events`, never also
 *                        `events.events.k8s.io`: the same objects twice);
 * - `deployments.apps`   exactly that resource of that group (`.` alone is not a group);
 * - `apps/*`             every type of a group (`core/*` for the core group);
 * - `customresources`    every type served by a CustomResourceDefinition;
 * - `*`                  everything listable.
 *
 * Matching is case-insensitive; a selector that matches nothing is reported, not fatal, so a
 * config written for a newer cluster still runs on an older one.
 */
import type { ResourceType } from '../kube/objects/resources.ts';

/** A discovered type we may list. */
export interface CollectableType extends ResourceType {
  /** Whether a CustomResourceDefinition serves it (as opposed to a built-in or aggregated API). */
  readonly custom: boolean;
}

/** `resource` for the core group, `resource.group` otherwise: the name users and summaries see. */
export function typeName(type: Pick<ResourceType, 'group' | 'resource'>): string {
  return type.group ? `${type.resource}.${type.group}` : type.resource;
}

/**
 * The default set: what users of the seed expect — workloads, networking, storage, RBAC,
 * configuration, cluster shape and every custom resource. Secrets and Events are left out, as in
 * the seed: Secrets only when a user adds them (and the chart grants them), Events because they
 * are high-churn noise rather than inventory.
 */
export const DEFAULT_TYPE_SELECTORS: readonly string[] = [
  // workloads
  'pods', 'replicationcontrollers', 'podtemplates',
  'deployments.apps', 'replicasets.apps', 'statefulsets.apps', 'daemonsets.apps', 'controllerrevisions.apps',
  'jobs.batch', 'cronjobs.batch',
  'horizontalpodautoscalers.autoscaling', 'poddisruptionbudgets.policy',
  // networking (Endpoints too, as k8s-collector had them: EndpointSlices replace them, but
  // objects written by hand or by older controllers exist only as Endpoints)
  'services', 'endpoints', 'endpointslices.discovery.k8s.io',
  'ingresses.networking.k8s.io', 'ingressclasses.networking.k8s.io', 'networkpolicies.networking.k8s.io',
  // storage
  'persistentvolumes', 'persistentvolumeclaims',
  'storageclasses.storage.k8s.io', 'csidrivers.storage.k8s.io', 'csinodes.storage.k8s.io', 'volumeattachments.storage.k8s.io',
  // RBAC and identities
  'serviceaccounts',
  'roles.rbac.authorization.k8s.io', 'rolebindings.rbac.authorization.k8s.io',
  'clusterroles.rbac.authorization.k8s.io', 'clusterrolebindings.rbac.authorization.k8s.io',
  // configuration and policy
  'configmaps', 'limitranges', 'resourcequotas',
  'priorityclasses.scheduling.k8s.io', 'runtimeclasses.node.k8s.io',
  // API priority and fairness, and Leases (leader election, node heartbeats): in k8s-collector's defaults
  'flowschemas.flowcontrol.apiserver.k8s.io', 'prioritylevelconfigurations.flowcontrol.apiserver.k8s.io',
  'leases.coordination.k8s.io',
  'mutatingwebhookconfigurations.admissionregistration.k8s.io',
  'validatingwebhookconfigurations.admissionregistration.k8s.io',
  // cluster shape and extensions
  'namespaces', 'nodes',
  'customresourcedefinitions.apiextensions.k8s.io', 'apiservices.apiregistration.k8s.io',
  'customresources',
];

/** The keyword for every CRD-served type. */
export const CUSTOM_RESOURCES_SELECTOR = 'customresources';

/** Why a selector is unusable; thrown while parsing so configs fail before any request. */
export class TypeSelectorError extends Error {
  constructor(selector: string, reason: string) {
    super(`invalid resource type "${selector}": ${reason}`);
    this.name = 'TypeSelectorError';
  }
}

const SELECTOR_PATTERN = /^(\*|[a-z0-9-]+(\.[a-z0-9-]+)*|[a-z0-9.-]+\/\*)$/;

/**
 * Checks and normalizes a selector list (trims, lower-cases, drops empties and duplicates).
 * @throws TypeSelectorError for a selector that can never match (`pods/log`, `a b`, `*.apps`).
 */
export function parseTypeSelectors(selectors: readonly string[]): string[] {
  const out: string[] = [];
  for (const raw of selectors) {
    const selector = raw.trim().toLowerCase();
    if (!selector) continue;
    if (!SELECTOR_PATTERN.test(selector)) {
      const hint = selector.includes('/') && !selector.endsWith('/*')
        ? 'subresources (like pods/log) are not collected; use "group/*" for a whole group'
        : 'expected "resource", "resource.group", "group/*", "customresources" or "*"';
      throw new TypeSelectorError(raw, hint);
    }
    if (!out.includes(selector)) out.push(selector);
  }
  return out;
}

/** Whether `selector` picks `type`, given every type discovered (for the core-first rule). */
function matches(selector: string, type: CollectableType, all: readonly CollectableType[]): boolean {
  if (selector === '*') return true;
  if (selector === CUSTOM_RESOURCES_SELECTOR) return type.custom;
  if (selector.endsWith('/*')) {
    const group = selector.slice(0, -2);
    return group === 'core' ? type.group === '' : type.group === group;
  }
  if (type.resource === selector) {
    // A bare name prefers the core group, as kubectl resolves `events` to core events.
    const servedByCore = all.some((other) => other.group === '' && other.resource === selector);
    return servedByCore ? type.group === '' : true;
  }
  return type.group !== '' && selector === `${type.resource}.${type.group}`;
}

/** The outcome of applying selectors to the discovered types. */
export interface TypeSelection {
  /** Types to collect, sorted by name. */
  readonly selected: readonly CollectableType[];
  /** Selectors (from `resources` or `addTypes`) that matched no discovered type. */
  readonly unmatched: readonly string[];
}

/** Which types a run collects, as selectors (`pods`, `apps/*`, `customresources`…); see {@link selectTypes}. */
export interface TypeSelectors {
  /** The default set, or `resources` when given. */
  readonly base: readonly string[];
  readonly add: readonly string[];
  readonly remove: readonly string[];
}

/**
 * Picks the types to collect: `base` (the default set, or `resources` when given), plus
 * `add`, minus `remove`. A removal always wins over an addition.
 */
export function selectTypes(
  discovered: readonly CollectableType[],
  selectors: TypeSelectors,
): TypeSelection {
  const wanted = [...selectors.base, ...selectors.add];
  const unmatched = wanted.filter(
    (selector) => selector !== CUSTOM_RESOURCES_SELECTOR && !discovered.some((type) => matches(selector, type, discovered)),
  );
  const selected = discovered
    .filter((type) => wanted.some((selector) => matches(selector, type, discovered)))
    .filter((type) => !selectors.remove.some((selector) => matches(selector, type, discovered)))
    .sort((a, b) => typeName(a).localeCompare(typeName(b)));
  return { selected, unmatched: [...new Set(unmatched)] };
}

/** Which list a selector came from: `base` is `--resources` (or the default set). */
export type SelectorList = 'base' | 'add' | 'remove';

/** A selector given by the user that matches nothing this cluster serves: almost always a typo. */
export interface UnknownSelector {
  readonly selector: string;
  readonly list: SelectorList;
  /** The served type (or `group/*`) spelled most like it. */
  readonly nearest?: string;
}

/** What {@link checkSelectors} found. */
export interface SelectorCheck {
  /** Selectors that match nothing and cannot be explained: the run must not start. */
  readonly unknown: readonly UnknownSelector[];
  /**
   * Selectors that match nothing, but may name a type of a group whose discovery failed: the
   * run goes on and reports them as skipped.
   */
  readonly maybeInFailedGroups: readonly string[];
}

/**
 * Finds the user's selectors that match no served type, before anything is listed: a typo in
 * `--resources` would otherwise give an empty "successful" snapshot, and one in
 * `--remove-types` would ship what was meant to be left out. Names of the default set are
 * exempt (a Kubernetes type an older cluster does not serve yet is reported, not fatal), as are
 * `*` and `customresources`, and selectors that may belong to a group whose discovery failed
 * (a bare name when any group failed, `x.group` and `group/*` when that group failed).
 */
export function checkSelectors(
  discovered: readonly CollectableType[],
  selectors: TypeSelectors,
  failedGroups: readonly string[],
): SelectorCheck {
  const unknown: UnknownSelector[] = [];
  const maybeInFailedGroups: string[] = [];
  const lists: [SelectorList, readonly string[]][] = [['base', selectors.base], ['add', selectors.add], ['remove', selectors.remove]];
  const candidates = selectorCandidates(discovered);
  for (const [list, entries] of lists) {
    for (const selector of entries) {
      if (selector === '*' || selector === CUSTOM_RESOURCES_SELECTOR || DEFAULT_TYPE_SELECTORS.includes(selector)) continue;
      if (discovered.some((type) => matches(selector, type, discovered))) continue;
      const group = selectorGroup(selector);
      if (group === undefined ? failedGroups.length > 0 : failedGroups.includes(group)) {
        maybeInFailedGroups.push(selector);
        continue;
      }
      const nearest = nearestName(selector, candidates);
      unknown.push({ selector, list, ...(nearest !== undefined ? { nearest } : {}) });
    }
  }
  return { unknown, maybeInFailedGroups: [...new Set(maybeInFailedGroups)] };
}

/** The group a selector names (`""` for core), or `undefined` for a bare resource name. */
function selectorGroup(selector: string): string | undefined {
  if (selector.endsWith('/*')) {
    const group = selector.slice(0, -2);
    return group === 'core' ? '' : group;
  }
  const dot = selector.indexOf('.');
  return dot === -1 ? undefined : selector.slice(dot + 1);
}

/** Every way a served type can be written: `pods`, `deployments.apps`, `apps/*`, `core/*`. */
function selectorCandidates(discovered: readonly CollectableType[]): string[] {
  const names = new Set<string>();
  for (const type of discovered) {
    names.add(type.resource);
    names.add(typeName(type));
    names.add(`${type.group || 'core'}/*`);
  }
  return [...names].sort();
}

/** The candidate with the smallest edit distance to `word` (the first in order on a tie). */
export function nearestName(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const distance = editDistance(word, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Levenshtein distance: insertions, deletions and substitutions, one character each. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
