/**
 * Read access to exactly the custom resources a run collects, kept by the run itself.
 *
 * The CLI collects every CRD-served type it can list. In the cluster, RBAC cannot say "every
 * custom resource": the only rule that covers types nobody knows yet is `*` on `*`, and that
 * includes Secrets (and everything else). So the chart gives the inventory ServiceAccount one
 * ClusterRole it may rewrite (`update` + `escalate` on that name only), and before listing, a run
 * sets its rules to `get, list` on exactly the custom resource types it found: one rule per API
 * group, naming each resource. A CRD removed loses its rule at the next run. The chart's
 * ValidatingAdmissionPolicy bounds what that role may ever hold (only get/list, no core or
 * built-in group, no wildcard, no subresource), so a stolen token can grant itself nothing but
 * what this job is meant to read anyway.
 *
 * A rule the API server has stored is enforced within a moment (the authorizer watches RBAC), so
 * the run waits, through SelfSubjectAccessReview, until the new types are allowed, up to a bound.
 */
import type { KubeClient } from '../kube/client/client.ts';
import { sleep, type Clock } from '../kube/clock.ts';
import type { Logger } from '../kube/logger-type.ts';
import { typeName, type CollectableType } from './types.ts';

/** One RBAC PolicyRule, as the API server stores it. */
export interface ReadRule {
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
}

/** `get, list` on each custom type of `types`, one rule per group, both sorted. */
export function customResourceRules(types: readonly CollectableType[]): ReadRule[] {
  const byGroup = new Map<string, Set<string>>();
  for (const type of types) {
    if (!type.custom || type.group === '') continue;
    const resources = byGroup.get(type.group) ?? new Set<string>();
    resources.add(type.resource);
    byGroup.set(type.group, resources);
  }
  return [...byGroup.keys()].sort().map((group) => ({ apiGroups: [group], resources: [...byGroup.get(group)!].sort(), verbs: ['get', 'list'] }));
}

export interface GrantOptions {
  /** The ClusterRole to rewrite. */
  readonly clusterRole: string;
  readonly signal: AbortSignal;
  readonly clock: Clock;
  readonly logger: Logger;
  /** How long to wait for new rules to take effect, in milliseconds. Default 10 s. */
  readonly settleTimeoutMs?: number;
}

/** What granting did; `error` when the role could not be written (the run goes on without). */
export interface GrantResult {
  readonly changed: boolean;
  readonly rules: number;
  readonly error?: string;
}

const DEFAULT_SETTLE_TIMEOUT_MS = 10_000;
const SETTLE_POLL_MS = 200;

/**
 * Sets `options.clusterRole`'s rules to {@link customResourceRules} of `types` when they differ,
 * then waits until they are in effect. Never throws for the API's answers: a role it may not
 * write leaves the custom types to be skipped as forbidden, which the summary reports.
 */
export async function grantCustomResourceAccess(client: KubeClient, types: readonly CollectableType[], options: GrantOptions): Promise<GrantResult> {
  const rules = customResourceRules(types);
  const path = `/apis/rbac.authorization.k8s.io/v1/clusterroles/${encodeURIComponent(options.clusterRole)}`;
  try {
    const current = await client.json<{ rules?: ReadRule[] }>(path, { signal: options.signal });
    if (sameRules(current.rules ?? [], rules)) return { changed: false, rules: rules.length };
    // A merge patch replaces the whole list: the role holds exactly these rules afterwards.
    await client.json(path, { method: 'PATCH', contentType: 'application/merge-patch+json', body: { rules }, signal: options.signal });
  } catch (err) {
    if (options.signal.aborted) throw err;
    const error = `could not set the rules of ClusterRole ${options.clusterRole} to the custom resource types found: ${err instanceof Error ? err.message : String(err)}`;
    options.logger.warn({ clusterRole: options.clusterRole, reason: error }, 'custom resources: read access not updated');
    return { changed: false, rules: rules.length, error };
  }
  options.logger.info({ clusterRole: options.clusterRole, types: rules.flatMap((r) => r.resources.map((resource) => typeName({ group: r.apiGroups[0]!, resource }))) }, 'custom resources: read access set');
  await waitUntilAllowed(client, rules, options);
  return { changed: true, rules: rules.length };
}

function sameRules(a: readonly ReadRule[], b: readonly ReadRule[]): boolean {
  const key = (rules: readonly ReadRule[]): string => JSON.stringify(rules.map((r) => ({ apiGroups: r.apiGroups, resources: r.resources, verbs: r.verbs })));
  return key(a) === key(b);
}

/** Polls SelfSubjectAccessReview for `list` on each rule's resources until all are allowed or time runs out. */
async function waitUntilAllowed(client: KubeClient, rules: readonly ReadRule[], options: GrantOptions): Promise<void> {
  const deadline = options.clock.now() + (options.settleTimeoutMs ?? DEFAULT_SETTLE_TIMEOUT_MS);
  let pending = rules.flatMap((rule) => rule.resources.map((resource) => ({ group: rule.apiGroups[0]!, resource })));
  while (pending.length > 0) {
    const answers = await Promise.all(pending.map(async (type) => {
      const review = await client.json<{ status?: { allowed?: boolean } }>('/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', {
        method: 'POST',
        body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: { group: type.group, resource: type.resource, verb: 'list' } } },
        signal: options.signal,
      }).catch(() => undefined);
      return review?.status?.allowed === true;
    }));
    pending = pending.filter((_, index) => !answers[index]);
    if (pending.length === 0) return;
    if (options.clock.now() >= deadline) {
      options.logger.warn({ types: pending.map(typeName) }, 'custom resources: read access not in effect yet; listing anyway');
      return;
    }
    await sleep(options.clock, SETTLE_POLL_MS, options.signal);
  }
}
