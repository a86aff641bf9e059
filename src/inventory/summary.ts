/**
 * The run summary of `inventory collect`: a file format of its own, written beside each snapshot
 * (`<stem>.summary.json`) and printed at the end of a run. The collector writes it; the next
 * endpoint run reads it back to find kept snapshots to send again (`resend.ts`), and retention
 * reads it to tell delivered runs from undelivered ones (`snapshot-writer.ts`).
 *
 * Types only (and the constants that identify the format), so that every reader and the writer
 * depend on this module instead of on each other.
 */
import { REPORT_API_VERSION } from '../kube/objects/labels.ts';
import type { FailedGroup } from './discovery.ts';
import type { TypeListResult } from './lister.ts';

export const RUN_SUMMARY_API_VERSION = REPORT_API_VERSION;
export const RUN_SUMMARY_KIND = 'InventoryRunSummary';

/** Where a run's objects went: a snapshot file, an HTTP endpoint, or standard output (`--dry-run`). */
export type SinkKind = 'dir' | 'endpoint' | 'stdout';

/** What happened to one kept snapshot that a later run sent again. */
export interface ResendResult {
  readonly runId: string;
  readonly path: string;
  readonly delivered: boolean;
  readonly chunks?: number;
  readonly error?: string;
}

/** How a run went: `partial` = delivered, but something was skipped or dropped. */
export type RunResult = 'success' | 'partial' | 'failure';

export interface DroppedObject {
  readonly type: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly reason: string;
}

export interface SinkSummary {
  readonly kind: SinkKind;
  /** The snapshot file kept in the report directory, if any. */
  path?: string;
  /** Endpoint URL without credentials or query. */
  url?: string;
  delivered: boolean;
  /** When a later run delivered this kept snapshot (see `resend.ts`). */
  resentAt?: string;
  chunks?: number;
  retries?: number;
  /** Bytes after compression: on disk, or request bodies as sent. */
  storedBytes?: number;
  error?: string;
}

/** The run summary: written beside the snapshot and printed at the end of a run. */
export interface RunSummary {
  readonly apiVersion: typeof RUN_SUMMARY_API_VERSION;
  readonly kind: typeof RUN_SUMMARY_KIND;
  readonly clusterId: string;
  readonly runId: string;
  readonly startedAt: string;
  finishedAt: string;
  durationMs: number;
  result: RunResult;
  /** Objects delivered to the sink. */
  objects: number;
  /** JSON bytes before compression. */
  rawBytes: number;
  readonly types: TypeListResult[];
  /** Types not collected completely, with why (also marked in `types`). */
  readonly skippedTypes: { type: string; reason: string }[];
  readonly failedGroups: FailedGroup[];
  readonly unmatchedSelectors: string[];
  readonly dropped: { count: number; objects: DroppedObject[] };
  readonly redaction: { enabled: boolean; notes: number };
  readonly sink: SinkSummary;
  /** Snapshots kept by earlier runs (endpoint down) that this run sent, or tried to. */
  resent?: ResendResult[];
  /**
   * Undelivered snapshots in the report directory after this run (its own included), and those
   * deleted because there were more than `--max-undelivered`; endpoint runs only.
   */
  retention?: { undeliveredKept: number; undeliveredDeleted: string[] };
  readonly warnings: string[];
}
