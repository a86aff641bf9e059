/**
 * Discovery of the types a snapshot can collect, as Velero does it: every group at its preferred
 * version, every resource that supports `list` and is not a subresource. A group whose discovery
 * fails (an aggregated API whose backend is down answers 503) is skipped and reported; the run
 * goes on with the rest, unlike the seed, where one broken group aborted everything.
 */
import type { KubeClient } from '../kube/client/client.ts';
import { realClock, sleep, type Clock } from '../kube/clock.ts';
import { describeError, isNetworkError, isRetryable, retryAfterMs } from '../kube/client/errors.ts';
import { mapConcurrent } from '../kube/concurrency.ts';
import { ExponentialBackoff } from '../kube/runtime/ratelimiter.ts';
import type { CollectableType } from './types.ts';

/** A group/version whose discovery failed, and why. */
export interface FailedGroup {
  readonly groupVersion: string;
  readonly reason: string;
}

export interface DiscoveryResult {
  /** Listable, non-subresource types at each group's preferred version, in API order. */
  readonly types: readonly CollectableType[];
  readonly failedGroups: readonly FailedGroup[];
  /**
   * Why CRD-served types could not be told apart from built-in ones (listing
   * CustomResourceDefinitions was refused or failed); `undefined` when they could.
   */
  readonly customResourcesUnknown?: string;
}

interface ApiResource {
  readonly name: string;
  readonly namespaced: boolean;
  readonly kind: string;
  readonly verbs?: readonly string[];
}

interface ApiResourceList {
  readonly groupVersion: string;
  readonly resources: readonly ApiResource[];
}

interface ApiGroupList {
  readonly groups: readonly { readonly name: string; readonly preferredVersion?: { readonly groupVersion: string; readonly version: string } }[];
}

/** Parallel discovery requests: one per API group, which is ~25 on a bare cluster. */
const DISCOVERY_CONCURRENCY = 8;
/**
 * Attempts per discovery request, 500 ms apart and doubling (7.5 s in all), as the lister
 * retries a page: an API server restarting under a run is waited out. A group's own HTTP errors
 * (503 from a dead aggregated API) are not retried; the API server's for `/apis` and the core
 * group are.
 */
const DISCOVERY_ATTEMPTS = 5;
const DISCOVERY_RETRY_INITIAL_MS = 500;
/** Longest wait honoured from a Retry-After header, in milliseconds. */
const MAX_RETRY_AFTER_MS = 30_000;

/** `fn` again after a backoff while `retry(err)` says so, at most {@link DISCOVERY_ATTEMPTS} times. */
async function withRetries<T>(fn: () => Promise<T>, retry: (err: unknown) => boolean, signal: AbortSignal | undefined, clock: Clock): Promise<T> {
  const backoff = new ExponentialBackoff({ initialMs: DISCOVERY_RETRY_INITIAL_MS, maxMs: 8 * DISCOVERY_RETRY_INITIAL_MS, jitter: 0.2 });
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (signal?.aborted || attempt >= DISCOVERY_ATTEMPTS || !retry(err)) throw err;
      const asked = retryAfterMs(err, clock);
      await sleep(clock, asked !== undefined ? Math.min(asked, MAX_RETRY_AFTER_MS) : backoff.next(), signal ?? new AbortController().signal);
    }
  }
}

/** Asks for object metadata only: CRDs carry large schemas we do not need to tell types apart. */
const PARTIAL_METADATA_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json';

/** Discovers the collectable types of the cluster behind `client`. */
export async function discoverTypes(client: KubeClient, signal?: AbortSignal, clock: Clock = realClock): Promise<DiscoveryResult> {
  const failedGroups: FailedGroup[] = [];
  const groupVersions = ['v1'];
  const groups = await withRetries(() => client.json<ApiGroupList>('/apis', { signal }), isRetryable, signal, clock);
  for (const group of groups.groups) {
    if (group.preferredVersion) groupVersions.push(group.preferredVersion.groupVersion);
  }

  const lists = await mapConcurrent(groupVersions, DISCOVERY_CONCURRENCY, async (groupVersion) => {
    const path = groupVersion === 'v1' ? '/api/v1' : `/apis/${groupVersion}`;
    const core = groupVersion === 'v1';
    try {
      return await withRetries(() => client.json<ApiResourceList>(path, { signal }), core ? isRetryable : isNetworkError, signal, clock);
    } catch (err) {
      if (signal?.aborted) throw err;
      if (core) throw err; // without the core group there is nothing worth a snapshot
      failedGroups.push({ groupVersion, reason: describeError(err) });
      return undefined;
    }
  });

  const { names: customNames, unknown } = await customResourceNames(client, signal);
  const types: CollectableType[] = [];
  for (const list of lists) {
    if (!list) continue;
    const [group, version] = list.groupVersion.includes('/') ? list.groupVersion.split('/', 2) as [string, string] : ['', list.groupVersion];
    for (const resource of list.resources) {
      if (resource.name.includes('/')) continue; // subresource: pods/log, deployments/scale, …
      if (!resource.verbs?.includes('list')) continue;
      types.push({
        group,
        version,
        resource: resource.name,
        kind: resource.kind,
        namespaced: resource.namespaced,
        custom: customNames.has(group ? `${resource.name}.${group}` : resource.name),
      });
    }
  }
  failedGroups.sort((a, b) => a.groupVersion.localeCompare(b.groupVersion));
  return { types, failedGroups, ...(unknown ? { customResourcesUnknown: unknown } : {}) };
}

/**
 * `plural.group` of every CRD: a CRD's name is exactly that, so a metadata-only list is enough.
 */
async function customResourceNames(client: KubeClient, signal?: AbortSignal): Promise<{ names: Set<string>; unknown?: string }> {
  const names = new Set<string>();
  try {
    const pages = client.listPages<{ metadata?: { name?: string } }>('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', {
      accept: PARTIAL_METADATA_LIST,
      ...(signal ? { signal } : {}),
    });
    for await (const items of pages) for (const item of items) if (item.metadata?.name) names.add(item.metadata.name);
    return { names };
  } catch (err) {
    if (signal?.aborted) throw err;
    return { names, unknown: `listing CustomResourceDefinitions failed: ${describeError(err)}` };
  }
}
