/**
 * The reflector keeps a {@link Store} equal to the server's state of one resource type (in one
 * namespace or all, optionally label/field-filtered): a full sync (a paginated list, or a
 * streaming list), then a watch from the sync's resourceVersion, with client-go's recovery rules.
 *
 * A full sync after the first is asked at the last resourceVersion this reflector saw
 * (`resourceVersionMatch=NotOlderThan`): the API server answers it from its watch cache, without
 * reading etcd, with a state at least as new as ours; only when the server says it cannot (410
 * Gone, "too large resource version") is the sync retried at once at `""`, the latest state
 * (client-go's `relistResourceVersion`). A streaming list (`sendInitialEvents=true`, WatchList)
 * sends the state as ADDED events on a watch, closed by a BOOKMARK annotated
 * `k8s.io/initial-events-end`, and the same stream goes on as the watch; a server that refuses it
 * (or ignores it: the stream ends without that bookmark) gets paged lists from then on.
 *
 * State machine (each state is a value of {@link ReflectorState}); `sync` is `streaming{rv}` when
 * streaming lists are on and the server takes them, else `listing{rv}`:
 *
 *   listing{rv, continue?} ── page with continue ───────────▶ listing{rv, continue}
 *        │  last page: store.replace(all pages) ─────────────▶ watching{rv of the list}
 *        │  410 (continue token expired) ────────────────────▶ listing{rv} (from scratch)
 *        │  410 / too large rv on listing{rv ≠ ""} ──────────▶ listing{""} (at once)
 *        └─ other error ────────────────────────────────────▶ backingOff{then: list}
 *   streaming{rv}       ── ADDED… then the end BOOKMARK: store.replace(all) ▶ watching{rv}
 *        │                                                     (on the same stream)
 *        │  refused (400/422) or ended without the BOOKMARK ─▶ listing{rv} (from now on)
 *        │  410 / too large rv on streaming{rv ≠ ""} ────────▶ streaming{""} (at once)
 *        └─ other error ────────────────────────────────────▶ backingOff{then: list}
 *   watching{rv}        ── ADDED/MODIFIED/DELETED/BOOKMARK ──▶ watching{rv of the event}
 *        │  stream ended (server timeout, idle watchdog) ────▶ watching{rv} (reconnect at once)
 *        │  410 Gone (HTTP or ERROR event: rv too old) ──────▶ sync at rv (relist; the store
 *        │                                                     infers missed deletes)
 *        └─ other error ────────────────────────────────────▶ backingOff{then: watch{rv}}
 *   backingOff{then}    ── delay elapsed ─────────────────────▶ then
 *   any                 ── stop signal ───────────────────────▶ stopped
 *
 * Every error is retryable; backoff makes sure a broken server is not hammered. The backoff is
 * reset once a watch has delivered events for a while, as client-go does. No wait is longer than
 * {@link MAX_BACKOFF_MS} (30 s), jitter and Retry-After included: that bounds how stale the cache
 * can be once the server is back, however long it was gone.
 */
import type { Clock } from '../clock.ts';
import { realClock, sleep } from '../clock.ts';
import { KubeApiError, type KubeClient } from '../client/client.ts';
import { isGone } from '../client/errors.ts';
import { ExponentialBackoff } from './ratelimiter.ts';
import type { Store } from './cache.ts';
import { apiVersionOf, collectionPath, type KubeObject, objectKey, type ResourceType } from '../objects/resources.ts';
import type { Logger } from '../logger-type.ts';
import { statusBody, statusCode } from '../client/errors.ts';

export type ReflectorState =
  /** A paged list; `resourceVersion` (absent: `""`, the latest state) is asked with NotOlderThan. */
  | { readonly kind: 'listing'; readonly continueToken?: string; readonly pages: number; readonly resourceVersion?: string }
  /** A streaming list at `resourceVersion` (absent: `""`), until its end bookmark. */
  | { readonly kind: 'streaming'; readonly resourceVersion?: string }
  | { readonly kind: 'watching'; readonly resourceVersion: string }
  | { readonly kind: 'backingOff'; readonly delayMs: number; readonly reason: string; readonly then: ResumePoint }
  | { readonly kind: 'stopped' };

