/**
 * `crowsnest ports scan` against `ss -ltnup` (iproute2) on this very host: the test opens real
 * listeners — TCP on 127.0.0.1, 0.0.0.0, ::1, :: (dual-stack), :: (IPv6 only), two SO_REUSEPORT
 * listeners sharing a port; UDP on 127.0.0.1, 0.0.0.0, ::1, :: — and sockets that must not be
 * listed (an established TCP connection, a connected UDP socket), then compares the whole host's
 * listening sockets, not just its own.
 *
 * Other programs open and close sockets meanwhile, so `ss` runs just before and just after the
 * scan: a socket count between the two listings is consistent, anything else is a difference.
 * A difference is retried twice before the test fails, printing it.
 *
 *   node --test 'test/host/*.test.ts'
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { scanHost, type HostScan } from '../../src/ports/scan.ts';
import { diffWithSs, parseSs, socketKey, type SsSocket } from '../../src/ports/testdata/ss.ts';

const run = promisify(execFile);
const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ATTEMPTS = 3;

const ssMissing = spawnSync('ss', ['-V']).status !== 0;
const skip = process.platform !== 'linux' ? 'Linux only: reads /proc' : ssMissing ? 'ss (iproute2) is not installed' : false;

interface Endpoint {
  readonly protocol: 'tcp' | 'udp';
  readonly address: string;
  readonly port: number;
}

async function listSs(): Promise<SsSocket[]> {
  const { stdout } = await run('ss', ['-H', '-ltnup'], { maxBuffer: 256 * 1024 * 1024 });
  return parseSs(stdout);
}

function listen(host: string, options: { ipv6Only?: boolean; reusePort?: boolean; port?: number } = {}): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => socket.on('error', () => {}));
    server.once('error', reject);
    server.listen({ host, port: options.port ?? 0, ipv6Only: options.ipv6Only ?? false, reusePort: options.reusePort ?? false }, () =>
      resolve(server),
    );
  });
}

function bind(type: 'udp4' | 'udp6', host: string): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(type);
    socket.once('error', reject);
    socket.bind(0, host, () => resolve(socket));
  });
}

/** Whether this host can bind ::1 (containers often run without IPv6). */
async function hasIPv6(): Promise<boolean> {
  try {
    const server = await listen('::1');
    await new Promise((resolve) => server.close(resolve));
    return true;
  } catch {
    return false;
  }
}

