/**
 * One inventory run: discover → select types → list each type (paged, bounded concurrency) →
 * redact → stream into the sink → summary.
 *
 * Sinks:
 * - `dir`: a snapshot file in the report directory (see `snapshot-writer.ts`);
 * - `endpoint`: the snapshot is spooled to the report directory as gzip NDJSON while listing,
 *   then uploaded in chunks; on success the spool file is removed, and if the endpoint stays
 *   down it is kept as an ordinary snapshot, so nothing is lost and the run reports failure;
 * - `stdout`: `--dry-run`, the seed's `{"objects":[…]}` document on standard output.
 *
 * Memory holds one page per type being listed plus one upload chunk, whatever the cluster size.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { KubeClient } from '../kube/client/client.ts';
import { realClock, type Clock } from '../kube/clock.ts';
import type { KubeObject } from '../kube/objects/resources.ts';
import type { Logger } from '../kube/logger-type.ts';
import { mapConcurrent } from '../kube/concurrency.ts';
import { describeError } from '../kube/client/errors.ts';
import { createFileExclusively, prepareReportDir, writeFileAtomically } from '../report-files.ts';
import { discoverTypes } from './discovery.ts';
import { listType, RequestLimiter } from './lister.ts';
import { redactObject, type RedactionOptions } from './redact.ts';
import { grantCustomResourceAccess } from './custom-resource-access.ts';
import { resendKeptSnapshots } from './resend.ts';
import { RUN_SUMMARY_API_VERSION, RUN_SUMMARY_KIND, type RunResult, type RunSummary } from './summary.ts';
import {
  pruneSnapshots,
  type PruneResult,
  SnapshotEncoder,
  SnapshotFileWriter,
  snapshotStem,
  type RetentionPolicy,
} from './snapshot-writer.ts';
import type { SnapshotFormat } from './snapshot-format.ts';
import {
  checkSelectors,
  CUSTOM_RESOURCES_SELECTOR,
  selectTypes,
  typeName,
  type CollectableType,
  type TypeSelectors,
  type UnknownSelector,
} from './types.ts';
import { uploadSnapshot, UploadError, type EndpointOptions } from './upload.ts';

/** Where a run's objects go. */
export type SinkOptions =
  | { readonly kind: 'dir'; readonly dir: string; readonly format: SnapshotFormat; readonly gzip: boolean; readonly retention: RetentionPolicy }
  | {
      readonly kind: 'endpoint';
      /** Spool and fallback directory. */
      readonly dir: string;
      readonly retention: RetentionPolicy;
      readonly endpoint: Omit<EndpointOptions, 'clusterId' | 'runId' | 'signal' | 'clock' | 'onRetry'>;
    }
  | { readonly kind: 'stdout'; readonly write: (text: string) => void | Promise<void> };

export interface CollectOptions {
  readonly clusterId: string;
  readonly runId: string;
  readonly selectors: TypeSelectors;
  readonly namespaces?: readonly string[];
  readonly ignoreNamespaces: readonly string[];
  readonly labelSelector?: string;
  readonly pageSize: number;
  /** Types listed at once. */
  readonly concurrency: number;
  readonly qps: number;
  readonly burst: number;
  /** Objects whose JSON is larger than this are dropped (and reported), in bytes; 0 = no limit. */
  readonly maxObjectBytes: number;
  readonly redaction: RedactionOptions;
  /**
   * A ClusterRole this run may rewrite to read exactly the custom resource types it collects
   * (the chart's way to collect them without `*` on `*`; see custom-resource-access.ts).
   */
  readonly customResourcesClusterRole?: string;
  readonly sink: SinkOptions;
  readonly logger: Logger;
  readonly signal: AbortSignal;
  readonly clock?: Clock;
  /** Test seam, see `ListOptions.afterPage`. */
  readonly afterPage?: (type: CollectableType, pageNumber: number) => Promise<void>;
  /** Called as the run enters each phase, so an interruption can be reported accurately. */
  readonly onPhase?: (phase: RunPhase) => void;
}

/**
 * Where a run is: `collecting` (discovery and listing: an interruption leaves no snapshot),
 * `delivering` (the snapshot is complete and is being committed or uploaded), `finishing`
 * (delivered, or kept after a failed upload; the summary is written and old runs pruned).
 */
