/**
 * The few file operations the port scan performs on a proc root, behind an interface so tests can
 * stage what a real /proc does to unprivileged readers (EACCES, pids vanishing mid-scan) even
 * when they run as root.
 *
 * Synchronous on purpose: every call is a procfs lookup that the kernel answers from memory.
 * Measured on 10,000 socket fds, `readlinkSync` took ~75 ms where `fs.promises.readlink` took
 * 100–150 ms at any concurrency: the cost is the promise and thread-pool round trip, not I/O.
 * Callers that must stay responsive yield between batches instead (see `processes.ts`).
 *
 * The socket tables are the other kind of work: four large files whose text the kernel writes as
 * they are read, one 4 KiB page per read call (~50 ms for 10,000 sockets). The thread pool would
 * pay a round trip per page (measured: twice as slow), so {@link readFilesInBackground} reads them
 * in one worker thread, on another core, while the main thread walks the processes' fds.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/** Read-only access to a proc root. Methods throw Node's errors (with `code`, e.g. `ENOENT`). */
export interface ProcFs {
  /** Names in a directory, e.g. the pids in `/proc` or the fd numbers in `/proc/<pid>/fd`. */
  readdir(path: string): string[];
  /** Target of a symbolic link, e.g. `socket:[207171]`. */
  readlink(path: string): string;
  /** A whole file as UTF-8 text. */
  readFile(path: string): string;
  /**
   * Starts reading whole files as UTF-8 text on another thread, so the caller can do other work
   * meanwhile, and hands each over as soon as it can ({@link BackgroundReads}).
   */
  readFilesInBackground(paths: readonly string[]): BackgroundReads;
}

/** Files being read by {@link ProcFs.readFilesInBackground}. */
export interface BackgroundReads {
  /**
   * Each file once, as soon as it can be had: those the other thread has delivered first, then
   * those nobody has started, read on the calling thread, then those the other thread is still
   * reading. Never throws: a file that cannot be read has its error in its result.
   */
  [Symbol.asyncIterator](): AsyncIterator<FileReadAt>;
}

/** One file of {@link BackgroundReads}: its position in the paths given, and what reading it gave. */
export interface FileReadAt {
  readonly index: number;
  readonly read: FileRead;
}

/** A file's text, or why it could not be read. */
export type FileRead = { readonly text: string } | { readonly error: FileReadError };

/** A file-system error: `code` as Node sets it (`ENOENT`, `EACCES`…). */
export type FileReadError = Error & { readonly code?: string };

/** The real file system. */
export const nodeProcFs: ProcFs = {
  readdir: (path) => readdirSync(path),
  readlink: (path) => readlinkSync(path),
  readFile: (path) => readFileSync(path, 'utf8'),
  readFilesInBackground: (paths) => readFilesInBackground(paths),
};

/**
 * The reader thread: plain JavaScript run with `eval`, so it starts without the module loader or
 * the TypeScript stripper (~35 ms to its first read here, most of it Node's own thread start-up).
 * It and the main thread take files from a shared counter, so whichever is free reads the next.
 */
const READER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { readFileSync } = require('node:fs');
const { paths, next } = workerData;
for (let index = Atomics.add(next, 0, 1); index < paths.length; index = Atomics.add(next, 0, 1)) {
  let read;
  try {
    read = { text: readFileSync(paths[index], 'utf8') };
  } catch (err) {
    read = { error: { message: String(err && err.message), code: err && err.code } };
  }
  parentPort.postMessage({ index, read });
}
`;

/**
 * {@link ProcFs.readFilesInBackground} of the real file system: one worker thread when there is a
 * second CPU to run it on (`thread` overrides that guess). Without one, or when the thread cannot
 * be started or fails, the files are read on the calling thread as they are iterated.
 */
export function readFilesInBackground(paths: readonly string[], options: { readonly thread?: boolean } = {}): BackgroundReads {
  const count = paths.length;
  const next = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
  const worker = count > 0 && (options.thread ?? availableParallelism() >= 2) ? startReader(paths, next) : undefined;
  const delivered: FileReadAt[] = [];
  let workerEnded = worker === undefined;
  let wakeUp: (() => void) | undefined;
  const wake = (): void => {
    wakeUp?.();
    wakeUp = undefined;
  };
  if (worker !== undefined) {
    worker.on('message', ({ index, read }: { index: number; read: WorkerRead }) => {
      delivered.push({ index, read: fromWorker(read) });
      wake();
    });
    // A thread that fails (out of memory, resource limits) costs only time: what it claimed but
    // did not deliver is read on the calling thread.
    const end = (): void => {
      workerEnded = true;
      wake();
    };
    worker.once('error', end);
    worker.once('exit', end);
  }

  return {
    async *[Symbol.asyncIterator]() {
      const done = new Array<boolean>(count).fill(false);
      let remaining = count;
      const take = (at: FileReadAt): FileReadAt => {
        done[at.index] = true;
        remaining--;
        return at;
      };
      while (remaining > 0) {
        const ready = delivered.shift();
        if (ready !== undefined) {
          yield take(ready);
          continue;
        }
        const index = Atomics.add(next, 0, 1);
        if (index < count) {
          yield take({ index, read: readFileHere(paths[index]!) });
          continue;
        }
        if (workerEnded) {
          for (let missing = done.indexOf(false); missing !== -1; missing = done.indexOf(false)) {
            yield take({ index: missing, read: readFileHere(paths[missing]!) });
          }
          break;
        }
        await new Promise<void>((resolve) => (wakeUp = resolve));
      }
      // Everything is claimed, so the thread is about to end: the process need not wait for it.
      worker?.unref();
    },
  };
}

/** The reader thread, or `undefined` when none can be started. */
function startReader(paths: readonly string[], next: Int32Array): Worker | undefined {
  try {
    return new Worker(READER_SOURCE, { eval: true, workerData: { paths: [...paths], next } });
  } catch {
    return undefined;
  }
}

/** Reads one file on the calling thread. */
function readFileHere(path: string): FileRead {
  try {
    return { text: readFileSync(path, 'utf8') };
  } catch (err) {
    return { error: err instanceof Error ? err : new Error(String(err)) };
  }
}

/** A result as the reader thread posts it: errors as plain data, since `code` does not survive cloning. */
type WorkerRead = { readonly text: string } | { readonly error: { readonly message: string; readonly code?: string } };

function fromWorker(read: WorkerRead): FileRead {
  if ('text' in read) return read;
  const { message, code } = read.error;
  return { error: code === undefined ? new Error(message) : Object.assign(new Error(message), { code }) };
}

/** The `code` of a Node file-system error (`ENOENT`, `EACCES`…), or `undefined`. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}