describe('ports scan finds what ss -ltnup finds on this host', { skip }, () => {
  const servers: Server[] = [];
  const udpSockets: UdpSocket[] = [];
  let client: Socket | undefined;
  let connectedUdp: UdpSocket | undefined;
  /** Our listeners, as the scan must report them. */
  const ours: Endpoint[] = [];
  /** Our sockets that are bound but must not be listed. */
  const notListening: Endpoint[] = [];

  before(async () => {
    const ipv6 = await hasIPv6();
    const tcpHosts = ['127.0.0.1', '0.0.0.0', ...(ipv6 ? ['::1', '::'] : [])];
    for (const host of tcpHosts) servers.push(await listen(host));
    if (ipv6) servers.push(await listen('::', { ipv6Only: true }));
    const shared = await listen('127.0.0.1', { reusePort: true });
    servers.push(shared, await listen('127.0.0.1', { reusePort: true, port: (shared.address() as { port: number }).port }));
    for (const server of servers) {
      const { address, port } = server.address() as { address: string; port: number };
      ours.push({ protocol: 'tcp', address, port });
    }

    const udpBinds: (readonly ['udp4' | 'udp6', string])[] = [['udp4', '127.0.0.1'], ['udp4', '0.0.0.0']];
    if (ipv6) udpBinds.push(['udp6', '::1'], ['udp6', '::']);
    for (const [type, host] of udpBinds) udpSockets.push(await bind(type, host));
    for (const socket of udpSockets) ours.push({ protocol: 'udp', address: socket.address().address, port: socket.address().port });

    const firstPort = (servers[0]!.address() as { port: number }).port;
    client = connect(firstPort, '127.0.0.1');
    await new Promise((resolve) => client!.once('connect', resolve));
    notListening.push({ protocol: 'tcp', address: '127.0.0.1', port: client.localPort! });
    connectedUdp = createSocket('udp4');
    await new Promise<void>((resolve) => connectedUdp!.connect(udpSockets[0]!.address().port, '127.0.0.1', resolve));
    notListening.push({ protocol: 'udp', address: '127.0.0.1', port: connectedUdp.address().port });
  });

  after(async () => {
    client?.destroy();
    connectedUdp?.close();
    for (const socket of udpSockets) socket.close();
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  });

  test('the same listening sockets, by protocol, address and port, for the whole host', async () => {
    let differences: string[] = [];
    let listed: SsSocket[] = [];
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const before = await listSs();
      const scan = await scanHost();
      listed = await listSs();
      differences = diffWithSs(scan, before, listed);
      if (differences.length === 0) break;
    }
    assert.deepEqual(differences, [], `scan and ss differ (${ATTEMPTS} attempts):\n  ${differences.join('\n  ')}`);
    // Guards against both sides agreeing on nothing, e.g. ss printing no sockets at all.
    const listedKeys = new Set(listed.map(socketKey));
    assert.deepEqual(ours.filter((endpoint) => !listedKeys.has(socketKey(endpoint))), [], 'ss lists our listeners');
  });

  test('our listeners carry our pid and the process name ss shows for us; bound non-listeners are absent', async () => {
    const scan = await scanHost();
    const listed = await listSs();
    const ourName = listed.flatMap((socket) => socket.users).find((user) => user.pid === process.pid)?.command;
    assert.ok(ourName, `ss shows a process name for pid ${process.pid}`);

    const keys = new Set(scan.sockets.map(socketKey));
    for (const endpoint of ours) {
      const found = scan.sockets.filter((socket) => socketKey(socket) === socketKey(endpoint));
      assert.ok(found.length > 0, `${socketKey(endpoint)} is listed`);
      for (const socket of found) {
        assert.equal(socket.pid, process.pid, `${socketKey(endpoint)} pid`);
        assert.equal(socket.process, ourName, `${socketKey(endpoint)} process`);
        assert.equal(socket.family, endpoint.address.includes(':') ? 'ipv6' : 'ipv4');
      }
    }
    const shared = ours.filter((endpoint) => ours.filter((other) => socketKey(other) === socketKey(endpoint)).length > 1);
    assert.equal(shared.length, 2, 'the two SO_REUSEPORT listeners');
    assert.equal(scan.sockets.filter((socket) => socketKey(socket) === socketKey(shared[0]!)).length, 2, 'one entry per socket');
    for (const endpoint of notListening) assert.ok(!keys.has(socketKey(endpoint)), `${socketKey(endpoint)} is not listed`);
  });

  test('every socket has the processes ss shows for it', async () => {
    let differences: string[] = [];
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const before = await listSs();
      const scan = await scanHost();
      const after = await listSs();
      differences = ownerDifferences(scan, before, after);
      if (differences.length === 0) break;
    }
    assert.deepEqual(differences, [], `owners differ from ss (${ATTEMPTS} attempts):\n  ${differences.join('\n  ')}`);
  });

  test('the crowsnest binary prints a HostPortScan document with our listeners', async () => {
    const { stdout } = await run(join(repo, 'bin', 'crowsnest'), ['ports', 'scan', '--output', 'json'], { maxBuffer: 256 * 1024 * 1024 });
    const scan = JSON.parse(stdout) as HostScan;
    assert.equal(scan.apiVersion, 'crowsnest.dev/v1alpha1');
    assert.equal(scan.kind, 'HostPortScan');
    assert.ok(!Number.isNaN(Date.parse(scan.scannedAt)));
    const keys = new Set(scan.sockets.map(socketKey));
    assert.deepEqual(ours.filter((endpoint) => !keys.has(socketKey(endpoint))), []);
    const first = scan.sockets.find((socket) => socketKey(socket) === socketKey(ours[0]!));
    assert.equal(first?.pid, process.pid);
  });
});

/**
 * Sockets whose owning pids differ from those `ss -p` shows. Only sockets alone on their key and
 * listed alike by both `ss` runs are compared: for the others, which socket is which is unknown,
 * or their owners changed during the scan.
 */
function ownerDifferences(scan: HostScan, before: readonly SsSocket[], after: readonly SsSocket[]): string[] {
  const alone = <T extends Endpoint>(sockets: readonly T[]): Map<string, T> => {
    const byKey = new Map<string, T[]>();
    for (const socket of sockets) byKey.set(socketKey(socket), [...(byKey.get(socketKey(socket)) ?? []), socket]);
    return new Map([...byKey].filter(([, list]) => list.length === 1).map(([key, list]) => [key, list[0]!]));
  };
  const pidsOf = (socket: SsSocket): string => [...new Set(socket.users.map((user) => user.pid))].sort((a, b) => a - b).join(',');
  const first = alone(before);
  const second = alone(after);
  const differences: string[] = [];
  for (const [key, socket] of alone(scan.sockets)) {
    const a = first.get(key);
    const b = second.get(key);
    if (!a || !b || pidsOf(a) !== pidsOf(b)) continue;
    const ours = (socket.owners ?? []).map((owner) => owner.pid).join(',');
    if (ours !== pidsOf(b)) differences.push(`${key}: scan pids [${ours}], ss pids [${pidsOf(b)}]`);
  }
  return differences.sort();
}