export type ResumePoint = { readonly kind: 'list' } | { readonly kind: 'watch'; readonly resourceVersion: string };

/** One page of a list. */
export interface ListPage<T> {
  readonly items: readonly T[];
  readonly resourceVersion: string;
  /** Token for the next page; absent or empty on the last one. */
  readonly continueToken?: string;
}

export type WatchEvent<T> =
  | { readonly type: 'ADDED' | 'MODIFIED' | 'DELETED'; readonly object: T }
  /** `initialEventsEnd`: the bookmark that ends a streaming list's initial state. */
  | { readonly type: 'BOOKMARK'; readonly resourceVersion: string; readonly initialEventsEnd?: boolean }
  | { readonly type: 'ERROR'; readonly code: number; readonly message: string };

/** The two calls a reflector needs. The real one is {@link KubeListerWatcher}; tests use fakes. */
export interface ListerWatcher<T> {
  /**
   * One page. `resourceVersion` (only with the first page: a continue token carries its own) asks
   * for a state not older than it (`resourceVersionMatch=NotOlderThan`).
   */
  list(options: { readonly limit: number; readonly continueToken?: string; readonly resourceVersion?: string; readonly signal: AbortSignal }): Promise<ListPage<T>>;
  /**
   * Streams events until the server ends the watch, then resolves. Rejects on connection errors.
   * With `sendInitialEvents` it is a streaming list: the state not older than `resourceVersion`
   * (`""`: the latest) first, as ADDED events closed by an `initialEventsEnd` bookmark.
   */
  watch(
    options: { readonly resourceVersion: string; readonly timeoutSeconds: number; readonly idleTimeoutMs: number; readonly signal: AbortSignal; readonly sendInitialEvents?: boolean },
    onEvent: (event: WatchEvent<T>) => void,
  ): Promise<void>;
}

/**
 * The longest wait between two attempts, in milliseconds. client-go caps its reflector backoff
 * at 30 s but adds up to 100 % jitter on top, so a reflector there can wait 60 s: after a 13 s
 * outage a deleted pod stayed in its Role 29 s after the server came back. Here the cap holds
 * jitter included.
 */
export const MAX_BACKOFF_MS = 30_000;

/**
 * The reconnect backoff of every informer: client-go's shape (800 ms, doubling, jitter 1.0,
 * i.e. each wait stretched by up to 100 %), the base capped at half of {@link MAX_BACKOFF_MS}, so
 * that waits at the cap spread over [15 s, 30 s) instead of all landing on 30 s at once.
 */
export function reflectorBackoff(random?: () => number): ExponentialBackoff {
  return new ExponentialBackoff({ initialMs: 800, factor: 2, maxMs: MAX_BACKOFF_MS / 2, jitter: 1, ...(random ? { random } : {}) });
}

/** Backoff between retries; see ExponentialBackoff in ratelimiter.ts. */
export interface Backoff {
  /** Next delay in milliseconds (grows with each call). */
  next(): number;
  reset(): void;
}

export interface ReflectorOptions<T extends KubeObject> {
  /** Name in logs and metrics, e.g. `pods` or `logaccess/pods`. */
  readonly name: string;
  readonly listerWatcher: ListerWatcher<T>;
  readonly store: Store<T>;
  /** Page size of the initial list. Default 500. */
  readonly pageSize?: number;
  /**
   * Sync with streaming lists (WatchList, `sendInitialEvents=true`) instead of paged lists, falling
   * back to paged lists if the server refuses them. Default false.
   */
  readonly streamingList?: boolean;
  /**
   * Server-side watch timeout is drawn uniformly from [min, 2×min) so that many watchers do not
   * reconnect in lockstep (client-go: 5 min). Default 300 s.
   */
  readonly minWatchTimeoutSeconds?: number;
  /**
   * A watch that delivers no byte for this long is presumed dead (half-open TCP, a stuck proxy)
   * and restarted from the last resourceVersion. Bookmarks arrive about once a minute on a
   * healthy cached watch. Default 180 s.
   */
  readonly watchIdleTimeoutMs?: number;
  readonly backoff: Backoff;
  /** Backoff is reset after a watch has been healthy this long. Default 120 s. */
  readonly backoffResetAfterMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly random?: () => number;
  /**
   * Called on every transition between states (tests, metrics, debug logging). A watch moving
   * its resourceVersion forward is not a transition; read {@link Reflector.state} for that.
   */
  readonly onStateChange?: (state: ReflectorState) => void;
}

