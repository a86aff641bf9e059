/**
 * Writes a snapshot to the report directory as it is collected: objects are encoded and
 * compressed as they arrive, into a hidden temporary file that is linked into place only once
 * complete (temp + fsync + link), so a reader never sees half a snapshot, a crashed run leaves
 * no file that looks finished, and no run ever replaces another's file.
 *
 * File names sort by time, carry the cluster id and are unique per run:
 * `inventory-<clusterId>-<YYYYMMDDTHHMMSS.mmmZ>-<run>.<ndjson|json>[.gz]` (`<run>`: the first 8
 * hex digits of the run id), with the run summary beside it as `…-<run>.summary.json`. Names
 * written by versions before 0.2 (`…-<YYYYMMDDTHHMMSSZ>.…`, no run part) are still recognised.
 */
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { createGzip, type Gzip } from 'node:zlib';
import type { KubeObject } from '../kube/objects/resources.ts';
import {
  commitExclusively,
  compareByStamp,
  escapeRegExp,
  FILE_TIMESTAMP_PATTERN,
  fileTimestamp,
  isTemporaryNameOf,
  makeDirectories,
  parseFileTimestamp,
  RUN_SUFFIX_PATTERN,
  runNameSuffix,
  temporaryPathFor,
} from '../report-files.ts';
import type { SnapshotFormat } from './snapshot-format.ts';
import { RUN_SUMMARY_KIND } from './summary.ts';

/**
 * Encodes objects as NDJSON (one object per line) or as the seed's wire document
 * `{"objects":[…]}`. Stateless apart from "is this the first object", so the same encoder serves
 * files, `--dry-run` on stdout and the endpoint's chunks.
 */
export class SnapshotEncoder {
  private readonly format: SnapshotFormat;
  private first = true;

  constructor(format: SnapshotFormat) {
    this.format = format;
  }

  begin(): string {
    return this.format === 'json' ? '{"objects":[' : '';
  }

  encode(object: KubeObject): string {
    const json = JSON.stringify(object);
    if (this.format === 'ndjson') return `${json}\n`;
    const separator = this.first ? '\n' : ',\n';
    this.first = false;
    return separator + json;
  }

  end(): string {
    return this.format === 'json' ? `${this.first ? '' : '\n'}]}\n` : '';
  }
}

/** The file name stem of a run's files: `inventory-<clusterId>-<time>-<run>`. */
export function snapshotStem(clusterId: string, startedAt: Date, runId: string): string {
  return `inventory-${clusterId}-${fileTimestamp(startedAt)}-${runNameSuffix(runId)}`;
}

/**
 * Matches the names of `clusterId`'s run files (snapshot or summary, this version's or older):
 * group 1 is the time stamp, group 2 the run part (absent in old names), group 3 the snapshot
 * format when it is a snapshot (`ndjson`, `json`, with group 4 `.gz`), `undefined` for a summary.
 */
export function runFilePattern(clusterId: string): RegExp {
  return new RegExp(`^inventory-${escapeRegExp(clusterId)}-(${FILE_TIMESTAMP_PATTERN})(?:-(${RUN_SUFFIX_PATTERN}))?\\.(?:(ndjson|json)(\\.gz)?|summary\\.json)$`);
}

export interface SnapshotFileOptions {
  readonly dir: string;
  readonly clusterId: string;
  readonly startedAt: Date;
  /** The run's id: part of the file name, so runs never share one. */
  readonly runId: string;
  readonly format: SnapshotFormat;
  readonly gzip: boolean;
  /**
   * Test seam: opens the stream the temporary file is written through (default: a new file at
   * `tempPath`, failing if it exists). Lets tests write to `/dev/full`.
   */
  readonly openFile?: (tempPath: string) => Writable;
}

/** A finished snapshot file. */
export interface CommittedSnapshot {
  readonly path: string;
  readonly objects: number;
  /** Bytes of encoded JSON before compression. */
  readonly rawBytes: number;
  /** Bytes on disk (after gzip when compressed). */
  readonly storedBytes: number;
}

/** Encoded text is handed to zlib in blocks of about this size: one write per object is slow. */
const WRITE_BLOCK_BYTES = 256 * 1024;

/** A snapshot file could not be written (disk full, file too large, I/O error, directory gone). */
export class SnapshotWriteError extends Error {
  /** The system error code (`ENOSPC`, `EFBIG`, `EIO`, …), when there was one. */
  readonly code: string | undefined;

  constructor(path: string, cause: Error) {
    super(`cannot write the snapshot ${path}: ${cause.message}`, { cause });
    this.name = 'SnapshotWriteError';
    this.code = (cause as NodeJS.ErrnoException).code;
  }
}

/** Streams one snapshot into a hidden temporary file, linked to `<dir>/<name>` by {@link commit}. */
export class SnapshotFileWriter {
  /** Where the snapshot will be once committed. */
  readonly path: string;
  private readonly tempPath: string;
  private readonly encoder: SnapshotEncoder;
  private readonly file: Writable;
  private readonly gzip: Gzip | undefined;
  /** Settles once every stream has finished and closed; rejects on the first stream error. */
  private readonly done: Promise<void>;
  /** Rejects with the first stream error, so nothing waits on a stream that will never move again. */
  private readonly failed: Promise<never>;
  private pending: string[] = [];
  private pendingBytes = 0;
  private objectCount = 0;
  private rawByteCount = 0;
  private failure: SnapshotWriteError | undefined;
  private discarded = false;

