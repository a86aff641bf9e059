/**
 * The sockets listening in the pod's network namespace, which the sidecar shares with every
 * container of the pod: `/proc/net/{tcp,tcp6,udp,udp6}` read through /proc/self (the tables of
 * the reader's own namespace), parsed with the ports scan's parser. TCP sockets in LISTEN and
 * unconnected (bound) UDP sockets count, as `ss -ltun` lists them.
 *
 * No process names: those need /proc/<pid>/fd of the other containers, which a pod does not share
 * by default (shareProcessNamespace) and the sidecar's non-root user may not read. The operator
 * compares the ports with the pod spec; who listens is for the incident's forensics.
 */
import { readFile } from 'node:fs/promises';
import { type Family, parseProcNet, STATE_CLOSE, STATE_LISTEN } from '../../observe/procnet.ts';
import type { ListeningSocket } from '../contract.ts';

interface Table {
  readonly file: string;
  readonly protocol: ListeningSocket['protocol'];
  readonly family: Family;
}

const TABLES: readonly Table[] = [
  { file: 'tcp', protocol: 'TCP', family: 'ipv4' },
  { file: 'tcp6', protocol: 'TCP', family: 'ipv6' },
  { file: 'udp', protocol: 'UDP', family: 'ipv4' },
  { file: 'udp6', protocol: 'UDP', family: 'ipv6' },
];

/** What one read found. */
export interface ListeningRead {
  /** Sorted by protocol, port, address; each socket once. */
  readonly sockets: ListeningSocket[];
  /** Tables that could not be read (a kernel without IPv6 has no tcp6), with why. */
  readonly unreadable: ReadonlyArray<{ readonly table: string; readonly message: string }>;
  /** Lines of the tables that were not socket rows. */
  readonly malformedLines: number;
}

/**
 * Reads the listening sockets of this network namespace.
 *
 * @param procNetDir the directory of the tables; default `/proc/self/net`.
 */
export async function readListeningSockets(procNetDir = '/proc/self/net'): Promise<ListeningRead> {
  const unreadable: Array<{ table: string; message: string }> = [];
  let malformedLines = 0;
  const byKey = new Map<string, ListeningSocket>();
  await Promise.all(TABLES.map(async (table) => {
    let text: string;
    try {
      text = await readFile(`${procNetDir}/${table.file}`, 'latin1');
    } catch (err) {
      // A missing IPv6 table is a kernel without IPv6, not a fault.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || table.family === 'ipv4') unreadable.push({ table: table.file, message: (err as Error).message });
      return;
    }
    const listening = table.protocol === 'TCP' ? STATE_LISTEN : STATE_CLOSE;
    const parsed = parseProcNet(text, { family: table.family, keep: (state) => state === listening, maxMalformedDetails: 0 });
    malformedLines += parsed.malformedCount;
    for (const socket of parsed.sockets) {
      const entry: ListeningSocket = { protocol: table.protocol, address: socket.address, port: socket.port };
      byKey.set(`${entry.protocol}/${entry.address}/${entry.port}`, entry);
    }
  }));
  const sockets = [...byKey.values()].sort((a, b) => compare(a.protocol, b.protocol) || a.port - b.port || compare(a.address, b.address));
  return { sockets, unreadable, malformedLines };
}

/** Code-unit order, the same in every locale. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
