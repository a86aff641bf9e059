/**
 * The Lease's namespace must exist before leader election can ever succeed: without it the
 * elector's create fails with 404 on every retry, forever, and an operator started by hand
 * against a cluster that lacks the namespace would only log warnings. Checked once at start,
 * with a dry-run create (the chart's RBAC has `create` on Leases; it needs no `get namespaces`).
 */
import type { KubeClient } from '../kube/client/client.ts';
import { isNotFound } from '../kube/client/errors.ts';

/** The namespace of the leader election Lease does not exist. */
export class LeaseNamespaceMissingError extends Error {
  constructor(namespace: string) {
    super(
      `the leader election namespace "${namespace}" does not exist: create it, name an existing one with ` +
        `--leader-election-namespace, or run a single operator without leader election (--no-leader-elect)`,
    );
    this.name = 'LeaseNamespaceMissingError';
  }
}

/**
 * Throws {@link LeaseNamespaceMissingError} when `namespace` does not exist. Any other answer
 * (created in dry run, already exists, forbidden, unreachable) is left to the elector, which
 * retries and reports it.
 */
export async function requireLeaseNamespace(client: KubeClient, namespace: string, name: string, signal: AbortSignal): Promise<void> {
  try {
    await client.json(`/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`, {
      method: 'POST',
      query: { dryRun: 'All' },
      body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name } },
      signal,
    });
  } catch (err) {
    if (isNotFound(err)) throw new LeaseNamespaceMissingError(namespace);
  }
}