  private constructor(options: SnapshotFileOptions, path: string, tempPath: string) {
    this.path = path;
    this.tempPath = tempPath;
    this.encoder = new SnapshotEncoder(options.format);
    this.file = (options.openFile ?? openTempFile)(tempPath);
    this.gzip = options.gzip ? createGzip({ level: 6 }) : undefined;
    let rejectFailed: (err: Error) => void = () => {};
    this.failed = new Promise<never>((_, reject) => (rejectFailed = reject));
    this.failed.catch(() => {});
    const fail = (err: Error): void => {
      this.failure ??= err instanceof SnapshotWriteError ? err : new SnapshotWriteError(this.path, err);
      rejectFailed(this.failure);
    };
    // pipeline, not pipe: when the file fails (ENOSPC, EFBIG, EIO), pipe only unpipes and the
    // gzip stream, never drained, would keep every writer waiting forever; pipeline destroys both.
    const finishedWriting = this.gzip ? pipeline(this.gzip, this.file) : finished(this.file);
    this.done = finishedWriting.then(async () => {
      if (!this.file.closed) await once(this.file, 'close');
    });
    this.done.catch(fail);
    this.file.on('error', fail);
    this.gzip?.on('error', fail);
    this.append(this.encoder.begin());
  }

  /** The file name a snapshot of these options gets. */
  static pathFor(options: Pick<SnapshotFileOptions, 'dir' | 'clusterId' | 'startedAt' | 'runId' | 'format' | 'gzip'>): string {
    return join(options.dir, `${snapshotStem(options.clusterId, options.startedAt, options.runId)}.${options.format}${options.gzip ? '.gz' : ''}`);
  }

  /** Creates the report directory if needed and opens the temporary file. */
  static async open(options: SnapshotFileOptions): Promise<SnapshotFileWriter> {
    await makeDirectories(options.dir);
    const path = SnapshotFileWriter.pathFor(options);
    const writer = new SnapshotFileWriter(options, path, temporaryPathFor(path));
    if ((writer.file as Partial<WriteStream>).pending) await once(writer.file, 'open');
    return writer;
  }

  /** Objects written so far. */
  get objects(): number {
    return this.objectCount;
  }

  /** Adds one object; resolves when the stream can take more (backpressure). */
  async write(object: KubeObject): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.discarded) throw new Error(`the snapshot ${this.path} was discarded`);
    this.objectCount++;
    this.append(this.encoder.encode(object));
    if (this.pendingBytes >= WRITE_BLOCK_BYTES) await this.flush();
  }

  /**
   * Finishes the file, syncs it to disk and links it into place (never over an existing file).
   * On failure the temporary file is removed and a {@link SnapshotWriteError} is thrown.
   */
  async commit(): Promise<CommittedSnapshot> {
    try {
      if (this.failure) throw this.failure;
      this.append(this.encoder.end());
      await this.flush();
      (this.gzip ?? this.file).end();
      await Promise.race([this.done, this.failed]);
      if (this.failure) throw this.failure;
      const handle = await open(this.tempPath, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      await commitExclusively(this.tempPath, this.path);
    } catch (err) {
      await this.abort();
      throw err instanceof SnapshotWriteError || !(err instanceof Error) ? err : new SnapshotWriteError(this.path, err);
    }
    await syncDirectory(join(this.path, '..'));
    const { size } = await stat(this.path);
    return { path: this.path, objects: this.objectCount, rawBytes: this.rawByteCount, storedBytes: size };
  }

  /** Drops the temporary file (the run failed before anything worth keeping was written). Never throws. */
  async abort(): Promise<void> {
    if (this.discarded) return;
    this.discarded = true;
    this.gzip?.destroy();
    this.file.destroy();
    await waitForClose(this.file).catch(() => {});
    await rm(this.tempPath, { force: true }).catch(() => {});
  }

  private append(text: string): void {
    if (!text) return;
    this.pending.push(text);
    const bytes = Buffer.byteLength(text);
    this.pendingBytes += bytes;
    this.rawByteCount += bytes;
  }

  private async flush(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.pending.length === 0) return;
    const block = this.pending.join('');
    this.pending = [];
    this.pendingBytes = 0;
    const target = this.gzip ?? this.file;
    // A failed stream never emits 'drain': wait for whichever comes first.
    if (!target.write(block)) await Promise.race([once(target, 'drain'), this.failed]);
    if (this.failure) throw this.failure;
  }
}

function openTempFile(path: string): WriteStream {
  return createWriteStream(path, { flags: 'wx', mode: 0o640 });
}

/** Resolves once `stream` has ended or failed and released its file descriptor; never rejects. */
async function waitForClose(stream: Writable): Promise<void> {
  if (stream.closed) return;
  await finished(stream).catch(() => {});
}

