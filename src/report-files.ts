/**
 * What the report writers (inventory snapshots and summaries, port reports) share: names that
 * sort by time and are unique per run, files created exclusively and whole-or-nothing, a report
 * directory checked before any work starts, and name patterns built from user-given ids.
 */
import { createHash, randomBytes } from 'node:crypto';
import { link, mkdir, open, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';

/**
 * `20261123T141500.123Z`: ISO 8601 basic format in UTC with milliseconds, sortable and safe in
 * file names. Versions before 0.2 wrote whole seconds (`20261123T141500Z`); both are read.
 */
export function fileTimestamp(date: Date): string {
  return date.toISOString().replaceAll('-', '').replaceAll(':', '');
}

/** A regular-expression source matching a {@link fileTimestamp} of this or an earlier version. */
export const FILE_TIMESTAMP_PATTERN = '\\d{8}T\\d{6}(?:\\.\\d{3})?Z';

/** The time a {@link fileTimestamp} stands for, in epoch milliseconds (NaN if it is not one). */
export function parseFileTimestamp(stamp: string): number {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\.\d{3})?Z$/.exec(stamp);
  if (!match) return Number.NaN;
  const [, year, month, day, hour, minute, second, millis = ''] = match;
  return Date.parse(`${year}-${month}-${day}T${hour}:${minute}:${second}${millis}Z`);
}

/**
 * The part of a report file name that makes it unique to one run: the first 8 hex digits of the
 * run id. Two runs started in the same millisecond still get names of their own.
 */
export function runNameSuffix(runId: string): string {
  // Run ids are UUIDs (or their first 8 digits): their own digits keep names and logs easy to match.
  if (/^[0-9a-f]{8}/i.test(runId)) return runId.slice(0, RUN_SUFFIX_LENGTH).toLowerCase();
  return createHash('sha256').update(runId).digest('hex').slice(0, RUN_SUFFIX_LENGTH);
}

const RUN_SUFFIX_LENGTH = 8;
/** A regular-expression source matching {@link runNameSuffix}; names of versions before 0.2 have none. */
export const RUN_SUFFIX_PATTERN = `[0-9a-f]{${RUN_SUFFIX_LENGTH}}`;

/**
 * Orders report names by the time their stamp stands for, then by name: the stamps of versions
 * before 0.2 (whole seconds) do not sort as strings among the current ones.
 */
export function compareByStamp<T extends { readonly stamp: string; readonly name: string }>(a: T, b: T): number {
  return parseFileTimestamp(a.stamp) - parseFileTimestamp(b.stamp) || a.name.localeCompare(b.name);
}

/**
 * A temporary name for a file that will become `path`: hidden, in the same directory (so the
 * final rename or link stays on one file system), unique to this writer, ending in `.tmp`.
 */
export function temporaryPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
}

/**
 * Whether `name` is a temporary file made by {@link temporaryPathFor} (or, for snapshots of
 * versions before 0.2, `.<name>.tmp`) for a file whose name `isFinal` accepts.
 */
export function isTemporaryNameOf(name: string, isFinal: (finalName: string) => boolean): boolean {
  const match = /^\.(.+?)(?:\.[0-9a-f]{8})?\.tmp$/.exec(name);
  return match !== null && isFinal(match[1]!);
}

/**
 * Moves the finished temporary file `temp` to `path`, refusing to replace a file already there
 * (a hard link cannot be made over an existing name, a rename could): a second run that somehow
 * chose the same name fails with EEXIST instead of destroying the first one's report. File
 * systems without hard links fall back to a rename after checking the name is free.
 */