const DEFAULT_PAGE_SIZE = 500;
const DEFAULT_MIN_WATCH_TIMEOUT_SECONDS = 300;
const DEFAULT_WATCH_IDLE_TIMEOUT_MS = 180_000;
const DEFAULT_BACKOFF_RESET_AFTER_MS = 120_000;
/** A watch closed sooner than this without delivering anything counts as a failure. */
const VERY_SHORT_WATCH_MS = 1_000;

export class Reflector<T extends KubeObject> {
  private readonly opts: ReflectorOptions<T>;
  private readonly clock: Clock;
  private currentState: ReflectorState = { kind: 'listing', pages: 0 };
  /** Counters for metrics and tests: `lists` counts paged and streaming syncs, `streams` the latter. */
  readonly stats = { lists: 0, listPages: 0, streams: 0, watches: 0, relists: 0, events: 0 };
  /**
   * The newest resourceVersion seen (a sync, or any watch event): a relist asks for a state not
   * older than it, which the API server can answer from its watch cache.
   */
  private lastSyncResourceVersion = '';
  /** The server could not serve {@link lastSyncResourceVersion} (410, too large): sync at `""`. */
  private lastSyncResourceVersionUnavailable = false;
  /** Set once the server refused (or ignored) a streaming list: paged lists from then on. */
  private streamingUnsupported = false;

  constructor(options: ReflectorOptions<T>) {
    this.opts = options;
    this.clock = options.clock ?? realClock;
  }

  get state(): ReflectorState {
    return this.currentState;
  }

  /** Runs until `signal` aborts. Never rejects: every failure is logged and retried. */
  async run(signal: AbortSignal): Promise<void> {
    let next: ReflectorState = this.sync();
    while (!signal.aborted) {
      this.enter(next);
      try {
        next = await this.step(next, signal);
      } catch (err) {
        if (signal.aborted) break;
        // step() handles expected errors; anything else is a bug, but the cache must live on.
        this.opts.logger?.error({ reflector: this.opts.name, err: String(err) }, 'reflector step failed unexpectedly');
        // biome-ignore lint/suspicious/noThenProperty: `then` is the state to resume after backing off, an object, never a function: this state is not a thenable
        next = { kind: 'backingOff', delayMs: this.opts.backoff.next(), reason: String(err), then: { kind: 'list' } };
      }
    }
    this.enter({ kind: 'stopped' });
  }

  private enter(state: ReflectorState): void {
    this.currentState = state;
    this.opts.onStateChange?.(state);
  }

  private async step(state: ReflectorState, signal: AbortSignal): Promise<ReflectorState> {
    switch (state.kind) {
      case 'listing':
        return await this.list(state.resourceVersion ?? '', signal);
      case 'streaming':
        return await this.watch(state.resourceVersion ?? '', signal, 'stream');
      case 'watching':
        return await this.watch(state.resourceVersion, signal, 'watch');
      case 'backingOff':
        await sleep(this.clock, state.delayMs, signal);
        return state.then.kind === 'list' ? this.sync() : { kind: 'watching', resourceVersion: state.then.resourceVersion };
      case 'stopped':
        return state;
    }
  }

