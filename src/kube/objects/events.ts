/**
 * Records `events.k8s.io/v1` Events about the objects Crowsnest manages, so `kubectl describe`
 * shows users what the operator did and why.
 *
 * Recording is fire-and-forget: an Event is a courtesy to humans, and a reconciler must never fail
 * or slow down because one could not be written. Failures are logged and counted instead.
 *
 * Repeats are aggregated the way Kubernetes EventSeries intend: an occurrence that matches an Event
 * recorded within the series window does not create a new object but bumps `series.count` and
 * `series.lastObservedTime` of the existing one. A reconciler that reports the same problem on
 * every retry therefore produces one Event with a count, not one object per retry.
 *
 * The aggregation ({@link EventSeriesCache}) is separate from the writes ({@link EventSink}) so both
 * are testable without an API server.
 */
import { Counter, type Registry } from 'prom-client';
import type { KubeClient } from '../client/client.ts';
import { realClock, type Clock } from '../clock.ts';
import { silentLogger, type Logger } from '../logger-type.ts';
import { describeError, isNotFound } from '../client/errors.ts';
import { REPORTING_CONTROLLER } from './labels.ts';
import { microTime } from './microtime.ts';
import type { ObjectMeta } from './resources.ts';

/** Occurrences closer than this to the previous one of the same series update it. 10 minutes. */
export const DEFAULT_SERIES_WINDOW_MS = 10 * 60 * 1000;
/** Most series remembered for aggregation; the least recently seen is forgotten first. */
export const DEFAULT_MAX_SERIES = 4096;
/** The API server rejects an Event whose `note` exceeds 1 kB (counted in UTF-8 bytes). */
export const NOTE_MAX_BYTES = 1024;
/** Events of cluster-scoped objects are stored in this namespace (the API requires one). */
export const CLUSTER_SCOPED_EVENT_NAMESPACE = 'default';

const EVENT_API_VERSION = 'events.k8s.io/v1';
const EVENT_KIND = 'Event';
const NANOS_PER_MS = 1_000_000n;
/** Object names are DNS subdomains: at most 253 characters. */
const MAX_NAME_LENGTH = 253;
const TRUNCATION_MARK = '...';
const EVENTS_FAILED_METRIC = 'crowsnest_events_failed_total';

/** An `events.k8s.io/v1` Event, as far as we write it. Times are MicroTime strings. */
export interface EventObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  eventTime?: string;
  series?: { count: number; lastObservedTime: string };
  reportingController?: string;
  reportingInstance?: string;
  regarding?: { apiVersion?: string; kind?: string; namespace?: string; name?: string; uid?: string };
  type?: string;
  reason?: string;
  action?: string;
  note?: string;
}

/** The object an Event is about. `namespace` is absent for cluster-scoped objects. */
export interface RegardingObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace?: string;
  readonly name: string;
  readonly uid?: string;
}

/** `Normal` for expected progress, `Warning` for anything a human may need to act on. */
export type EventType = 'Normal' | 'Warning';

/** The namespace an Event about `regarding` must live in: the object's own, or `default` for cluster-scoped ones. */
export function eventNamespace(regarding: RegardingObject): string {
  return regarding.namespace || CLUSTER_SCOPED_EVENT_NAMESPACE;
}

/**
 * Event name as client-go builds it: `<regarding name>.<hex of a nanosecond timestamp>`. The
 * regarding name is shortened when needed to keep the result a valid object name.
 */
export function eventName(regardingName: string, timestampNanos: bigint): string {
  const suffix = `.${timestampNanos.toString(16)}`;
  const room = MAX_NAME_LENGTH - suffix.length;
  if (regardingName.length <= room) return `${regardingName}${suffix}`;
  // A DNS subdomain label must end alphanumeric; the cut can leave a trailing '-' or '.'.
  const prefix = regardingName.slice(0, room).replace(/[^A-Za-z0-9]+$/, '');
  return `${prefix}${suffix}`;
}

/**
 * The identity of a series: occurrences with the same key aggregate into one Event. Besides
 * regarding, reason and note, type and action are part of it, so a Warning never increments a
 * Normal and one action never counts as another.
 */
export function seriesKey(regarding: RegardingObject, type: EventType, reason: string, action: string, note: string): string {
  return JSON.stringify([
    regarding.apiVersion,
    regarding.kind,
    regarding.namespace ?? '',
    regarding.name,
    regarding.uid ?? '',
    type,
    reason,
    action,
    note,
  ]);
}

