/**
 * Which processes hold which sockets: walks `<proc>/<pid>/fd/*`, whose links read
 * `socket:[<inode>]` for sockets, the way `ss -p` and `lsof` do. Processes come and go during the
 * walk; each such race costs at most that process's entry, never the scan.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { errorCode, nodeProcFs, type ProcFs } from './procfs.ts';

/** A process holding a socket open. */
export interface SocketOwner {
  readonly pid: number;
  /** Its name from `<proc>/<pid>/comm` (at most 15 characters, as `ps -o comm` and `ss -p` show it); absent when unreadable. */
  readonly command?: string;
}

/** What the walk found. */
export interface SocketOwners {
  /** Socket inode → the processes holding it, by ascending pid. Only inodes that were asked for. */
  readonly byInode: ReadonlyMap<number, readonly SocketOwner[]>;
  /** Processes whose open files were read. */
  readonly processesRead: number;
  /** Processes whose open files this user may not read (EACCES/EPERM): their sockets have no owner here. */
  readonly processesDenied: number;
  /** Processes that exited while being read, or whose entries were unreadable for another reason. */
  readonly processesGone: number;
}

/** Options of {@link walkSocketFds}. */
export interface WalkSocketFdsOptions {
  /** The proc root whose processes are walked, e.g. `/proc` or a host's procfs mounted elsewhere. */
  readonly procRoot: string;
  /** Default: the real file system. */
  readonly fs?: ProcFs;
  /**
   * File-system calls between two yields to the event loop, so a long-running process stays
   * responsive while a host with many open files is walked. Default {@link DEFAULT_BATCH_SIZE}
   * (a few milliseconds of work).
   */
  readonly batchSize?: number;
}

/** Options of {@link findSocketOwners} and {@link nameSocketOwners}. */
export interface FindSocketOwnersOptions extends WalkSocketFdsOptions {
  /** Inodes to report; other sockets are left out. Default: every socket. */
  readonly wanted?: ReadonlySet<number>;
}

/** Default of {@link WalkSocketFdsOptions.batchSize}. */
export const DEFAULT_BATCH_SIZE = 1_000;

/** What {@link walkSocketFds} saw: which processes hold which sockets, before their names are read. */
export interface SocketFdWalk {
  /** Socket inode → the pids holding it, each once, in walk order. */
  readonly pidsByInode: ReadonlyMap<number, readonly number[]>;
  /** Processes whose open files were read. */
  readonly processesRead: number;
  /** Processes whose open files this user may not read (EACCES/EPERM). */
  readonly processesDenied: number;
  /** Processes that exited while being read, or whose entries were unreadable for another reason. */
  readonly processesGone: number;
}

const SOCKET_LINK_PREFIX = 'socket:[';
const CHAR_CLOSING_BRACKET = 0x5d;

/**
 * Maps socket inodes to the processes holding them, for every process of `procRoot`:
 * {@link walkSocketFds}, then {@link nameSocketOwners}.
 *
 * @throws only when `procRoot` itself cannot be listed.
 */
export async function findSocketOwners(options: FindSocketOwnersOptions): Promise<SocketOwners> {
  return nameSocketOwners(await walkSocketFds(options), options);
}

/**
 * Reads the fd links of every process of `procRoot` and keeps those to sockets. Knows nothing of
 * the socket tables, so it can run while they are read.
 *
 * Sequential, one file-system call at a time, yielding every `batchSize` calls: the calls are
 * answered from kernel memory, and running them through the thread pool measured slower (see
 * `procfs.ts`). Concurrency is therefore bounded at one.
 *
 * @throws only when `procRoot` itself cannot be listed.
 */
export async function walkSocketFds(options: WalkSocketFdsOptions): Promise<SocketFdWalk> {
  const fs = options.fs ?? nodeProcFs;
  const root = options.procRoot;
  const yields = yieldCounter(options.batchSize);
  const pidsByInode = new Map<number, number[]>();
  const denied = new Set<number>();
  let processesRead = 0;
  let processesGone = 0;

  for (const name of fs.readdir(root)) {
    if (!isPid(name)) continue;
    const pid = Number(name);
    const fdDir = `${root}/${name}/fd`;
    let fds: string[];
    try {
      fds = fs.readdir(fdDir);
    } catch (err) {
      if (isPermissionError(err)) denied.add(pid);
      else processesGone++;
      if (yields.due()) await yieldToEventLoop();
      continue;
    }
    for (const fd of fds) {
      if (yields.due()) await yieldToEventLoop();
      let target: string;
      try {
        target = fs.readlink(`${fdDir}/${fd}`);
      } catch (err) {
        if (!isPermissionError(err)) continue; // ENOENT: the fd was closed since the directory was listed
        // The directory listed but its links are refused (a process this user may not trace):
        // the other fds would be refused alike.
        denied.add(pid);
        break;
      }
      const inode = socketInode(target);
      if (inode === undefined) continue;
      const pids = pidsByInode.get(inode);
      if (pids === undefined) pidsByInode.set(inode, [pid]);
      else if (!pids.includes(pid)) pids.push(pid); // a process may hold one socket under several fds
    }
    if (!denied.has(pid)) processesRead++;
  }
  return { pidsByInode, processesRead, processesDenied: denied.size, processesGone };
}