  /** The state that makes a full sync: a streaming list where possible, else a paged one, at the relist resourceVersion. */
  private sync(): ReflectorState {
    // client-go's relistResourceVersion; it asks "0" (any state, from the cache, unpaged) the
    // first time, we ask "" (the latest, paged) so the first state is current and never one huge page.
    const resourceVersion = this.lastSyncResourceVersionUnavailable ? '' : this.lastSyncResourceVersion;
    const at = resourceVersion ? { resourceVersion } : {};
    return this.opts.streamingList && !this.streamingUnsupported ? { kind: 'streaming', ...at } : { kind: 'listing', pages: 0, ...at };
  }

  /** Lists every page (restarting on an expired continue token), then replaces the store. */
  private async list(resourceVersion: string, signal: AbortSignal): Promise<ReflectorState> {
    const items: T[] = [];
    let continueToken: string | undefined;
    let pages = 0;
    this.stats.lists++;
    const at = resourceVersion ? { resourceVersion } : {};
    for (;;) {
      let page: ListPage<T>;
      try {
        page = await this.opts.listerWatcher.list({ limit: this.opts.pageSize ?? DEFAULT_PAGE_SIZE, ...(continueToken ? { continueToken } : at), signal });
      } catch (err) {
        if (signal.aborted) return { kind: 'stopped' };
        if (isGone(err) && continueToken) {
          // The snapshot behind the continue token was compacted away: start a fresh list.
          this.opts.logger?.info({ reflector: this.opts.name, pages }, 'continue token expired; restarting the list');
          items.length = 0;
          continueToken = undefined;
          pages = 0;
          this.stats.lists++;
          this.enter({ kind: 'listing', pages, ...at });
          continue;
        }
        if (resourceVersion && isResourceVersionUnavailable(err)) return this.resourceVersionUnavailable(resourceVersion, err);
        return this.backOff(err, { kind: 'list' });
      }
      pages++;
      this.stats.listPages++;
      for (const item of page.items) items.push(item);
      if (page.continueToken) {
        continueToken = page.continueToken;
        this.enter({ kind: 'listing', continueToken, pages, ...at });
        continue;
      }
      this.opts.store.replace(items);
      this.synced(page.resourceVersion);
      this.opts.logger?.debug({ reflector: this.opts.name, objects: items.length, pages, resourceVersion: page.resourceVersion }, 'listed');
      return { kind: 'watching', resourceVersion: page.resourceVersion };
    }
  }

  /** A full sync reached the store at `resourceVersion`. */
  private synced(resourceVersion: string): void {
    this.lastSyncResourceVersion = resourceVersion;
    this.lastSyncResourceVersionUnavailable = false;
  }

  /** The server cannot serve a sync at `resourceVersion`: sync at once at the latest state instead. */
  private resourceVersionUnavailable(resourceVersion: string, err: unknown): ReflectorState {
    this.lastSyncResourceVersionUnavailable = true;
    this.opts.logger?.info({ reflector: this.opts.name, resourceVersion, reason: err instanceof Error ? err.message : String(err) }, 'resourceVersion unavailable; syncing at the latest state');
    return this.sync();
  }