/** Shortens `note` to at most {@link NOTE_MAX_BYTES} UTF-8 bytes, marking the cut with `...`. */
export function truncateNote(note: string): string {
  if (Buffer.byteLength(note, 'utf8') <= NOTE_MAX_BYTES) return note;
  const budget = NOTE_MAX_BYTES - Buffer.byteLength(TRUNCATION_MARK, 'utf8');
  let out = '';
  let used = 0;
  // Iterate by code point so a multi-byte character is never split.
  for (const char of note) {
    const size = Buffer.byteLength(char, 'utf8');
    if (used + size > budget) break;
    out += char;
    used += size;
  }
  return out + TRUNCATION_MARK;
}

// ---------------------------------------------------------------------------------------------
// Aggregation

/** One series: the Event object that stands for it and how often it occurred. */
export interface SeriesEntry {
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  /** Occurrences so far, including the first. */
  count: number;
  /** Our clock (epoch ms) at the first occurrence; the Event's `eventTime`. */
  readonly firstObservedMs: number;
  /** Our clock (epoch ms) at the latest occurrence; `series.lastObservedTime`. */
  lastObservedMs: number;
}

/**
 * What an occurrence means: `first` of a series (create an Event for `entry`), or a `repeat`
 * (update the series of the Event `entry` names; `entry.count` is already incremented).
 */
export type Occurrence = { readonly kind: 'first'; readonly entry: SeriesEntry } | { readonly kind: 'repeat'; readonly entry: SeriesEntry };

/** Options of {@link EventSeriesCache}. */
export interface EventSeriesCacheOptions {
  /** See {@link DEFAULT_SERIES_WINDOW_MS}. */
  readonly windowMs?: number;
  /** See {@link DEFAULT_MAX_SERIES}. */
  readonly maxEntries?: number;
}

/**
 * Remembers recent series, least recently seen first, bounded by `maxEntries`. The window slides:
 * it is measured from the latest occurrence, so a series stays one Event while it keeps recurring
 * (as EventSeries are meant to), and a quiet spell longer than the window starts a new Event.
 */
export class EventSeriesCache {
  private readonly windowMs: number;
  private readonly maxEntries: number;
  /** Map iteration order is insertion order: re-inserting on every hit makes the first key the LRU one. */
  private readonly entries = new Map<string, SeriesEntry>();

  constructor(options: EventSeriesCacheOptions = {}) {
    this.windowMs = options.windowMs ?? DEFAULT_SERIES_WINDOW_MS;
    this.maxEntries = options.maxEntries ?? DEFAULT_MAX_SERIES;
    if (!(this.maxEntries >= 1)) throw new Error(`EventSeriesCache: maxEntries must be at least 1 (got ${this.maxEntries})`);
  }

  /**
   * Accounts one occurrence of series `key` at `nowMs`. For a new series, `newEvent` supplies the
   * namespace and name of the Event that will stand for it.
   */
  record(key: string, nowMs: number, newEvent: () => { readonly namespace: string; readonly name: string }): Occurrence {
    const existing = this.entries.get(key);
    if (existing) {
      this.entries.delete(key);
      if (nowMs - existing.lastObservedMs <= this.windowMs) {
        existing.count += 1;
        existing.lastObservedMs = Math.max(existing.lastObservedMs, nowMs);
        this.entries.set(key, existing);
        return { kind: 'repeat', entry: existing };
      }
    }
    const { namespace, name } = newEvent();
    const entry: SeriesEntry = { key, namespace, name, count: 1, firstObservedMs: nowMs, lastObservedMs: nowMs };
    this.entries.set(key, entry);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    return { kind: 'first', entry };
  }

