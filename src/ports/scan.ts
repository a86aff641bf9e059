/**
 * `scanHost`: the listening sockets of one host, read from its proc file system, as the
 * versioned document `crowsnest ports scan --output json` prints and the cluster collector merges
 * per node.
 *
 * "Listening" means what `ss -ltnup` lists: TCP sockets in LISTEN and bound, unconnected UDP
 * sockets (`UNCONN`), IPv4 and IPv6, one entry per socket — two SO_REUSEPORT listeners on one
 * port are two entries, as in `ss`.
 *
 * `/proc/net/*` describe the network namespace of the process reading them (`/proc/net` is a link
 * to `/proc/self/net`). A pod with `hostPID: true` but its own network reads the node's sockets
 * through a host process instead: `<proc>/1/net/*`, which {@link ScanHostOptions.netPid} selects.
 */
import { hostname as osHostname } from 'node:os';
import { REPORT_API_VERSION } from '../kube/objects/labels.ts';
import { nameSocketOwners, walkSocketFds, type SocketFdWalk, type SocketOwner } from './processes.ts';
import { errorCode, nodeProcFs, type FileReadError, type ProcFs } from './procfs.ts';
import {
  STATE_LISTEN,
  isListeningState,
  parseProcNet,
  type ByteOrder,
  type Family,
  type MalformedLine,
  type ProcNetSocket,
  type ProcNetTable,
  type Protocol,
} from '../observe/procnet.ts';

export type { Family, MalformedLine, Protocol } from '../observe/procnet.ts';
export type { SocketOwner } from './processes.ts';

/** `apiVersion` of {@link HostScan}; bumped on any incompatible change of the document. */
export const HOST_SCAN_API_VERSION = REPORT_API_VERSION;

/** `kind` of {@link HostScan}. */
export const HOST_SCAN_KIND = 'HostPortScan';

/** The proc root read when none is given. */
export const DEFAULT_PROC_ROOT = '/proc';

/** State names as `ss` prints them: `LISTEN` for TCP listeners, `UNCONN` for bound unconnected sockets. */
export type SocketState = 'LISTEN' | 'UNCONN';

/** One listening socket. */
export interface HostSocket {
  readonly protocol: Protocol;
  /**
   * `ipv6` for every socket of an IPv6 table, including `::` listeners that also accept IPv4
   * (dual-stack): /proc does not tell whether IPV6_V6ONLY is set.
   */
  readonly family: Family;
  /** Local address, without brackets: `0.0.0.0`, `127.0.0.1`, `::`, `::1`, `::ffff:10.0.0.1`. */
  readonly address: string;
  /** Local port. */
  readonly port: number;
  readonly state: SocketState;
  /** Socket inode: identifies the socket across tables and process fds. */
  readonly inode: number;
  /** User id of the socket's owner. */
  readonly uid: number;
  /** The lowest pid among the processes holding the socket; absent when none was found. */
  readonly pid?: number;
  /** Name (`comm`) of {@link pid}'s process; absent when unknown. */
  readonly process?: string;
  /** Every process holding the socket (pre-forking servers share one), by pid; present with {@link pid}. */
  readonly owners?: readonly SocketOwner[];
}

/** How complete the socket → process mapping is. */
export interface ProcessInfo {
  /** Whether the owning process is known for every socket. */
  readonly available: boolean;
  /** Sockets with no owning process found. */
  readonly unavailableSockets: number;
  /** Processes whose open files this user may not read; run as root to see them. */
  readonly processesDenied: number;
  /** Why sockets have no owner, in words; present when {@link unavailableSockets} > 0. */
  readonly reason?: string;
}

/** One socket table read. */
export interface ScanSource {
  /** e.g. `/proc/1/net/tcp6`. */
  readonly path: string;
  readonly protocol: Protocol;
  readonly family: Family;
  /** `false` when the table does not exist, e.g. `tcp6` on a host without IPv6. */
  readonly present: boolean;
  /** Data lines read (header excluded), every state. */
  readonly lines: number;
  /** Listening sockets found in it. */
  readonly sockets: number;
  /** Lines skipped because they could not be read. */
  readonly malformedLines: number;
  /** The first few of them. */
  readonly malformed: readonly MalformedLine[];
}