export type RunPhase = 'collecting' | 'delivering' | 'finishing';

/** What SIGTERM/SIGINT does to a run in `phase`, for the log line written when it arrives. */
export function interruptMessage(phase: RunPhase, sink: SinkOptions['kind']): string {
  switch (phase) {
    case 'collecting':
      return sink === 'stdout'
        ? 'interrupted: stopping; the dry-run output is incomplete'
        : 'interrupted: stopping; an incomplete snapshot is not kept';
    case 'delivering':
      return sink === 'endpoint'
        ? 'interrupted: stopping the upload; the complete snapshot is kept in the report directory'
        : 'interrupted: the snapshot is complete; finishing it, then stopping';
    case 'finishing':
      return 'interrupted: the snapshot is already written or sent; writing the run summary, then stopping';
  }
}

/**
 * The `skippedTypes` entry for custom resources that could not be collected: they were asked for
 * by the `customresources` keyword, but listing CustomResourceDefinitions failed, so no type is
 * known to be CRD-served and the keyword matched nothing. `*` collects them anyway (it needs no
 * CRD list), and a removal means they were not wanted.
 */
export function customResourcesSkip(
  selectors: TypeSelectors,
  customResourcesUnknown: string | undefined,
): { type: string; reason: string } | undefined {
  if (customResourcesUnknown === undefined) return undefined;
  const wanted = [...selectors.base, ...selectors.add];
  if (!wanted.includes(CUSTOM_RESOURCES_SELECTOR) || wanted.includes('*')) return undefined;
  if (selectors.remove.includes(CUSTOM_RESOURCES_SELECTOR) || selectors.remove.includes('*')) return undefined;
  return { type: CUSTOM_RESOURCES_SELECTOR, reason: customResourcesUnknown };
}

/**
 * Selectors the user gave match nothing this cluster serves: nothing was listed, sent or written.
 * The CLI names the flag each came from and exits 2.
 */
export class UnknownTypeError extends Error {
  readonly unknown: readonly UnknownSelector[];

  constructor(unknown: readonly UnknownSelector[]) {
    super(unknown.map((u) => `"${u.selector}" matches no resource type this cluster serves${u.nearest ? ` (nearest: ${u.nearest})` : ''}`).join('; '));
    this.name = 'UnknownTypeError';
    this.unknown = unknown;
  }
}

/** Exit codes of `inventory collect`, by result. */
export const EXIT_CODE_BY_RESULT: Readonly<Record<RunResult, number>> = { success: 0, failure: 1, partial: 3 };

/** Dropped objects listed by name in the summary; the rest are only counted. */
const MAX_DROPPED_LISTED = 100;

/**
 * Runs one collection. Cluster-level failures (no API server, the core group not discoverable)
 * throw; everything narrower ends up in the summary.
 */
