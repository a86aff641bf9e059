/**
 * The few file operations the port scan performs on a proc root, behind an interface so tests can
 * stage what a real /proc does to unprivileged readers (EACCES, pids vanishing mid-scan) even
 * when they run as root.
 *
 * Synchronous on purpose: every call is a procfs lookup that the kernel answers from memory.
 * Measured on 10,000 socket fds, `readlinkSync` took ~75 ms where `fs.promises.readlink` took
 * 100–150 ms at any concurrency: the cost is the promise and thread-pool round trip, not I/O.
 * Callers that must stay responsive yield between batches instead (see `processes.ts`).
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** Read-only access to a proc root. Methods throw Node's errors (with `code`, e.g. `ENOENT`). */
export interface ProcFs {
  /** Names in a directory, e.g. the pids in `/proc` or the fd numbers in `/proc/<pid>/fd`. */
  readdir(path: string): string[];
  /** Target of a symbolic link, e.g. `socket:[207171]`. */
  readlink(path: string): string;
  /** A whole file as UTF-8 text. */
  readFile(path: string): string;
}

/** The real file system. */
export const nodeProcFs: ProcFs = {
  readdir: (path) => readdirSync(path),
  readlink: (path) => readlinkSync(path),
  readFile: (path) => readFileSync(path, 'utf8'),
};

/** The `code` of a Node file-system error (`ENOENT`, `EACCES`…), or `undefined`. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}
