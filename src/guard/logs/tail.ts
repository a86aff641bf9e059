/**
 * Reading one container's log from a cursor: through its files in order (see files.ts), a run's
 * rotated files before its live one and one run after another, handing each whole line to the
 * caller and moving the cursor past it.
 *
 * The cursor always sits at a record boundary (after a `\n`), so it can be persisted and resumed:
 * a line the runtime split (`P` records) and that is not finished yet travels in the cursor as its
 * kept prefix ({@link Cursor.partial}), not as a position to re-read — stdout and stderr interleave
 * in one file, and a position before an unfinished stdout line would re-read the stderr lines that
 * came after it.
 *
 * Rotation: the kubelet renames `0.log` to `0.log.<time>` and the runtime reopens `0.log`. The
 * cursor names its file by identity (device, inode, first bytes), so it finds the renamed file and
 * reads it to its end before moving on to the next; a file compressed in the meantime is read
 * from its decompressed content at the same offset. A run's file is finished when a later file
 * exists; an unfinished line at the end of a run (its container died mid-line) counts as a line.
 */
import { LineJoiner, parseCriRecord } from './cri.ts';
import { FileMovedError, findFile, HEAD_BYTES, identify, listLogFiles, openListed, readContent, type FileIdentity, type LogFile } from './files.ts';

export interface CursorFile {
  /** The file's name when the cursor last read it (it may have been renamed since). */
  readonly name: string;
  readonly run: number;
  readonly identity: FileIdentity;
}

/** Where a container's reading stands. */
export interface Cursor {
  /** Undefined: before the container's first file (nothing read yet). */
  readonly file?: CursorFile;
  /** Bytes of {@link file} consumed (of its decompressed content, for a compressed file). */
  readonly offset: number;
  /** An unfinished line per stream: the kept prefix, base64. */
  readonly partial?: { readonly stdout?: string; readonly stderr?: string };
  /** When the cursor last moved, ms since the epoch: finds the next file when its own is gone. */
  readonly movedAtMs?: number;
}

export interface ReadOptions {
  /** Stop after about this many bytes (at a record boundary). */
  readonly budgetBytes: number;
  /** Bytes of a line kept for matching. */
  readonly maxLineBytes: number;
  /** Milliseconds since the epoch, stamped on the cursor. */
  readonly nowMs: number;
}

export interface ReadResult {
  readonly cursor: Cursor;
  readonly bytes: number;
  /** Physical lines that were not CRI records. */
  readonly malformed: number;
  /** Files the cursor's file was lost between (deleted before it was read to its end): their unread lines are lost. */
  readonly lostFiles: number;
  /** Whether the budget ran out before the end of the container's log. */
  readonly more: boolean;
}

const CHUNK_BYTES = 64 * 1024;
const NEWLINE = 0x0a;

/**
 * Reads `dir` (a container's log directory) from `cursor`, calling `onLine` with each whole line
 * (its text, cut to `maxLineBytes`), and returns the cursor after the last record read.
 */
