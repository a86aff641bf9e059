/**
 * Test helper: reads the output of `ss -H -ltnup` (iproute2 6.x) into the same terms as a
 * {@link HostScan}, so tests and the benchmark can compare the two.
 *
 *   udp UNCONN 0 0        127.0.0.1:55528  0.0.0.0:* users:(("MainThread",pid=7317,fd=28))
 *   tcp LISTEN 0 4096 127.0.0.53%lo:53     0.0.0.0:* users:(("systemd-resolve",pid=9,fd=14))
 *   tcp LISTEN 0 511                *:38221       *:* users:(("node",pid=7317,fd=25))
 *
 * `ss` knows more than /proc tells: `*` is an IPv6 wildcard listener that also accepts IPv4
 * (`[::]` when IPV6_V6ONLY is set), and `%lo` names a device the socket is bound to. Both are
 * folded into what /proc shows: `::`, and the address alone.
 */
import type { HostScan } from '../scan.ts';

/** One socket as `ss` lists it. */
export interface SsSocket {
  readonly protocol: 'tcp' | 'udp';
  /** `LISTEN` or `UNCONN`. */
  readonly state: string;
  /** Without brackets or `%device`; `*` becomes `::`. */
  readonly address: string;
  readonly port: number;
  /** The processes `ss -p` found, in its order. */
  readonly users: readonly { readonly command: string; readonly pid: number; readonly fd: number }[];
}

const USER = /\("((?:[^"\\]|\\.)*)",pid=(\d+),fd=(\d+)\)/g;

/**
 * Parses `ss -H -ltnup` output (no header line).
 *
 * @throws Error naming the line it cannot read: the helper must not silently drop sockets.
 */
export function parseSs(output: string): SsSocket[] {
  const sockets: SsSocket[] = [];
  for (const line of output.split('\n')) {
    if (line.trim() === '') continue;
    const fields = line.trim().split(/\s+/);
    const [netid, state, , , local] = fields;
    if ((netid !== 'tcp' && netid !== 'udp') || state === undefined || local === undefined) {
      throw new Error(`unexpected ss line: ${line}`);
    }
    const colon = local.lastIndexOf(':');
    if (colon === -1) throw new Error(`unexpected ss address in: ${line}`);
    let address = local.slice(0, colon);
    const portText = local.slice(colon + 1);
    const port = Number(portText);
    const device = address.lastIndexOf('%');
    if (device !== -1) address = address.slice(0, device);
    if (address.startsWith('[') && address.endsWith(']')) address = address.slice(1, -1);
    if (address === '*') address = '::';
    if (address === '' || !/^\d+$/.test(portText)) throw new Error(`unexpected ss address in: ${line}`);
    const process = fields.slice(6).join(' ');
    const users = [...process.matchAll(USER)].map((m) => ({ command: m[1]!, pid: Number(m[2]), fd: Number(m[3]) }));
    sockets.push({ protocol: netid, state, address, port, users });
  }
  return sockets;
}

/** The key sockets are compared by: protocol, address and port, e.g. `tcp [::1]:8080`. */
export function socketKey(socket: { readonly protocol: string; readonly address: string; readonly port: number }): string {
  const address = socket.address.includes(':') ? `[${socket.address}]` : socket.address;
  return `${socket.protocol} ${address}:${socket.port}`;
}

/** How many sockets have each key: SO_REUSEPORT listeners share one. */
export function countByKey(sockets: readonly { readonly protocol: string; readonly address: string; readonly port: number }[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const socket of sockets) counts.set(socketKey(socket), (counts.get(socketKey(socket)) ?? 0) + 1);
  return counts;
}

/**
 * Differences between a scan and `ss` listings taken just before and just after it. A socket
 * count within [min, max] of the two listings is consistent with sockets opening or closing
 * during the scan; anything else is a difference.
 *
 * @returns one line per differing key (`tcp 127.0.0.1:80: scan 0, ss 1/1`), sorted; empty when they agree.
 */
export function diffWithSs(scan: Pick<HostScan, 'sockets'>, before: readonly SsSocket[], after: readonly SsSocket[]): string[] {
  const ours = countByKey(scan.sockets);
  const first = countByKey(before);
  const second = countByKey(after);
  const keys = new Set([...ours.keys(), ...first.keys(), ...second.keys()]);
  const differences: string[] = [];
  for (const key of keys) {
    const count = ours.get(key) ?? 0;
    const a = first.get(key) ?? 0;
    const b = second.get(key) ?? 0;
    if (count < Math.min(a, b) || count > Math.max(a, b)) differences.push(`${key}: scan ${count}, ss ${a}/${b}`);
  }
  return differences.sort();
}