/**
 * The owners of the `wanted` sockets (all when absent) that a walk found, named from
 * `<proc>/<pid>/comm`, read once per process. A process that exited since the walk holds nothing.
 */
export async function nameSocketOwners(walk: SocketFdWalk, options: FindSocketOwnersOptions): Promise<SocketOwners> {
  const fs = options.fs ?? nodeProcFs;
  const wanted = options.wanted;
  const yields = yieldCounter(options.batchSize);
  // Owners are shared: one object per process, and one list per process for the sockets it holds
  // alone (most of them), rather than two new objects per socket.
  const owners = new Map<number, SocketOwner | null>();
  const soleOwnerLists = new Map<number, readonly SocketOwner[]>();
  const byInode = new Map<number, readonly SocketOwner[]>();
  const ownerOf = (pid: number): SocketOwner | null => {
    let owner = owners.get(pid);
    if (owner === undefined) {
      const command = readCommand(fs, `${options.procRoot}/${pid}/comm`);
      // null: the process exited after its fds were read; it holds nothing any more.
      owner = command === null ? null : command === undefined ? { pid } : { pid, command };
      owners.set(pid, owner);
    }
    return owner;
  };
  for (const [inode, pids] of walk.pidsByInode) {
    if (wanted !== undefined && !wanted.has(inode)) continue;
    if (pids.length === 1) {
      const pid = pids[0]!;
      if (!owners.has(pid) && yields.due()) await yieldToEventLoop();
      let list = soleOwnerLists.get(pid);
      if (list === undefined) {
        const owner = ownerOf(pid);
        list = owner === null ? [] : [owner];
        soleOwnerLists.set(pid, list);
      }
      if (list.length > 0) byInode.set(inode, list);
      continue;
    }
    const list: SocketOwner[] = [];
    for (const pid of [...pids].sort((a, b) => a - b)) {
      if (!owners.has(pid) && yields.due()) await yieldToEventLoop();
      const owner = ownerOf(pid);
      if (owner !== null) list.push(owner);
    }
    if (list.length > 0) byInode.set(inode, list);
  }
  let processesGone = walk.processesGone;
  for (const owner of owners.values()) if (owner === null) processesGone++;
  return { byInode, processesRead: walk.processesRead, processesDenied: walk.processesDenied, processesGone };
}

/**
 * Counts file-system calls and says when `batchSize` have passed since the last yield. Checked
 * inline before each call: awaiting a helper on every call would cost a microtask each.
 */
function yieldCounter(batchSize = DEFAULT_BATCH_SIZE): { due(): boolean } {
  const size = Math.max(1, batchSize);
  let calls = 0;
  return {
    due: () => {
      if (++calls < size) return false;
      calls = 0;
      return true;
    },
  };
}

/**
 * The inode of a `socket:[<inode>]` link target, or `undefined` for other targets (files,
 * pipes, `anon_inode:…`).
 */
export function socketInode(target: string): number | undefined {
  // Called for every open file on the host: digits are read in place, without slicing.
  const last = target.length - 1;
  if (last <= SOCKET_LINK_PREFIX.length || target.charCodeAt(last) !== CHAR_CLOSING_BRACKET || !target.startsWith(SOCKET_LINK_PREFIX)) {
    return undefined;
  }
  let inode = 0;
  for (let i = SOCKET_LINK_PREFIX.length; i < last; i++) {
    const digit = target.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) return undefined;
    inode = inode * 10 + digit;
  }
  return Number.isSafeInteger(inode) ? inode : undefined;
}

/** A process's name; `null` when the process is gone, `undefined` when it cannot be read otherwise. */
function readCommand(fs: ProcFs, path: string): string | null | undefined {
  try {
    const text = fs.readFile(path);
    return text.endsWith('\n') ? text.slice(0, -1) : text;
  } catch (err) {
    const code = errorCode(err);
    return code === 'ENOENT' || code === 'ESRCH' ? null : undefined;
  }
}

/** Digits only: the names of process directories in a proc root (`self`, `net`… are not). */
function isPid(name: string): boolean {
  if (name.length === 0 || name.length > 16) return false;
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if (code < 0x30 || code > 0x39) return false;
  }
  return true;
}

function isPermissionError(err: unknown): boolean {
  const code = errorCode(err);
  return code === 'EACCES' || code === 'EPERM';
}
