/**
 * Regenerates the captured fixtures of this directory from the machine it runs on:
 *
 *   node src/ports/testdata/capture.ts
 *
 * Opens the listeners the issue names (TCP on 127.0.0.1, 0.0.0.0, ::1, :: dual-stack, :: IPv6
 * only, ::ffff:127.0.0.1; UDP on 127.0.0.1, 0.0.0.0, ::1, ::), plus sockets `ss -l` must not
 * list (an established TCP connection, a connected UDP socket), then copies /proc/net/{tcp,tcp6,
 * udp,udp6} and the output of `ss -H -ltnup` taken right after. Rows in TIME_WAIT (other
 * programs' closed connections) are cut to a few so the files stay small. Captures are retried
 * until /proc and `ss` agree, so a socket opened by another program in between cannot creep in.
 */
import { execFileSync } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const TABLES = ['tcp', 'tcp6', 'udp', 'udp6'] as const;
const TIME_WAIT_ROWS_KEPT = 3;

function listen(host: string, ipv6Only = false): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host, port: 0, ipv6Only }, () => resolve(server));
  });
}

function bind(type: 'udp4' | 'udp6', host: string): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(type);
    socket.once('error', reject);
    socket.bind(0, host, () => resolve(socket));
  });
}

/** Keeps the header, every row not in TIME_WAIT (`06`), and the first few TIME_WAIT rows. */
function trimTimeWait(text: string): string {
  let timeWait = 0;
  return text
    .split('\n')
    .filter((line) => {
      if (line.trim().split(/ +/)[3] !== '06') return true;
      return ++timeWait <= TIME_WAIT_ROWS_KEPT;
    })
    .join('\n');
}

const servers = [
  await listen('127.0.0.1'),
  await listen('0.0.0.0'),
  await listen('::1'),
  await listen('::'),
  await listen('::', true),
  await listen('::ffff:127.0.0.1'),
];
const udp = [await bind('udp4', '127.0.0.1'), await bind('udp4', '0.0.0.0'), await bind('udp6', '::1'), await bind('udp6', '::')];
const firstPort = (servers[0]!.address() as { port: number }).port;
const client = connect(firstPort, '127.0.0.1');
await new Promise((resolve) => client.once('connect', resolve));
const connectedUdp = createSocket('udp4');
await new Promise<void>((resolve) => connectedUdp.connect(udp[0]!.address().port, '127.0.0.1', resolve));

for (let attempt = 1; ; attempt++) {
  const before = execFileSync('ss', ['-H', '-ltnup'], { encoding: 'utf8' });
  const tables = TABLES.map((name) => readFileSync(`/proc/net/${name}`, 'utf8'));
  const after = execFileSync('ss', ['-H', '-ltnup'], { encoding: 'utf8' });
  if (before === after || attempt === 10) {
    TABLES.forEach((name, i) => { writeFileSync(join(here, `proc-net-${name}`), trimTimeWait(tables[i]!)); });
    writeFileSync(join(here, 'ss-ltnup.txt'), after);
    console.log(`captured on attempt ${attempt}${before === after ? '' : ' (ss output still changing)'}`);
    break;
  }
}

client.destroy();
connectedUdp.close();
for (const server of servers) server.close();
for (const socket of udp) socket.close();