export async function collectInventory(client: KubeClient, options: CollectOptions): Promise<RunSummary> {
  const clock = options.clock ?? realClock;
  const started = new Date(clock.now());
  const { logger } = options;
  const summary: RunSummary = {
    apiVersion: RUN_SUMMARY_API_VERSION,
    kind: RUN_SUMMARY_KIND,
    clusterId: options.clusterId,
    runId: options.runId,
    startedAt: started.toISOString(),
    finishedAt: '',
    durationMs: 0,
    result: 'success',
    objects: 0,
    rawBytes: 0,
    types: [],
    skippedTypes: [],
    failedGroups: [],
    unmatchedSelectors: [],
    dropped: { count: 0, objects: [] },
    redaction: { enabled: options.redaction.enabled, notes: 0 },
    sink: { kind: options.sink.kind, delivered: false },
    warnings: [],
  };

  // Before any work: a report directory that cannot be written would only fail the run once
  // everything was listed.
  if (options.sink.kind !== 'stdout') await prepareReportDir(options.sink.dir);

  options.onPhase?.('collecting');
  const discovery = await discoverTypes(client, options.signal, clock);
  summary.failedGroups.push(...discovery.failedGroups);
  for (const group of discovery.failedGroups) logger.warn({ groupVersion: group.groupVersion, reason: group.reason }, 'API group skipped: discovery failed');
  const check = checkSelectors(discovery.types, options.selectors, discovery.failedGroups.map((group) => group.groupVersion.split('/')[0]!));
  if (check.unknown.length) throw new UnknownTypeError(check.unknown);
  for (const selector of check.maybeInFailedGroups) {
    summary.skippedTypes.push({ type: selector, reason: 'matches no type served now; an API group whose discovery failed may serve it' });
  }
  const customSkip = customResourcesSkip(options.selectors, discovery.customResourcesUnknown);
  if (customSkip) {
    summary.skippedTypes.push(customSkip);
    logger.warn({ type: customSkip.type, reason: customSkip.reason }, 'custom resources not collected');
  } else if (discovery.customResourcesUnknown) {
    summary.warnings.push(discovery.customResourcesUnknown);
  }
  const selection = selectTypes(discovery.types, options.selectors);
  summary.unmatchedSelectors.push(...selection.unmatched.filter((selector) => !check.maybeInFailedGroups.includes(selector)));
  if (summary.unmatchedSelectors.length) logger.info({ selectors: summary.unmatchedSelectors }, 'resource types of the default set that this cluster does not serve');

  if (options.sink.kind === 'endpoint') {
    // Before this run's own snapshot joins them: what earlier runs could not deliver goes first.
    summary.resent = await resendKeptSnapshots({
      dir: options.sink.dir,
      clusterId: options.clusterId,
      endpoint: options.sink.endpoint,
      signal: options.signal,
      logger,
      ...(options.clock ? { clock: options.clock } : {}),
    });
  }
  if (options.customResourcesClusterRole) {
    const grant = await grantCustomResourceAccess(client, selection.selected, { clusterRole: options.customResourcesClusterRole, signal: options.signal, clock, logger });
    if (grant.error) summary.warnings.push(grant.error);
  }
  logger.info({ types: selection.selected.length, discovered: discovery.types.length }, 'collecting');

  const sink = await openSink(options, started);
  const drop = (type: CollectableType, object: KubeObject, reason: string): void => {
    summary.dropped.count++;
    if (summary.dropped.objects.length < MAX_DROPPED_LISTED) {
      summary.dropped.objects.push({ type: typeName(type), namespace: object.metadata?.namespace, name: object.metadata?.name, reason });
    }
    logger.warn({ type: typeName(type), namespace: object.metadata?.namespace, name: object.metadata?.name, reason }, 'object dropped');
  };

  const limiter = new RequestLimiter(options.qps, options.burst, clock);
  try {
    const results = await mapConcurrent(selection.selected, options.concurrency, async (type) => {
      const result = await listType(
        client,
        type,
        {
          pageSize: options.pageSize,
          ...(options.labelSelector ? { labelSelector: options.labelSelector } : {}),
          ...(options.namespaces ? { namespaces: options.namespaces } : {}),
          ignoreNamespaces: options.ignoreNamespaces,
          limiter,
          signal: options.signal,
          clock,
          ...(options.afterPage ? { afterPage: options.afterPage } : {}),
        },
        async (object) => {
          let redacted: KubeObject;
          try {
            const outcome = redactObject(object, options.redaction);
            redacted = outcome.object;
            for (const note of outcome.notes) {
              summary.redaction.notes++;
              logger.warn({ type: typeName(type), namespace: object.metadata?.namespace, name: object.metadata?.name, note }, 'redaction note');
            }
          } catch (err) {
            // Never ship what could not be redacted.
            drop(type, object, `redaction failed: ${err instanceof Error ? err.message : String(err)}`);
            return false;
          }
          if (options.maxObjectBytes > 0) {
            const size = Buffer.byteLength(JSON.stringify(redacted));
            if (size > options.maxObjectBytes) {
              drop(type, object, `object is ${size} bytes, over --max-object-size ${options.maxObjectBytes}`);
              return false;
            }
          }
          await sink.write(redacted);
          return true;
        },
      );
      if (result.error) {
        summary.skippedTypes.push({ type: result.type, reason: result.error });
        logger.warn({ type: result.type, reason: result.error, objectsBeforeFailure: result.objects }, 'type not collected completely');
      } else {
        logger.debug({ type: result.type, objects: result.objects, pages: result.pages }, 'type collected');
      }
      return result;
    });
    summary.types.push(...results);
  } catch (err) {
    await sink.abort();
    throw err;
  }

  summary.objects = summary.types.reduce((sum, type) => sum + type.objects, 0);
  options.onPhase?.('delivering');
  await sink.finish(summary);
  summary.skippedTypes.sort((a, b) => a.type.localeCompare(b.type));

  const finished = new Date(clock.now());
  summary.finishedAt = finished.toISOString();
  summary.durationMs = finished.getTime() - started.getTime();
  summary.result = !summary.sink.delivered
    ? 'failure'
    : summary.skippedTypes.length || summary.failedGroups.length || summary.dropped.count
      ? 'partial'
      : 'success';
  // The snapshot is delivered (or kept): whatever goes wrong from here is reported, and changes
  // neither the result nor the exit code.
  options.onPhase?.('finishing');
  let summaryWritten = false;
  try {
    await sink.writeSummary(summary);
    summaryWritten = true;
  } catch (err) {
    const reason = describeError(err);
    summary.warnings.push(`the run summary could not be written: ${reason}`);
    logger.error({ reason }, 'run summary not written (the run itself is not affected)');
  }
  let summaryChanged = false;
  try {
    const pruned = await sink.prune();
    if (pruned && options.sink.kind === 'endpoint') {
      summary.retention = { undeliveredKept: pruned.undeliveredKept, undeliveredDeleted: pruned.undeliveredDeleted };
      summaryChanged = true;
    }
    const deliveredDeleted = pruned?.deleted.filter((name) => !pruned.undeliveredDeleted.includes(name)) ?? [];
    if (deliveredDeleted.length) logger.info({ deleted: deliveredDeleted }, 'retention: old snapshots removed');
    if (pruned?.undeliveredDeleted.length) {
      const warning = `retention: ${pruned.undeliveredDeleted.length} file(s) of snapshots never delivered were deleted, ` +
        `because more than --max-undelivered were kept: ${pruned.undeliveredDeleted.join(', ')}`;
      summary.warnings.push(warning);
      logger.warn({ deleted: pruned.undeliveredDeleted, kept: pruned.undeliveredKept }, 'retention: undelivered snapshots deleted (over --max-undelivered)');
    }
  } catch (err) {
    const reason = describeError(err);
    summary.warnings.push(`retention: removing old snapshots failed: ${reason}`);
    logger.error({ reason }, 'retention: removing old snapshots failed (the run itself is not affected)');
    summaryChanged = true;
  }
  // Best effort: let the summary on disk say what retention did too.
  if (summaryWritten && summaryChanged) await sink.writeSummary(summary).catch(() => {});
  return summary;
}

