/**
 * The log files of one container, as the kubelet lays them out under
 * `/var/log/pods/<namespace>_<pod>_<uid>/<container>/`:
 *
 *   0.log                      the first run of the container, being written
 *   0.log.20261207-031500      rotated by the kubelet (renamed, then the runtime reopens 0.log)
 *   0.log.20261207-031000.gz   rotated earlier, then compressed (the kubelet compresses every
 *                              rotated file but the newest, and deletes the oldest beyond its
 *                              containerLogMaxFiles)
 *   1.log                      the run after the first restart
 *
 * In reading order: by run, then rotated files by their time, then the live file.
 *
 * A file is known by its identity: device and inode (stable across the kubelet's rename; a bind
 * mount into the agent's container shows the host's) plus a hash of its first bytes, which tells
 * an inode the file system reused apart, and finds a rotated file again after it was compressed
 * (a new inode, the same content).
 */
import { createHash } from 'node:crypto';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

/** Bytes of a file's beginning its identity hashes. */
export const HEAD_BYTES = 256;

export interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
  /** SHA-256 (hex, first 32 characters) of the file's first {@link headLength} bytes. */
  readonly head: string;
  readonly headLength: number;
}

export interface LogFile {
  readonly name: string;
  /** The container's run: the restart count when it started. */
  readonly run: number;
  /** The rotation time as the kubelet wrote it (`20261207-031500`); `undefined` for the live file. */
  readonly rotatedAt?: string;
  readonly gzip: boolean;
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
}

const LIVE = /^(\d+)\.log$/;
const ROTATED = /^(\d+)\.log\.(\d{8}-\d{6})(\.gz)?$/;

/** The container's log files in reading order; none when the directory is gone. */
export async function listLogFiles(dir: string): Promise<LogFile[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const files: LogFile[] = [];
  for (const name of names) {
    const live = LIVE.exec(name);
    const rotated = live ? undefined : ROTATED.exec(name);
    if (!live && !rotated) continue;
    let stats: Awaited<ReturnType<typeof stat>>;
    try {
      stats = await stat(join(dir, name));
    } catch {
      continue; // removed between readdir and stat
    }
    if (!stats.isFile()) continue;
    const run = Number((live ?? rotated)![1]);
    files.push({ name, run, ...(rotated ? { rotatedAt: rotated[2]! } : {}), gzip: rotated?.[3] !== undefined, dev: stats.dev, ino: stats.ino, size: stats.size });
  }
  return files.sort(compareFiles);
}

function compareFiles(a: LogFile, b: LogFile): number {
  if (a.run !== b.run) return a.run - b.run;
  if (a.rotatedAt === b.rotatedAt) return Number(a.gzip) - Number(b.gzip);
  if (a.rotatedAt === undefined) return 1;
  if (b.rotatedAt === undefined) return -1;
  return a.rotatedAt < b.rotatedAt ? -1 : 1;
}

/** The identity of `file` now (its head hashed over what it holds, up to {@link HEAD_BYTES}). */
export async function identify(dir: string, file: LogFile): Promise<FileIdentity> {
  const head = await readHead(dir, file, HEAD_BYTES);
  return { dev: file.dev, ino: file.ino, head: hashHead(head), headLength: head.length };
}

function hashHead(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 32);
}

/**
 * The kubelet renamed the file between the listing and its opening: its name now holds another
 * file. Nothing is read from it; the next listing finds both where they are.
 */
export class FileMovedError extends Error {
  override readonly name = 'FileMovedError';
}

/** Opens `file` by name, making sure the name still holds the file listed (device and inode). */
export async function openListed(dir: string, file: LogFile): Promise<Awaited<ReturnType<typeof open>>> {
  const handle = await open(join(dir, file.name), 'r');
  const stats = await handle.stat();
  if (stats.ino !== file.ino || stats.dev !== file.dev) {
    await handle.close();
    throw new FileMovedError(`${file.name} was replaced since it was listed`);
  }
  return handle;
}

async function readHead(dir: string, file: LogFile, length: number): Promise<Buffer> {
  if (file.gzip) return (await readContent(dir, file)).subarray(0, length);
  const handle = await openListed(dir, file);
  try {
    const buffer = Buffer.alloc(Math.min(length, file.size));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** A compressed file's whole content (at most the kubelet's containerLogMaxSize, 10 MiB by default). */
export async function readContent(dir: string, file: LogFile): Promise<Buffer> {
  return gunzipSync(await readFile(join(dir, file.name)));
}

/**
 * Which of `files` is the one `identity` names: the same device and inode with the same head, or
 * else a compressed file with the same head (the file was rotated and compressed since).
 */
export async function findFile(dir: string, files: readonly LogFile[], identity: FileIdentity): Promise<LogFile | undefined> {
  const sameHead = async (file: LogFile): Promise<boolean> => {
    try {
      const head = await readHead(dir, file, identity.headLength);
      return head.length === identity.headLength && hashHead(head) === identity.head;
    } catch {
      return false;
    }
  };
  for (const file of files) if (!file.gzip && file.dev === identity.dev && file.ino === identity.ino && (await sameHead(file))) return file;
  // An empty head tells nothing apart: only the inode could have found it.
  if (identity.headLength === 0) return undefined;
  for (const file of files) if (file.gzip && (await sameHead(file))) return file;
  return undefined;
}
