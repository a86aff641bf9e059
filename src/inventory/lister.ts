/**
 * Lists every object of one type, page by page (`limit` + `continue`), and hands each object to
 * the sink as soon as its page arrives, so memory holds one page per type in flight, never the
 * cluster.
 *
 * Failure handling, per request:
 * - network errors, 429 and 5xx are retried with jittered exponential backoff, honouring the
 *   server's Retry-After;
 * - 410 Gone on a continue token (it expired, ~5 min, or etcd compacted past it) restarts the
 *   type from the first page; objects already handed on are recognised by uid and not sent twice;
 * - anything else (403, 404 because the type went away, 405) ends the type with a reason.
 */
import type { KubeClient } from '../kube/client/client.ts';
import { realClock, sleep, type Clock } from '../kube/clock.ts';
import { describeError, isGone, isRetryable, retryAfterMs } from '../kube/client/errors.ts';
import { BucketRateLimiter, ExponentialBackoff } from '../kube/runtime/ratelimiter.ts';
import { apiVersionOf, collectionPath, type KubeObject } from '../kube/objects/resources.ts';
import { typeName, type CollectableType } from './types.ts';

/** Client-side request rate limit shared by all listers of a run (client-go's qps/burst). */
export class RequestLimiter {
  private readonly bucket: BucketRateLimiter;
  private readonly clock: Clock;

  /** @param qps sustained requests per second; @param burst requests allowed at once. */
  constructor(qps: number, burst: number, clock: Clock = realClock) {
    this.bucket = new BucketRateLimiter({ qps, burst, clock });
    this.clock = clock;
  }

  /** Waits until one more request may go out. */
  async acquire(signal: AbortSignal): Promise<void> {
    const waitMs = this.bucket.when('');
    if (waitMs > 0) await sleep(this.clock, waitMs, signal);
  }
}

export interface ListOptions {
  /** Objects per page (`limit`). */
  readonly pageSize: number;
  readonly labelSelector?: string;
  /** When set, namespaced types are listed in these namespaces only (one list per namespace). */
  readonly namespaces?: readonly string[];
  /** Objects in these namespaces are skipped (and Namespace objects of these names). */
  readonly ignoreNamespaces: readonly string[];
  readonly limiter: RequestLimiter;
  /** Attempts per page request before the type is given up. Default 5. */
  readonly maxAttempts?: number;
  /** Restarts after an expired continue token before the type is given up. Default 3. */
  readonly maxRestarts?: number;
  /** Longest wait honoured from a Retry-After header, in milliseconds. Default 60 s. */
  readonly maxRetryAfterMs?: number;
  readonly signal: AbortSignal;
  readonly clock?: Clock;
  /** Test seam: runs after each page was handed on, before the next is requested. */
  readonly afterPage?: (type: CollectableType, pageNumber: number) => Promise<void>;
}

/** What listing one type did, for the run summary. */
export interface TypeListResult {
  /** `resource` or `resource.group`. */
  readonly type: string;
  readonly apiVersion: string;
  readonly kind: string;
  /** Objects the sink took. */
  objects: number;
  /** Objects the sink refused (see the run summary's `dropped` for why). */
  dropped: number;
  pages: number;
  /** Objects left out by `ignoreNamespaces` or a Namespace filter. */
  filtered: number;
  /** Requests retried (network, 429, 5xx). */
  retries: number;
  /** Times listing started over because a continue token expired. */
  restarts: number;
  /** Set when the type could not be listed completely: the objects handed on are a partial list. */
  error?: string;
}

const DEFAULT_MAX_ATTEMPTS = 5;
const DEFAULT_MAX_RESTARTS = 3;
const DEFAULT_MAX_RETRY_AFTER_MS = 60_000;

interface ListPage {
  readonly items?: Record<string, unknown>[];
  readonly metadata?: { readonly continue?: string };
}

/**
 * Lists `type` and calls `emit` for each object (awaiting it: that is the sink's backpressure);
 * `emit` returns `false` for an object it dropped.
 * Never throws for API errors: they end up in the result's `error`. Throws only when `signal`
 * aborts or `emit` fails.
 */