  /** Drops `entry` (if still current), so the next occurrence of its series creates a new Event. */
  forget(entry: SeriesEntry): void {
    if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key);
  }

  /** Number of series remembered. */
  get size(): number {
    return this.entries.size;
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

/** Where Events go; {@link eventsApiSink} writes them to the API server, tests pass a fake. */
export interface EventSink {
  /** Creates `event` (its namespace is in `event.metadata`). */
  create(event: EventObject): Promise<unknown>;
  /** Sets `series` of the existing Event `namespace/name`. Rejects with a 404 error if it is gone. */
  updateSeries(namespace: string, name: string, series: { readonly count: number; readonly lastObservedMs: number }): Promise<unknown>;
}

/** The {@link KubeClient} call {@link eventsApiSink} makes. */
export type EventsApi = Pick<KubeClient, 'json'>;

const EVENTS_PATH = '/apis/events.k8s.io/v1/namespaces';

/** An {@link EventSink} on the events.k8s.io/v1 API. */
export function eventsApiSink(api: EventsApi): EventSink {
  return {
    create: (event) =>
      api.json(`${EVENTS_PATH}/${encodeURIComponent(event.metadata?.namespace ?? CLUSTER_SCOPED_EVENT_NAMESPACE)}/events`, { method: 'POST', body: event }),
    updateSeries: (namespace, name, series) =>
      // A JSON Patch: `add` sets /series whether or not it exists.
      api.json(`${EVENTS_PATH}/${encodeURIComponent(namespace)}/events/${encodeURIComponent(name)}`, {
        method: 'PATCH',
        contentType: 'application/json-patch+json',
        body: [{ op: 'add', path: '/series', value: { count: series.count, lastObservedTime: microTime(series.lastObservedMs) } }],
      }),
  };
}

/** Options of {@link EventRecorder}. Exactly one of `client` and `sink`. */
export type EventRecorderOptions = EventRecorderCommonOptions &
  (
    | { readonly client: EventsApi; readonly sink?: undefined }
    | { readonly sink: EventSink; readonly client?: undefined }
  );

export interface EventRecorderCommonOptions {
  /** `reportingController` of every Event. Default {@link REPORTING_CONTROLLER}. */
  readonly reportingController?: string;
  /** `reportingInstance`: which replica reported (the pod name is the usual choice). At most 128 characters. */
  readonly reportingInstance: string;
  /** See {@link DEFAULT_SERIES_WINDOW_MS}. */
  readonly seriesWindowMs?: number;
  /** See {@link DEFAULT_MAX_SERIES}. */
  readonly maxSeries?: number;
  /** Default {@link realClock}. */
  readonly clock?: Clock;
  /** Default: {@link silentLogger}. */
  readonly logger?: Logger;
  /** Registry for `crowsnest_events_failed_total`. Default: the metric is kept but not exported. */
  readonly registry?: Registry;
}

/** What an Event says, fixed for its series. */
interface EventContent {
  readonly regarding: RegardingObject;
  readonly type: EventType;
  readonly reason: string;
  readonly action: string;
  readonly note: string;
}

/** Write progress of one series; at most one write per series is in flight. */
interface SeriesWrites {
  readonly content: EventContent;
  /** The Event object exists on the server. */
  created: boolean;
  /** An occurrence happened that the server has not seen yet. */
  dirty: boolean;
  writing: boolean;
}

/**
 * Records Events, aggregating repeats into series. `event()` returns at once and never throws;
 * writes happen in the background, one at a time per series: occurrences arriving while a write
 * is in flight are folded into a single follow-up update carrying the latest count.
 */
export class EventRecorder {
  private readonly sink: EventSink;
  private readonly reportingController: string;
  private readonly reportingInstance: string;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly cache: EventSeriesCache;
  private readonly failures: Counter<'operation'>;
  private readonly writes = new WeakMap<SeriesEntry, SeriesWrites>();
  private readonly inFlight = new Set<Promise<void>>();
  /** Last timestamp used in a name; names stay unique when several Events share a millisecond. */
  private lastNameNanos = 0n;

  constructor(options: EventRecorderOptions) {
    if (options.sink) this.sink = options.sink;
    else if (options.client) this.sink = eventsApiSink(options.client);
    else throw new Error('EventRecorder: client or sink is required');
    if (!options.reportingInstance) throw new Error('EventRecorder: reportingInstance is required');
    this.reportingController = options.reportingController ?? REPORTING_CONTROLLER;
    this.reportingInstance = options.reportingInstance;
    this.clock = options.clock ?? realClock;
    const logger = options.logger ?? silentLogger;
    this.log = logger.child?.({ component: 'event-recorder' }) ?? logger;
    this.cache = new EventSeriesCache({ windowMs: options.seriesWindowMs, maxEntries: options.maxSeries });
    this.failures = eventsFailedCounter(options.registry);
  }

  /**
   * Records that `action` happened to `regarding` (or was attempted) for `reason`, with a
   * human-readable `note` (cut to 1 kB). `reason` is UpperCamelCase (`RoleUpdated`), `action` a
   * verb phrase (`Reconcile`). Returns immediately; never throws.
   */
  event(regarding: RegardingObject, type: EventType, reason: string, action: string, note: string): void {
    try {
      const content: EventContent = { regarding, type, reason, action, note: truncateNote(note) };
      const nowMs = this.clock.now();
      const occurrence = this.cache.record(seriesKey(regarding, type, reason, action, content.note), nowMs, () => ({
        namespace: eventNamespace(regarding),
        name: eventName(regarding.name, this.nextNameNanos(nowMs)),
      }));
      const { entry } = occurrence;
      let writes = this.writes.get(entry);
      if (!writes) {
        writes = { content, created: false, dirty: false, writing: false };
        this.writes.set(entry, writes);
      }
      writes.dirty = true;
      if (!writes.writing) this.track(this.drain(entry, writes));
    } catch (err) {
      this.fail('record', err, { reason });
    }
  }

  /** Resolves when every write started so far has finished; for shutdown and tests. */
  async flush(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
  }

  /** Number of series currently remembered for aggregation. */
  get trackedSeries(): number {
    return this.cache.size;
  }

  /** Brings the server up to date with `entry`, looping while new occurrences arrive. Never rejects. */
  private async drain(entry: SeriesEntry, writes: SeriesWrites): Promise<void> {
    writes.writing = true;
    try {
      while (writes.dirty) {
        writes.dirty = false;
        if (!writes.created) {
          try {
            // Repeats that arrived before the create went out ride along in its series.
            await this.sink.create(this.buildEvent(entry, writes.content));
            writes.created = true;
          } catch (err) {
            this.fail('create', err, { reason: writes.content.reason });
            // Start over on the next occurrence rather than updating an Event that does not exist.
            this.cache.forget(entry);
            return;
          }
          continue;
        }
        try {
          await this.sink.updateSeries(entry.namespace, entry.name, { count: entry.count, lastObservedMs: entry.lastObservedMs });
        } catch (err) {
          if (isNotFound(err)) {
            // The Event expired (the API server keeps Events for an hour by default) or was
            // deleted: recreate it under the same name, carrying the series so far.
            writes.created = false;
            writes.dirty = true;
            continue;
          }
          // Keep the series: the next occurrence retries with the then-current count.
          this.fail('update', err, { reason: writes.content.reason });
        }
      }
    } finally {
      writes.writing = false;
    }
  }

  private buildEvent(entry: SeriesEntry, content: EventContent): EventObject {
    const { regarding } = content;
    return {
      apiVersion: EVENT_API_VERSION,
      kind: EVENT_KIND,
      metadata: { namespace: entry.namespace, name: entry.name },
      // MicroTime, not Date: the API server rejects timestamps without six fractional digits.
      eventTime: microTime(entry.firstObservedMs),
      series: entry.count >= 2 ? { count: entry.count, lastObservedTime: microTime(entry.lastObservedMs) } : undefined,
      reportingController: this.reportingController,
      reportingInstance: this.reportingInstance,
      regarding: {
        apiVersion: regarding.apiVersion,
        kind: regarding.kind,
        namespace: regarding.namespace,
        name: regarding.name,
        uid: regarding.uid,
      },
      type: content.type,
      reason: content.reason,
      action: content.action,
      note: content.note,
    };
  }

  private nextNameNanos(nowMs: number): bigint {
    const candidate = BigInt(Math.trunc(nowMs)) * NANOS_PER_MS;
    this.lastNameNanos = candidate > this.lastNameNanos ? candidate : this.lastNameNanos + 1n;
    return this.lastNameNanos;
  }

  private track(write: Promise<void>): void {
    // drain() handles its own errors; the catch only keeps a bug there from becoming an unhandled rejection.
    const tracked: Promise<void> = write
      .catch((err: unknown) => this.fail('record', err, { reason: 'unknown' }))
      .finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  private fail(operation: 'record' | 'create' | 'update', err: unknown, context: { readonly reason: string }): void {
    this.failures.inc({ operation });
    this.log.warn({ operation, reason: context.reason, err: describeError(err) }, 'failed to record event');
  }
}

function eventsFailedCounter(registry: Registry | undefined): Counter<'operation'> {
  const existing = registry?.getSingleMetric(EVENTS_FAILED_METRIC);
  if (existing) return existing as Counter<'operation'>;
  return new Counter({
    name: EVENTS_FAILED_METRIC,
    help: 'Events that could not be recorded, by operation (record: building it, create, update: of the series).',
    labelNames: ['operation'],
    registers: registry ? [registry] : [],
  });
}
