/**
 * Snapshots kept because the endpoint was down are sent again by the next endpoint run, oldest
 * first, under their own run ids (a receiver that already has a run by that id can drop it).
 * A kept snapshot is found through its run summary (`sink.kind: endpoint`, `delivered: false`,
 * `sink.path` still there). After delivery the file is removed and the summary says so.
 *
 * The first failure stops the round: an endpoint that is still down is not asked again per file,
 * and the new run's own upload will tell.
 */
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Clock } from '../kube/clock.ts';
import type { Logger } from '../kube/logger-type.ts';
import { compareByStamp, writeFileAtomically } from '../report-files.ts';
import { RUN_SUMMARY_KIND, type ResendResult, type RunSummary } from './summary.ts';
import { runFilePattern } from './snapshot-writer.ts';
import { uploadSnapshot, type EndpointOptions } from './upload.ts';

export interface ResendOptions {
  readonly dir: string;
  readonly clusterId: string;
  readonly endpoint: Omit<EndpointOptions, 'clusterId' | 'runId' | 'signal' | 'clock' | 'onRetry'>;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Kept snapshots sent per run at most, oldest first. Default 5. */
  readonly maxRuns?: number;
}

const DEFAULT_MAX_RUNS = 5;

/** Sends kept snapshots of `clusterId` found in `dir`; see the module comment. */
export async function resendKeptSnapshots(options: ResendOptions): Promise<ResendResult[]> {
  const pattern = runFilePattern(options.clusterId);
  /** A run file name → its time stamp when it is a summary, the only files this looks at. */
  const summaryStamp = (name: string): string | undefined => {
    const match = pattern.exec(name);
    return match && match[3] === undefined ? match[1] : undefined;
  };
  /** The spool of an endpoint run: always gzip NDJSON. */
  const isSpoolName = (name: string): boolean => {
    const match = pattern.exec(name);
    return match?.[3] === 'ndjson' && match[4] === '.gz';
  };
  const names = (await readdir(options.dir).catch(() => [] as string[]))
    .flatMap((name) => {
      const stamp = summaryStamp(name);
      return stamp === undefined ? [] : [{ name, stamp }];
    })
    .sort(compareByStamp)
    .map((entry) => entry.name);
  const kept: { summaryPath: string; summary: RunSummary; path: string }[] = [];
  for (const name of names) {
    const summaryPath = join(options.dir, name);
    let summary: RunSummary;
    try {
      summary = JSON.parse(await readFile(summaryPath, 'utf8')) as RunSummary;
    } catch {
      continue; // a summary we cannot read is left to retention
    }
    const path = summary.sink?.path;
    if (summary.kind !== RUN_SUMMARY_KIND || summary.sink.kind !== 'endpoint' || summary.sink.delivered || !path) continue;
    // Only this cluster's snapshot files in this directory: a summary is not a licence to send any file.
    if (resolve(dirname(path)) !== resolve(options.dir) || !isSpoolName(basename(path))) continue;
    if (!(await stat(path).then((info) => info.isFile(), () => false))) continue;
    kept.push({ summaryPath, summary, path });
  }

  const results: ResendResult[] = [];
  for (const { summaryPath, summary, path } of kept.slice(0, options.maxRuns ?? DEFAULT_MAX_RUNS)) {
    try {
      const upload = await uploadSnapshot(path, {
        ...options.endpoint,
        clusterId: options.clusterId,
        runId: summary.runId,
        signal: options.signal,
        ...(options.clock ? { clock: options.clock } : {}),
      });
      await rm(path, { force: true });
      Object.assign(summary.sink, { delivered: true, chunks: upload.chunks, retries: upload.retries, resentAt: new Date().toISOString() });
      delete summary.sink.path;
      delete summary.sink.error;
      summary.result = summary.skippedTypes.length || summary.failedGroups.length || summary.dropped.count ? 'partial' : 'success';
      await writeFileAtomically(summaryPath, `${JSON.stringify(summary, null, 2)}\n`, 0o640);
      options.logger.info({ runId: summary.runId, chunks: upload.chunks }, 'endpoint: kept snapshot re-sent');
      results.push({ runId: summary.runId, path, delivered: true, chunks: upload.chunks });
    } catch (err) {
      if (options.signal.aborted) throw err;
      const error = err instanceof Error ? err.message : String(err);
      options.logger.warn({ runId: summary.runId, reason: error }, 'endpoint: kept snapshot not re-sent; trying again next run');
      results.push({ runId: summary.runId, path, delivered: false, error });
      break;
    }
  }
  return results;
}