export async function listType(
  client: KubeClient,
  type: CollectableType,
  options: ListOptions,
  // biome-ignore lint/suspicious/noConfusingVoidType: a callback that returns nothing is void-typed; `undefined` here would refuse it
  emit: (object: KubeObject) => boolean | void | Promise<boolean | void>,
): Promise<TypeListResult> {
  const apiVersion = apiVersionOf(type);
  const result: TypeListResult = { type: typeName(type), apiVersion, kind: type.kind, objects: 0, dropped: 0, pages: 0, filtered: 0, retries: 0, restarts: 0 };
  const clock = options.clock ?? realClock;
  const ignored = new Set(options.ignoreNamespaces);
  const onlyNamespaces = options.namespaces ? new Set(options.namespaces) : undefined;
  const isNamespaceType = type.group === '' && type.resource === 'namespaces';
  const scopes = type.namespaced && options.namespaces ? options.namespaces : [undefined];
  // uids handed on so far: lets a restart after 410 skip what the sink already has.
  const emitted = new Set<string>();

  for (const namespace of scopes) {
    let continueToken: string | undefined;
    let restarts = 0;
    const backoff = new ExponentialBackoff({ initialMs: 500, maxMs: 30_000, jitter: 0.2 });
    for (;;) {
      let page: ListPage;
      try {
        page = await requestPage(client, type, namespace, continueToken, options, backoff, result, clock);
      } catch (err) {
        if (options.signal.aborted) throw err;
        if (isGone(err) && continueToken !== undefined && restarts < (options.maxRestarts ?? DEFAULT_MAX_RESTARTS)) {
          restarts++;
          result.restarts++;
          continueToken = undefined;
          continue;
        }
        result.error = `${namespace ? `namespace ${namespace}: ` : ''}${describeError(err)}`;
        return result;
      }
      result.pages++;
      for (const item of page.items ?? []) {
        const metadata = (item['metadata'] ?? {}) as { uid?: string; name?: string; namespace?: string };
        if (metadata.namespace !== undefined && ignored.has(metadata.namespace)) {
          result.filtered++;
          continue;
        }
        if (isNamespaceType && metadata.name !== undefined && (ignored.has(metadata.name) || (onlyNamespaces && !onlyNamespaces.has(metadata.name)))) {
          result.filtered++;
          continue;
        }
        const identity = metadata.uid ?? `${metadata.namespace ?? ''}/${metadata.name ?? ''}`;
        if (emitted.has(identity)) continue;
        emitted.add(identity);
        // List items carry no apiVersion/kind; put them first, as `kubectl get -o json` shows them.
        const taken = await emit({ apiVersion, kind: type.kind, ...item } as KubeObject);
        if (taken === false) result.dropped++;
        else result.objects++;
      }
      await options.afterPage?.(type, result.pages);
      continueToken = page.metadata?.continue || undefined;
      if (!continueToken) break;
    }
  }
  return result;
}

async function requestPage(
  client: KubeClient,
  type: CollectableType,
  namespace: string | undefined,
  continueToken: string | undefined,
  options: ListOptions,
  backoff: ExponentialBackoff,
  result: TypeListResult,
  clock: Clock,
): Promise<ListPage> {
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  for (let attempt = 1; ; attempt++) {
    await options.limiter.acquire(options.signal);
    try {
      const page = await client.json<ListPage>(collectionPath(type, namespace), {
        query: { limit: options.pageSize, continue: continueToken, labelSelector: options.labelSelector },
        signal: options.signal,
        timeoutMs: 120_000,
      });
      backoff.reset();
      return page;
    } catch (err) {
      if (options.signal.aborted || !isRetryable(err) || attempt >= maxAttempts) throw err;
      result.retries++;
      const asked = retryAfterMs(err, clock);
      const waitMs = asked !== undefined ? Math.min(asked, options.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS) : backoff.next();
      await sleep(clock, waitMs, options.signal);
    }
  }
}