  /**
   * One watch stream from `fromResourceVersion`. In `stream` mode it is a streaming list: the
   * initial ADDED events are gathered apart and replace the store at the end bookmark, after which
   * the stream is an ordinary watch.
   */
  private async watch(fromResourceVersion: string, signal: AbortSignal, mode: 'watch' | 'stream'): Promise<ReflectorState> {
    let resourceVersion = fromResourceVersion;
    let gone: string | undefined;
    let failure: { code: number; message: string } | undefined;
    const minTimeout = this.opts.minWatchTimeoutSeconds ?? DEFAULT_MIN_WATCH_TIMEOUT_SECONDS;
    const random = this.opts.random ?? Math.random;
    const timeoutSeconds = Math.floor(minTimeout * (1 + random()));
    const started = this.clock.now();
    let received = 0;
    const store = this.opts.store;
    /** The initial state of a streaming list, until its end bookmark; then undefined. */
    let initial: Map<string, T> | undefined;
    if (mode === 'stream') {
      initial = new Map();
      this.stats.lists++;
      this.stats.streams++;
    } else {
      this.stats.watches++;
    }
    try {
      await this.opts.listerWatcher.watch(
        { resourceVersion, timeoutSeconds, idleTimeoutMs: this.opts.watchIdleTimeoutMs ?? DEFAULT_WATCH_IDLE_TIMEOUT_MS, signal, ...(mode === 'stream' ? { sendInitialEvents: true } : {}) },
        (event) => {
          if (gone || failure) return;
          this.stats.events++;
          received++;
          switch (event.type) {
            case 'ADDED':
            case 'MODIFIED':
              if (initial) initial.set(objectKey(event.object), event.object);
              else store.upsert(event.object);
              resourceVersion = event.object.metadata?.resourceVersion ?? resourceVersion;
              break;
            case 'DELETED':
              if (initial) initial.delete(objectKey(event.object));
              else store.delete(event.object);
              resourceVersion = event.object.metadata?.resourceVersion ?? resourceVersion;
              break;
            case 'BOOKMARK':
              resourceVersion = event.resourceVersion || resourceVersion;
              if (initial && event.initialEventsEnd) {
                store.replace([...initial.values()]);
                this.opts.logger?.debug({ reflector: this.opts.name, objects: initial.size, resourceVersion }, 'streamed');
                initial = undefined;
                this.synced(resourceVersion);
                this.enter({ kind: 'watching', resourceVersion });
              }
              break;
            case 'ERROR':
              if (event.code === 410) gone = event.message;
              else failure = { code: event.code, message: event.message };
              break;
          }
          if (!initial) this.lastSyncResourceVersion = resourceVersion;
          if (this.currentState.kind === 'watching' && this.currentState.resourceVersion !== resourceVersion) {
            this.currentState = { kind: 'watching', resourceVersion };
          }
        },
      );
    } catch (err) {
      if (signal.aborted) return { kind: 'stopped' };
      if (initial) return this.streamFailed(fromResourceVersion, err);
      if (isGone(err)) gone = (err as Error).message;
      else {
        this.resetBackoffIfHealthy(started);
        return this.backOff(err, { kind: 'watch', resourceVersion });
      }
    }
    if (signal.aborted) return { kind: 'stopped' };
    if (initial) {
      const error = gone ? new KubeApiError({ method: 'WATCH', path: '', status: 410, body: JSON.stringify({ message: gone }) })
        : failure ? new Error(`watch error event ${failure.code}: ${failure.message}`) : undefined;
      return this.streamFailed(fromResourceVersion, error);
    }
    if (gone) {
      this.stats.relists++;
      this.opts.logger?.info({ reflector: this.opts.name, resourceVersion, reason: gone }, 'watch expired (410 Gone); relisting');
      return this.sync();
    }
    this.resetBackoffIfHealthy(started);
    if (failure) return this.backOff(new Error(`watch error event ${failure.code}: ${failure.message}`), { kind: 'watch', resourceVersion });
    if (received === 0 && this.clock.now() - started < VERY_SHORT_WATCH_MS) {
      // A server (or proxy) that closes every watch at once would otherwise be hammered in a
      // tight loop; client-go treats this as an error for the same reason.
      return this.backOff(new Error(`very short watch: closed within ${VERY_SHORT_WATCH_MS} ms without an event`), { kind: 'watch', resourceVersion });
    }
    return { kind: 'watching', resourceVersion };
  }

  /**
   * A streaming list ended before its end bookmark: refused or ignored by the server (paged lists
   * from now on), asked at a resourceVersion it cannot serve (again at the latest), or failed
   * (back off). `err` is undefined when the server ended the stream normally.
   */
  private streamFailed(resourceVersion: string, err: unknown): ReflectorState {
    if (err === undefined || isStreamingRefused(err)) {
      this.streamingUnsupported = true;
      const reason = err === undefined ? 'the stream ended without the initial-events-end bookmark' : err instanceof Error ? err.message : String(err);
      this.opts.logger?.info({ reflector: this.opts.name, reason }, 'the API server does not serve streaming lists; using paged lists');
      return this.sync();
    }
    if (resourceVersion && isResourceVersionUnavailable(err)) return this.resourceVersionUnavailable(resourceVersion, err);
    return this.backOff(err, { kind: 'list' });
  }

