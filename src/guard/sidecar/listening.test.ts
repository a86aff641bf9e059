import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createSocket } from 'node:dgram';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readListeningSockets } from './listening.ts';

const HEADER_TCP = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
const HEADER_UDP = '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when ref pointer drops\n';

describe('readListeningSockets', () => {
  it('lists TCP listeners and bound UDP sockets of both families, each once, and skips connections', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'guard-procnet-'));
    try {
      await writeFile(join(dir, 'tcp'), `${HEADER_TCP}`
        + '   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65532        0 1001 1 0000000000000000 100 0 0 10 0\n'
        + '   1: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65532        0 1002 1 0000000000000000 100 0 0 10 0\n'
        + '   2: 0700010A:1F90 0900010A:D431 01 00000000:00000000 00:00000000 00000000 65532        0 1003 1 0000000000000000 20 4 30 10 -1\n'
        + 'garbage line\n');
      await writeFile(join(dir, 'tcp6'), `${HEADER_TCP}`
        + '   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 65532 0 1004 1 0000000000000000 100 0 0 10 0\n');
      await writeFile(join(dir, 'udp'), `${HEADER_UDP}`
        + ' 100: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 1005 2 0000000000000000 0\n'
        + ' 101: 0700010A:E0A1 0A00010A:0035 01 00000000:00000000 00:00000000 00000000 0 0 1006 2 0000000000000000 0\n');
      // No udp6: a kernel without IPv6 is not a fault.
      const read = await readListeningSockets(dir);
      assert.deepEqual(read.sockets, [
        { protocol: 'TCP', address: '127.0.0.1', port: 3306 },
        { protocol: 'TCP', address: '0.0.0.0', port: 8080 },
        { protocol: 'TCP', address: '::', port: 8080 },
        { protocol: 'UDP', address: '0.0.0.0', port: 53 },
      ]);
      assert.deepEqual(read.unreadable, []);
      assert.equal(read.malformedLines, 1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('says which table it could not read', async () => {
    const read = await readListeningSockets('/nonexistent-proc-net');
    assert.deepEqual(read.unreadable.map((u) => u.table), ['tcp', 'udp']);
    assert.deepEqual(read.sockets, []);
  });

  it('sees the sockets this process opens in its own network namespace (/proc/self/net)', async () => {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const udp = createSocket('udp6');
    udp.bind(0, '::1');
    await once(udp, 'listening');
    try {
      const { port } = server.address() as AddressInfo;
      const read = await readListeningSockets();
      assert.ok(read.sockets.some((s) => s.protocol === 'TCP' && s.address === '127.0.0.1' && s.port === port), JSON.stringify(read.sockets));
      assert.ok(read.sockets.some((s) => s.protocol === 'UDP' && s.address === '::1' && s.port === udp.address().port), JSON.stringify(read.sockets));
    } finally {
      server.close();
      udp.close();
    }
  });
});