export async function readContainer(dir: string, cursor: Cursor, options: ReadOptions, onLine: (line: Buffer) => void): Promise<ReadResult> {
  const files = await listLogFiles(dir);
  let malformed = 0;
  let lostFiles = 0;
  let bytes = 0;
  if (files.length === 0) return { cursor, bytes, malformed, lostFiles, more: false };

  let index: number;
  let offset = cursor.offset;
  if (!cursor.file) {
    index = 0;
    offset = 0;
  } else {
    const found = await findFile(dir, files, cursor.file.identity);
    if (found) {
      index = files.indexOf(found);
    } else {
      // Deleted before we finished it (the agent fell behind by more than the kubelet keeps).
      lostFiles = 1;
      index = files.findIndex((file) => isAfter(file, cursor.file!, cursor.movedAtMs ?? 0));
      offset = 0;
      if (index === -1) return { cursor: { ...cursor }, bytes, malformed, lostFiles, more: false };
    }
  }

  const joiner = new LineJoiner(options.maxLineBytes);
  joiner.restore(decodePartial(cursor.partial));
  let current = files[index]!;
  let more = false;
  for (;;) {
    const read = await readFile(dir, current, offset, options.budgetBytes - bytes, (record) => {
      const parsed = parseCriRecord(record);
      if (!parsed) {
        malformed++;
        return;
      }
      const line = joiner.push(parsed);
      if (line) onLine(line);
    });
    offset = read.offset;
    bytes += read.bytes;
    malformed += read.malformed;
    if (!read.atEnd) {
      more = true;
      break;
    }
    const next = files[index + 1];
    if (!next) break;
    // A later file exists, so this one is finished (the runtime writes only the newest); bytes
    // after its last newline never became a record.
    if (read.trailing > 0) malformed++;
    if (next.run !== current.run) for (const line of joiner.flush()) onLine(line);
    index++;
    current = next;
    offset = 0;
  }
  const identity = current.gzip ? undefined : await identifyIfGrown(dir, current, cursor);
  const file: CursorFile = {
    name: current.name,
    run: current.run,
    identity: identity ?? (cursor.file && sameFile(current, cursor.file) ? cursor.file.identity : await identify(dir, current)),
  };
  const partial = encodePartial(joiner.save());
  return { cursor: { file, offset, ...(partial ? { partial } : {}), movedAtMs: options.nowMs }, bytes, malformed, lostFiles, more };
}

/**
 * The cursor at the end of what `dir` holds now, for a watch that starts counting from now: after
 * the last newline of the newest file (a line being written counts when it is finished).
 */
export async function cursorAtEnd(dir: string, nowMs: number): Promise<Cursor> {
  const files = await listLogFiles(dir);
  const last = files.at(-1);
  if (!last) return { offset: 0, movedAtMs: nowMs };
  let offset = 0;
  if (last.gzip) {
    const content = await readContent(dir, last);
    offset = content.lastIndexOf(NEWLINE) + 1;
  } else {
    const handle = await openListed(dir, last);
    try {
      const size = (await handle.stat()).size;
      const from = Math.max(0, size - CHUNK_BYTES);
      const buffer = Buffer.alloc(size - from);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, from);
      const newline = buffer.subarray(0, bytesRead).lastIndexOf(NEWLINE);
      offset = newline === -1 ? from : from + newline + 1;
    } finally {
      await handle.close();
    }
  }
  return { file: { name: last.name, run: last.run, identity: await identify(dir, last) }, offset, movedAtMs: nowMs };
}

/** Whether `file` comes after the lost cursor file in reading order. */
function isAfter(file: LogFile, lost: CursorFile, movedAtMs: number): boolean {
  if (file.run !== lost.run) return file.run > lost.run;
  if (file.rotatedAt === undefined) return true;
  // The lost file was rotated after the cursor last moved; so was everything that followed it.
  return file.rotatedAt >= kubeletRotationTime(movedAtMs) && file.name !== lost.name;
}