interface Sink {
  write(object: KubeObject): Promise<void>;
  /** Completes delivery and fills `summary.sink`, `summary.rawBytes`; never throws for delivery failures. */
  finish(summary: RunSummary): Promise<void>;
  writeSummary(summary: RunSummary): Promise<void>;
  /** Applies the retention policy; `undefined` when there is none (stdout). */
  prune(): Promise<PruneResult | undefined>;
  abort(): Promise<void>;
}

async function openSink(options: CollectOptions, started: Date): Promise<Sink> {
  const sink = options.sink;
  if (sink.kind === 'stdout') return stdoutSink(sink.write);
  const writer = await SnapshotFileWriter.open({
    dir: sink.dir,
    clusterId: options.clusterId,
    startedAt: started,
    runId: options.runId,
    // The endpoint reads the spool back line by line, so it is always gzip NDJSON.
    format: sink.kind === 'dir' ? sink.format : 'ndjson',
    gzip: sink.kind === 'dir' ? sink.gzip : true,
  });
  const summaryPath = join(sink.dir, `${snapshotStem(options.clusterId, started, options.runId)}.summary.json`);
  let summaryCreated = false;
  const writeSummary = async (summary: RunSummary): Promise<void> => {
    const text = `${JSON.stringify(summary, null, 2)}\n`;
    // Created exclusively (no run replaces another's), then rewritten in place by this run.
    if (summaryCreated) await writeFileAtomically(summaryPath, text, 0o640);
    else await createFileExclusively(summaryPath, text, 0o640);
    summaryCreated = true;
  };
  return {
    write: (object) => writer.write(object),
    abort: () => writer.abort(),
    async finish(summary) {
      if (sink.kind === 'endpoint') {
        // Written before the snapshot appears: whatever ends the run from here on (a crash, a
        // kill, a power loss), the snapshot is never without a summary saying it was not
        // delivered, which is what the next run resends and what retention keeps.
        const pending = structuredClone(summary);
        Object.assign(pending, { result: 'failure', finishedAt: new Date(clockOf(options).now()).toISOString() });
        Object.assign(pending.sink, { delivered: false, path: writer.path, url: redactUrl(sink.endpoint.url), error: 'the run ended before its upload finished' });
        await writeSummary(pending).catch((err: unknown) => {
          options.logger.warn({ reason: describeError(err) }, 'endpoint: the summary of the spooled snapshot could not be written before the upload');
        });
      }
      let committed: Awaited<ReturnType<typeof writer.commit>>;
      try {
        committed = await writer.commit();
      } catch (err) {
        // No snapshot after all: a summary saying one is kept would only mislead.
        if (summaryCreated) await rm(summaryPath, { force: true }).catch(() => {});
        summaryCreated = false;
        throw err;
      }
      summary.rawBytes = committed.rawBytes;
      if (sink.kind === 'dir') {
        Object.assign(summary.sink, { path: committed.path, delivered: true, storedBytes: committed.storedBytes });
        return;
      }
      summary.sink.url = redactUrl(sink.endpoint.url);
      try {
        const upload = await uploadSnapshot(committed.path, {
          ...sink.endpoint,
          clusterId: options.clusterId,
          runId: options.runId,
          signal: options.signal,
          ...(options.clock ? { clock: options.clock } : {}),
          onRetry: (info) => options.logger.warn(info, 'endpoint: retrying chunk'),
        });
        Object.assign(summary.sink, { delivered: true, chunks: upload.chunks, retries: upload.retries, storedBytes: upload.sentBytes });
      } catch (err) {
        // Interrupted mid-upload: the snapshot is complete, so it is kept like any undelivered one.
        const reason = options.signal.aborted && !(err instanceof UploadError)
          ? `upload interrupted${options.signal.reason instanceof Error ? ` (${options.signal.reason.message})` : ''}`
          : err instanceof Error ? err.message : String(err);
        Object.assign(summary.sink, { delivered: false, path: committed.path, storedBytes: committed.storedBytes, error: reason });
        options.logger.error({ reason, keptAt: committed.path }, 'endpoint: upload failed; the snapshot is kept in the report directory');
        return;
      }
      // Delivered: a spool that cannot be removed is worth a warning, not a failed run.
      try {
        await rm(committed.path, { force: true });
      } catch (err) {
        const reason = describeError(err);
        summary.warnings.push(`the uploaded snapshot's spool file ${committed.path} could not be removed: ${reason}`);
        options.logger.warn({ path: committed.path, reason }, 'endpoint: spool file not removed after the upload');
      }
    },
    writeSummary,
    prune: () => pruneSnapshots(sink.dir, options.clusterId, sink.retention, new Date()),
  };
}

function stdoutSink(write: (text: string) => void | Promise<void>): Sink {
  const encoder = new SnapshotEncoder('json');
  let rawBytes = 0;
  const out = async (text: string): Promise<void> => {
    rawBytes += Buffer.byteLength(text);
    await write(text);
  };
  let started = false;
  return {
    async write(object) {
      if (!started) {
        started = true;
        await out(encoder.begin());
      }
      await out(encoder.encode(object));
    },
    async finish(summary) {
      if (!started) await out(encoder.begin());
      await out(encoder.end());
      summary.rawBytes = rawBytes;
      summary.sink.delivered = true;
    },
    async writeSummary() {},
    prune() {
      return Promise.resolve(undefined);
    },
    async abort() {},
  };
}

function clockOf(options: CollectOptions): Clock {
  return options.clock ?? realClock;
}

/** `https://user:pw@host/path?token=x` → `https://host/path`: summaries and logs never hold credentials. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch {
    return '<invalid url>';
  }
}