/** Makes a rename durable: without it a power loss can forget the new directory entry. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch {
    // Some file systems refuse fsync on directories; the rename is still atomic.
  } finally {
    await handle.close();
  }
}

export interface RetentionPolicy {
  /** Delivered runs of this cluster to keep, newest first; 0 keeps all. */
  readonly keepLast: number;
  /** Delivered runs older than this are deleted, in milliseconds; 0 keeps them regardless of age. */
  readonly maxAgeMs: number;
  /**
   * Undelivered snapshots (the endpoint never got them) to keep at most, newest first; 0 keeps
   * every one. Never applied by `keepLast` or `maxAgeMs`: those are for delivered runs.
   */
  readonly maxUndelivered: number;
}

/** What {@link pruneSnapshots} did. */
export interface PruneResult {
  /** Names deleted: delivered runs beyond the policy, stale temporary files, and `undeliveredDeleted`. */
  readonly deleted: string[];
  /** Undelivered snapshots left in the directory (this run's included). */
  undeliveredKept: number;
  /** Names of undelivered runs deleted because there were more than `maxUndelivered`. */
  readonly undeliveredDeleted: string[];
}

/** Temporary files of runs that died are removed after this long (a live run is never this slow). */
const STALE_TEMP_AGE_MS = 6 * 3_600_000;

interface RunFiles {
  readonly stamp: string;
  /** The run's stem, for sorting ties. */
  readonly name: string;
  readonly files: string[];
  snapshot?: string;
  summary?: string;
}

/**
 * Deletes runs of `clusterId` beyond the retention policy, and temporary files left by crashed
 * runs. A run is every file of one stem: its snapshot, its summary, or both — after a successful
 * upload only the summary is left, and it ages out like any other run.
 *
 * A run whose snapshot was not delivered (its summary says the endpoint did not get it, or the
 * summary cannot be read, so nobody can tell) is never deleted by `keepLast` or `maxAgeMs`: only
 * `maxUndelivered` bounds those, and the caller warns about each one it deletes. Files that do
 * not look like ours are never touched.
 */
export async function pruneSnapshots(dir: string, clusterId: string, policy: RetentionPolicy, now: Date): Promise<PruneResult> {
  const pattern = runFilePattern(clusterId);
  const result: PruneResult = { deleted: [], undeliveredKept: 0, undeliveredDeleted: [] };
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return result;
  }
  const runs = new Map<string, RunFiles>();
  for (const name of [...names].sort()) {
    const match = pattern.exec(name);
    if (!match) continue;
    const [, stamp = '', suffix, format] = match;
    const key = `${stamp}-${suffix ?? ''}`;
    const run = runs.get(key) ?? { stamp, name: key, files: [] };
    run.files.push(name);
    if (format) run.snapshot = name;
    else run.summary = name;
    runs.set(key, run);
  }
  const newestFirst = [...runs.values()].sort((a, b) => compareByStamp(b, a));
  let delivered = 0;
  let undelivered = 0;
  for (const run of newestFirst) {
    if (run.snapshot && !(await isDelivered(dir, run))) {
      undelivered++;
      if (policy.maxUndelivered > 0 && undelivered > policy.maxUndelivered) {
        await removeAll(dir, run.files, result.deleted);
        result.undeliveredDeleted.push(...run.files);
      } else {
        result.undeliveredKept++;
      }
      continue;
    }
    delivered++;
    const tooMany = policy.keepLast > 0 && delivered > policy.keepLast;
    const tooOld = policy.maxAgeMs > 0 && now.getTime() - parseFileTimestamp(run.stamp) > policy.maxAgeMs;
    if (tooMany || tooOld) await removeAll(dir, run.files, result.deleted);
  }
  for (const name of names) {
    // Exactly a temporary name of one of our names: a prefix test would also take another
    // cluster's temp files when one id extends the other (`prod` vs `prod-eu`).
    if (!isTemporaryNameOf(name, (finalName) => pattern.test(finalName))) continue;
    const info = await stat(join(dir, name)).catch(() => undefined);
    if (info && now.getTime() - info.mtimeMs > STALE_TEMP_AGE_MS) await removeAll(dir, [name], result.deleted);
  }
  return result;
}

async function removeAll(dir: string, names: readonly string[], deleted: string[]): Promise<void> {
  for (const name of names) {
    await rm(join(dir, name), { force: true });
    deleted.push(name);
  }
}

/**
 * Whether the run's snapshot reached its destination: a snapshot written to the report
 * directory did; one meant for an endpoint did only when its summary says so. A snapshot without
 * a summary was written by a directory run (an endpoint run writes its summary before its
 * snapshot appears); an unreadable summary leaves the question open, which counts as "no".
 */
async function isDelivered(dir: string, run: RunFiles): Promise<boolean> {
  if (!run.summary) return true;
  try {
    const summary = JSON.parse(await readFile(join(dir, run.summary), 'utf8')) as { kind?: unknown; sink?: { kind?: unknown; delivered?: unknown } };
    if (summary.kind !== RUN_SUMMARY_KIND) return false;
    return summary.sink?.kind !== 'endpoint' || summary.sink.delivered === true;
  } catch {
    return false;
  }
}