/** The listening sockets of one host: the JSON document of `crowsnest ports scan --output json`. */
export interface HostScan {
  readonly apiVersion: typeof HOST_SCAN_API_VERSION;
  readonly kind: typeof HOST_SCAN_KIND;
  /** Name of the host scanned, by default this machine's host name. */
  readonly hostname: string;
  /** When the scan started, ISO 8601 in UTC. */
  readonly scannedAt: string;
  /** Sorted by protocol, family, port, address, then inode. */
  readonly sockets: readonly HostSocket[];
  readonly processInfo: ProcessInfo;
  /** Malformed lines across all {@link sources}; skipped, counted, never fatal. */
  readonly malformedLines: number;
  /** The tables read, in the order tcp, tcp6, udp, udp6. */
  readonly sources: readonly ScanSource[];
}

/** Options of {@link scanHost}. */
export interface ScanHostOptions {
  /** Proc file system to read. Default {@link DEFAULT_PROC_ROOT}. */
  readonly procRoot?: string;
  /**
   * Read the socket tables of this process's network namespace (`<procRoot>/<netPid>/net/`)
   * instead of the reader's own (`<procRoot>/net/`). `1` reads the host's from a pod with
   * `hostPID: true`. Default: the reader's own.
   */
  readonly netPid?: number;
  /** Default: `os.hostname()`. */
  readonly hostname?: string;
  /** Clock for {@link HostScan.scannedAt}. Default: the system clock. */
  readonly now?: () => Date;
  /** Byte order of the host that wrote the tables. Default: this host's. */
  readonly byteOrder?: ByteOrder;
  /** Default: the real file system. */
  readonly fs?: ProcFs;
}

const TABLES: readonly { readonly file: string; readonly protocol: Protocol; readonly family: Family }[] = [
  { file: 'tcp', protocol: 'tcp', family: 'ipv4' },
  { file: 'tcp6', protocol: 'tcp', family: 'ipv6' },
  { file: 'udp', protocol: 'udp', family: 'ipv4' },
  { file: 'udp6', protocol: 'udp', family: 'ipv6' },
];

/**
 * Scans a host's listening sockets and the processes holding them.
 *
 * @throws Error when no socket table exists under the net directory (not a proc file system, or
 *   a pid that is gone), or when one cannot be read (e.g. EACCES).
 */