  /** A watch that stayed up long enough proves the server healthy again, however it ended. */
  private resetBackoffIfHealthy(watchStartedMs: number): void {
    if (this.clock.now() - watchStartedMs >= (this.opts.backoffResetAfterMs ?? DEFAULT_BACKOFF_RESET_AFTER_MS)) this.opts.backoff.reset();
  }

  private backOff(err: unknown, then: ResumePoint): ReflectorState {
    const retryAfterMs = err instanceof KubeApiError ? err.retryAfterMs : undefined;
    // A server asking for more than the cap is asked again at the cap: it can answer 429 again.
    const delayMs = Math.min(MAX_BACKOFF_MS, Math.max(this.opts.backoff.next(), retryAfterMs ?? 0));
    const reason = err instanceof Error ? err.message : String(err);
    // biome-ignore lint/suspicious/noThenProperty: a log field holding a string, not a thenable
    this.opts.logger?.warn({ reflector: this.opts.name, delayMs, reason, then: then.kind }, 'list/watch failed; backing off');
    return { kind: 'backingOff', delayMs, reason, then };
  }
}


/**
 * The server cannot serve a list at the resourceVersion asked (client-go's `isExpiredError` and
 * `isTooLargeResourceVersionError`): 410 Gone/Expired, or a resourceVersion newer than its cache
 * reached in time (504 with cause `ResourceVersionTooLarge`).
 */
export function isResourceVersionUnavailable(err: unknown): boolean {
  if (isGone(err)) return true;
  const status = statusBody(err);
  const causes = (status?.details as { readonly causes?: ReadonlyArray<{ readonly reason?: string }> } | undefined)?.causes;
  if (causes?.some((cause) => cause.reason === 'ResourceVersionTooLarge')) return true;
  return /too large resource version/i.test(status?.message ?? (err instanceof Error ? err.message : ''));
}

/** A streaming list the server refused as a bad request: WatchList (`sendInitialEvents`) is off or unknown there. */
function isStreamingRefused(err: unknown): boolean {
  const code = statusCode(err);
  return code === HTTP_BAD_REQUEST || code === HTTP_UNPROCESSABLE;
}

const HTTP_BAD_REQUEST = 400;
const HTTP_UNPROCESSABLE = 422;

export interface KubeListerWatcherOptions {
  readonly client: KubeClient;
  readonly type: ResourceType;
  /** Restrict to one namespace (namespaced types only). Default: all namespaces. */
  readonly namespace?: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  /**
   * Applied to every object before it is cached. Default: drop `metadata.managedFields`, which
   * is often the largest part of an object and never needed by a controller.
   */
  readonly transform?: (obj: KubeObject) => KubeObject;
  /**
   * Ask the server for metadata only (`PartialObjectMetadata`): spec and status are never sent,
   * parsed or held, which is most of a pod. Objects still get the type's apiVersion and kind.
   */
  readonly metadataOnly?: boolean;
  /** Called for each watch line that was not a watch event (see watch-lines.ts). */
  readonly onMalformedLine?: (excerpt: string) => void;
}

/** Accept headers of metadata-only lists and watches (the API server's `as=` content negotiation). */
const METADATA_LIST_ACCEPT = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, application/json';
const METADATA_WATCH_ACCEPT = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1, application/json';
/** Annotation of the bookmark that ends a streaming list's initial events. */
export const INITIAL_EVENTS_END_ANNOTATION = 'k8s.io/initial-events-end';

/** Lists and watches one resource type through a {@link KubeClient}. */
export class KubeListerWatcher<T extends KubeObject = KubeObject> implements ListerWatcher<T> {
  private readonly opts: KubeListerWatcherOptions;
  private readonly path: string;
  private readonly apiVersion: string;