export async function commitExclusively(temp: string, path: string): Promise<void> {
  try {
    await link(temp, path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS' && code !== 'EMLINK') throw err;
    if (await stat(path).then(() => true, () => false)) {
      throw Object.assign(new Error(`EEXIST: file already exists, ${path}`), { code: 'EEXIST', path });
    }
    await rename(temp, path);
    return;
  }
  await unlink(temp);
}

/**
 * Creates `path` with `content`, whole or not at all, failing with EEXIST if it exists: written
 * to a temporary file first, then committed with {@link commitExclusively}.
 */
export async function createFileExclusively(path: string, content: string, mode: number): Promise<void> {
  const temp = temporaryPathFor(path);
  try {
    await writeFile(temp, content, { mode, flag: 'wx' });
    await commitExclusively(temp, path);
  } finally {
    await rm(temp, { force: true }).catch(() => {});
  }
}

/**
 * Replaces `path` with `content`: written to a temporary file of its own, then renamed over
 * `path`, so a reader sees the old file or the new one, never half of one. For rewriting a
 * file this run created (a summary updated after the fact).
 */
export async function writeFileAtomically(path: string, content: string, mode: number): Promise<void> {
  const temp = temporaryPathFor(path);
  try {
    await writeFile(temp, content, { mode, flag: 'wx' });
    await rename(temp, path);
  } finally {
    await rm(temp, { force: true }).catch(() => {});
  }
}

/** `text` with regular-expression metacharacters escaped, to match it literally inside a pattern. */
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The report directory cannot be used: it cannot be created, or a file cannot be created in it. */
export class ReportDirError extends Error {
  readonly dir: string;
  /** The system error code (`EACCES`, `EROFS`, `ENOTDIR`, `ENOSPC`, …), when there was one. */
  readonly code: string | undefined;

  constructor(dir: string, reason: string, cause?: unknown) {
    super(`report directory ${dir}: ${reason}`, cause === undefined ? undefined : { cause });
    this.name = 'ReportDirError';
    this.dir = dir;
    this.code = (cause as NodeJS.ErrnoException | undefined)?.code;
  }
}

/**
 * Makes sure reports can be written to `dir` before any work starts: creates it (and missing
 * parents), then creates, writes and removes a probe file in it. A run that would only find out
 * after scanning every node (or listing every object) loses all of that work.
 * @throws ReportDirError naming the directory and why.
 */
export async function prepareReportDir(dir: string): Promise<void> {
  if (dir === '') throw new ReportDirError(dir, 'the path is empty');
  await makeDirectories(dir);
  const probe = join(dir, `.crowsnest-write-test-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    const handle = await open(probe, 'wx', 0o600);
    try {
      await handle.writeFile('ok\n');
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw new ReportDirError(dir, `cannot create files in it (${describeErrno(err)})`, err);
  } finally {
    await rm(probe, { force: true }).catch(() => {});
  }
}

/**
 * `mkdir -p` that walks the path one component at a time. Node's `mkdir({ recursive: true })`
 * loops forever (100 % CPU, no answer to SIGTERM) when a parent exists but refuses children with
 * ENOENT, as `/proc` does: here every component is created once or the first failure is thrown.
 * @throws ReportDirError naming the component that could not be created or is not a directory.
 */
export async function makeDirectories(dir: string): Promise<void> {
  const absolute = resolve(dir);
  const parts = absolute.split(sep).filter((part) => part !== '');
  let current: string = sep;
  for (const part of parts) {
    current = join(current, part);
    const info = await stat(current).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw new ReportDirError(dir, `cannot use ${current} (${describeErrno(err)})`, err);
    });
    if (info?.isDirectory()) continue;
    if (info) throw new ReportDirError(dir, `${current} exists and is not a directory`);
    try {
      await mkdir(current, { mode: 0o755 });
    } catch (err) {
      // Created meanwhile by someone else: fine if it is a directory.
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && (await stat(current).then((s) => s.isDirectory(), () => false))) continue;
      throw new ReportDirError(dir, `cannot create ${current} (${describeErrno(err)})`, err);
    }
  }
}

function describeErrno(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const message = err instanceof Error ? err.message : String(err);
  return code && !message.startsWith(code) ? `${code}: ${message}` : message;
}