export async function scanHost(options: ScanHostOptions = {}): Promise<HostScan> {
  const fs = options.fs ?? nodeProcFs;
  const procRoot = trimTrailingSlashes(options.procRoot ?? DEFAULT_PROC_ROOT);
  const netDir = options.netPid === undefined ? `${procRoot}/net` : `${procRoot}/${options.netPid}/net`;
  const scannedAt = (options.now ?? (() => new Date()))().toISOString();

  // The socket tables are read on another thread while this one walks the processes' fds: two
  // independent pieces of kernel work of similar size (~50 ms each at 10,000 sockets), so on two
  // cores the scan takes about the longer of them instead of their sum. Processes before sockets
  // is also the order `ss -p` reads them in.
  const paths = TABLES.map((table) => `${netDir}/${table.file}`);
  const tableReads = fs.readFilesInBackground(paths);
  let walk: SocketFdWalk | undefined;
  let walkFailure: string | undefined;
  try {
    walk = await walkSocketFds({ procRoot, fs });
  } catch (err) {
    walkFailure = `cannot list the processes in ${procRoot}: ${describe(err)}`;
  }

  // Each table is parsed as it arrives; most arrive while the walk runs, read by the other thread.
  const tables = new Array<{ readonly parsed: ProcNetTable } | { readonly error: FileReadError }>(TABLES.length);
  for await (const { index, read } of tableReads) {
    tables[index] =
      'error' in read ? read : { parsed: parseProcNet(read.text, { family: TABLES[index]!.family, keep: isListeningState, byteOrder: options.byteOrder }) };
  }

  // Rows are kept as parsed, with their protocol alongside, until their owners are known: each
  // socket object is then built once (a busy host has tens of thousands).
  const rows: ProcNetSocket[] = [];
  const rowProtocols: Protocol[] = [];
  const sources: ScanSource[] = [];
  for (const [index, table] of TABLES.entries()) {
    const path = paths[index]!;
    const result = tables[index]!;
    if ('error' in result) {
      if (errorCode(result.error) !== 'ENOENT') throw new Error(`cannot read ${path}: ${describe(result.error)}`);
      sources.push({ path, protocol: table.protocol, family: table.family, present: false, lines: 0, sockets: 0, malformedLines: 0, malformed: [] });
      continue;
    }
    const parsed = result.parsed;
    // A socket can appear twice when the table changes between the kernel's page-sized reads.
    const seen = new Set<number>();
    let found = 0;
    for (const row of parsed.sockets) {
      if (row.inode !== 0 && seen.has(row.inode)) continue;
      seen.add(row.inode);
      found++;
      rows.push(row);
      rowProtocols.push(table.protocol);
    }
    sources.push({
      path,
      protocol: table.protocol,
      family: table.family,
      present: true,
      lines: parsed.lines,
      sockets: found,
      malformedLines: parsed.malformedCount,
      malformed: parsed.malformed,
    });
  }
  if (sources.every((source) => !source.present)) {
    const hint = options.netPid === undefined ? `is ${procRoot} a proc file system?` : `is there a process ${options.netPid} in ${procRoot}?`;
    throw new Error(`no socket tables (tcp, tcp6, udp, udp6) in ${netDir}: ${hint}`);
  }

  const owners =
    walk === undefined || rows.length === 0
      ? undefined
      : await nameSocketOwners(walk, { procRoot, fs, wanted: new Set(rows.map((row) => row.inode)) });
  let unavailableSockets = 0;
  const sockets = rows.map((row, i) => {
    const found = owners?.byInode.get(row.inode);
    if (found === undefined || found.length === 0) unavailableSockets++;
    return hostSocket(rowProtocols[i]!, row, found);
  });
  sockets.sort(compareSockets);

  const processesDenied = owners?.processesDenied ?? 0;
  const processInfo: ProcessInfo =
    unavailableSockets === 0
      ? { available: true, unavailableSockets, processesDenied }
      : { available: false, unavailableSockets, processesDenied, reason: walkFailure ?? unavailableReason(procRoot, processesDenied) };

  return {
    apiVersion: HOST_SCAN_API_VERSION,
    kind: HOST_SCAN_KIND,
    hostname: options.hostname ?? osHostname(),
    scannedAt,
    sockets,
    processInfo,
    malformedLines: sources.reduce((sum, source) => sum + source.malformedLines, 0),
    sources,
  };
}

/** A socket as the document shows it; `owners` empty or absent when none is known. */
function hostSocket(protocol: Protocol, row: ProcNetSocket, owners: readonly SocketOwner[] | undefined): HostSocket {
  const state: SocketState = row.state === STATE_LISTEN ? 'LISTEN' : 'UNCONN';
  const { family, address, port, inode, uid } = row;
  const first = owners?.[0];
  if (owners === undefined || first === undefined) return { protocol, family, address, port, state, inode, uid };
  // Fields in this order so the JSON reads pid, process, owners.
  return first.command === undefined
    ? { protocol, family, address, port, state, inode, uid, pid: first.pid, owners }
    : { protocol, family, address, port, state, inode, uid, pid: first.pid, process: first.command, owners };
}

function unavailableReason(procRoot: string, processesDenied: number): string {
  if (processesDenied > 0) {
    return `not permitted to read the open files of ${processesDenied} process${processesDenied === 1 ? '' : 'es'}; run as root with CAP_SYS_PTRACE, outside AppArmor/SELinux confinement, to see them`;
  }
  // Nothing was refused, so no process in sight holds them.
  return `no process in ${procRoot} holds them: kernel sockets, or processes of another PID namespace (in a pod: hostPID)`;
}

/** Order of {@link HostScan.sockets}: protocol, family, port, address, inode. */
export function compareSockets(a: HostSocket, b: HostSocket): number {
  return (
    compareText(a.protocol, b.protocol) ||
    compareText(a.family, b.family) ||
    a.port - b.port ||
    compareText(a.address, b.address) ||
    a.inode - b.inode
  );
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function trimTrailingSlashes(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  return trimmed === '' ? '/' : trimmed;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