  constructor(options: KubeListerWatcherOptions) {
    this.opts = options;
    this.path = collectionPath(options.type, options.namespace);
    this.apiVersion = apiVersionOf(options.type);
  }

  async list(options: { limit: number; continueToken?: string; resourceVersion?: string; signal: AbortSignal }): Promise<ListPage<T>> {
    const body = await this.opts.client.json<{ metadata: { resourceVersion: string; continue?: string }; items: KubeObject[] | null }>(this.path, {
      query: {
        limit: options.limit,
        continue: options.continueToken,
        resourceVersion: options.resourceVersion || undefined,
        resourceVersionMatch: options.resourceVersion ? 'NotOlderThan' : undefined,
        labelSelector: this.opts.labelSelector,
        fieldSelector: this.opts.fieldSelector,
      },
      ...(this.opts.metadataOnly ? { accept: METADATA_LIST_ACCEPT } : {}),
      signal: options.signal,
      timeoutMs: 60_000,
    });
    return {
      // List items carry no apiVersion/kind; set them so cached objects are self-describing. An
      // empty PartialObjectMetadataList comes with `items: null` (Go's nil slice).
      items: (body.items ?? []).map((item) => this.prepare(item)),
      resourceVersion: body.metadata.resourceVersion,
      ...(body.metadata.continue ? { continueToken: body.metadata.continue } : {}),
    };
  }

  async watch(
    options: { resourceVersion: string; timeoutSeconds: number; idleTimeoutMs: number; signal: AbortSignal; sendInitialEvents?: boolean },
    onEvent: (event: WatchEvent<T>) => void,
  ): Promise<void> {
    await this.opts.client.watch(
      this.path,
      {
        resourceVersion: options.resourceVersion || undefined,
        allowWatchBookmarks: true,
        timeoutSeconds: options.timeoutSeconds,
        labelSelector: this.opts.labelSelector,
        fieldSelector: this.opts.fieldSelector,
        // A streaming list must say NotOlderThan (the API server refuses it otherwise).
        ...(options.sendInitialEvents ? { sendInitialEvents: true, resourceVersionMatch: 'NotOlderThan' } : {}),
      },
      (raw) => {
        const object = raw.object as KubeObject & { code?: number; message?: string };
        switch (raw.type) {
          case 'ADDED':
          case 'MODIFIED':
          case 'DELETED':
            onEvent({ type: raw.type, object: this.prepare(object) });
            break;
          case 'BOOKMARK':
            onEvent({
              type: 'BOOKMARK',
              resourceVersion: object.metadata?.resourceVersion ?? '',
              ...(object.metadata?.annotations?.[INITIAL_EVENTS_END_ANNOTATION] === 'true' ? { initialEventsEnd: true } : {}),
            });
            break;
          case 'ERROR':
            onEvent({ type: 'ERROR', code: object.code ?? 0, message: object.message ?? 'unknown watch error' });
            break;
          default:
            // Unknown event types are ignored; the client counts lines it could not parse at all.
            break;
        }
      },
      {
        signal: options.signal,
        idleTimeoutMs: options.idleTimeoutMs,
        ...(this.opts.onMalformedLine ? { onMalformedLine: this.opts.onMalformedLine } : {}),
        ...(this.opts.metadataOnly ? { accept: METADATA_WATCH_ACCEPT } : {}),
      },
    );
  }

  private prepare(obj: KubeObject): T {
    if (this.opts.metadataOnly) {
      // PartialObjectMetadata says so in its apiVersion and kind; the cache holds the type's.
      obj.apiVersion = this.apiVersion;
      obj.kind = this.opts.type.kind;
    }
    obj.apiVersion ??= this.apiVersion;
    obj.kind ??= this.opts.type.kind;
    if (this.opts.transform) return this.opts.transform(obj) as T;
    if (obj.metadata?.managedFields) delete obj.metadata.managedFields;
    return obj as T;
  }
}