/** The kubelet's rotation suffix for `ms` (`20060102-150405`, UTC: the nodes' containers run in UTC). */
export function kubeletRotationTime(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

function sameFile(file: LogFile, cursorFile: CursorFile): boolean {
  return file.dev === cursorFile.identity.dev && file.ino === cursorFile.identity.ino;
}

/** A fresh identity when the cursor's was taken over fewer bytes than the file now holds. */
async function identifyIfGrown(dir: string, file: LogFile, cursor: Cursor): Promise<FileIdentity | undefined> {
  const known = cursor.file && sameFile(file, cursor.file) ? cursor.file.identity : undefined;
  if (known && (known.headLength >= HEAD_BYTES || file.size <= known.headLength)) return known;
  return await identify(dir, file);
}

interface FileRead {
  readonly offset: number;
  readonly bytes: number;
  readonly malformed: number;
  /** Bytes after the last newline, left unread. */
  readonly trailing: number;
  /** Whether the file was read to its (current) end. */
  readonly atEnd: boolean;
}

/** Reads whole records of one file from `offset`, at most about `budget` bytes. */
async function readFile(dir: string, file: LogFile, offset: number, budget: number, onRecord: (record: Buffer) => void): Promise<FileRead> {
  let malformed = 0;
  let bytes = 0;
  if (file.gzip) {
    const content = await readContent(dir, file);
    const consumed = splitRecords(content.subarray(offset), onRecord, Math.max(1, budget));
    // A budget that ends mid-record leaves that record for the next read.
    const atEnd = content.subarray(offset + consumed).indexOf(NEWLINE) === -1;
    return { offset: offset + consumed, bytes: consumed, malformed, trailing: atEnd ? content.length - offset - consumed : 0, atEnd };
  }
  let handle: Awaited<ReturnType<typeof openListed>>;
  try {
    // By name, checked to be the file listed: a rotation between the listing and now would
    // otherwise hand us the new file at the old file's offset.
    handle = await openListed(dir, file);
  } catch (err) {
    // Renamed, replaced or compressed just now: found again by the next listing.
    if (err instanceof FileMovedError || (err as NodeJS.ErrnoException).code === 'ENOENT') return { offset, bytes, malformed, trailing: 0, atEnd: false };
    throw err;
  }
  try {
    const buffer = Buffer.alloc(CHUNK_BYTES);
    let trailing = 0;
    let atEnd = false;
    // Reads no further than the budget asks, but always far enough for one whole record.
    let want = Math.min(CHUNK_BYTES, Math.max(1, budget));
    while (bytes < budget) {
      const { bytesRead } = await handle.read(buffer, 0, want, offset);
      const chunk = buffer.subarray(0, bytesRead);
      let consumed = splitRecords(chunk, onRecord, budget - bytes);
      if (consumed === 0 && bytesRead === want) {
        if (bytes > 0) break; // the budget ends inside the next record: it is read next time
        if (want < CHUNK_BYTES) {
          want = CHUNK_BYTES;
          continue;
        }
        // A record longer than a chunk: runtimes split lines far below this, so it is not a CRI
        // record; skip it rather than stall on it.
        malformed++;
        consumed = bytesRead;
      }
      offset += consumed;
      bytes += consumed;
      if (bytesRead < want) {
        // The end of the file as it is now; a record may still be being written.
        atEnd = true;
        trailing = bytesRead - consumed;
        break;
      }
      want = Math.min(CHUNK_BYTES, Math.max(1, budget - bytes));
    }
    return { offset, bytes, malformed, trailing, atEnd };
  } finally {
    await handle.close();
  }
}

/**
 * Calls `onRecord` with each newline-terminated record of `chunk` (without the newline), stopping
 * after the record that reaches `limit` bytes; returns the bytes consumed.
 */
function splitRecords(chunk: Buffer, onRecord: (record: Buffer) => void, limit = Number.POSITIVE_INFINITY): number {
  let start = 0;
  while (start < limit) {
    const newline = chunk.indexOf(NEWLINE, start);
    if (newline === -1) break;
    onRecord(chunk.subarray(start, newline));
    start = newline + 1;
  }
  return start;
}

function decodePartial(partial: Cursor['partial']): { stdout?: Buffer; stderr?: Buffer } {
  return {
    ...(partial?.stdout !== undefined ? { stdout: Buffer.from(partial.stdout, 'base64') } : {}),
    ...(partial?.stderr !== undefined ? { stderr: Buffer.from(partial.stderr, 'base64') } : {}),
  };
}

function encodePartial(saved: { stdout?: Buffer; stderr?: Buffer }): Cursor['partial'] | undefined {
  if (!saved.stdout && !saved.stderr) return undefined;
  return { ...(saved.stdout ? { stdout: saved.stdout.toString('base64') } : {}), ...(saved.stderr ? { stderr: saved.stderr.toString('base64') } : {}) };
}
