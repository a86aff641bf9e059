import assert from 'node:assert/strict';
import { failing } from './testdata/failing-fs.ts';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { nodeProcFs, type ProcFs } from './procfs.ts';
import { HOST_SCAN_API_VERSION, HOST_SCAN_KIND, compareSockets, scanHost, type HostScan, type ScanHostOptions } from './scan.ts';
import { countByKey, parseSs } from './testdata/ss.ts';

const testdata = new URL('testdata/', import.meta.url);
const fixture = (name: string): string => new URL(name, testdata).pathname;
const TABLES = ['tcp', 'tcp6', 'udp', 'udp6'];
const NOW = new Date('2026-01-02T03:04:05.678Z');

/** Inode of the captured 127.0.0.1 TCP listener held by kube-apiserver (see testdata/ss-ltnup.txt). */
const APISERVER_INODE = inodeOf('proc-net-tcp', '0100007F:9FEB');

function inodeOf(file: string, localEndpoint: string): number {
  const line = nodeProcFs.readFile(fixture(file)).split('\n').find((l) => l.includes(` ${localEndpoint} `));
  if (!line) throw new Error(`no ${localEndpoint} in ${file}`);
  return Number(line.trim().split(/ +/)[9]);
}

/**
 * A proc root holding the captured tables as its own net namespace, and one process (pid 5586,
 * `kube-apiserver`) holding one of the listeners.
 */
function makeProcRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'crowsnest-scan-'));
  mkdirSync(join(root, 'net'));
  for (const table of TABLES) copyFileSync(fixture(`proc-net-${table}`), join(root, 'net', table));
  mkdirSync(join(root, '5586', 'fd'), { recursive: true });
  writeFileSync(join(root, '5586', 'comm'), 'kube-apiserver\n');
  symlinkSync(`socket:[${APISERVER_INODE}]`, join(root, '5586', 'fd', '5'));
  return root;
}

function scan(root: string, options: Omit<ScanHostOptions, 'procRoot'> = {}): Promise<HostScan> {
  return scanHost({ procRoot: root, byteOrder: 'LE', hostname: 'node-a', now: () => NOW, ...options });
}

describe('scanning a proc root', () => {
  let root = '';
  before(() => {
    root = makeProcRoot();
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test('lists exactly the sockets ss listed, as a versioned HostPortScan document', async () => {
    const result = await scan(root);
    assert.equal(result.apiVersion, HOST_SCAN_API_VERSION);
    assert.equal(result.kind, HOST_SCAN_KIND);
    assert.equal(result.hostname, 'node-a');
    assert.equal(result.scannedAt, '2026-01-02T03:04:05.678Z');
    assert.deepEqual(countByKey(result.sockets), countByKey(parseSs(nodeProcFs.readFile(fixture('ss-ltnup.txt')))));
    assert.equal(result.malformedLines, 0);
    assert.deepEqual(
      result.sources.map((source) => [source.path, source.protocol, source.family, source.present, source.sockets]),
      [
        [`${root}/net/tcp`, 'tcp', 'ipv4', true, 7],
        [`${root}/net/tcp6`, 'tcp', 'ipv6', true, 4],
        [`${root}/net/udp`, 'udp', 'ipv4', true, 2],
        [`${root}/net/udp6`, 'udp', 'ipv6', true, 2],
      ],
    );
  });

  test('sockets are sorted by protocol, family, port and address', async () => {
    const { sockets } = await scan(root);
    const expected = [...sockets].sort(compareSockets);
    assert.deepEqual(sockets, expected);
    assert.deepEqual(
      sockets.slice(0, 3).map((s) => `${s.protocol} ${s.family} ${s.address} ${s.port}`),
      ['tcp ipv4 0.0.0.0 2024', 'tcp ipv4 127.0.0.1 32967', 'tcp ipv4 127.0.0.1 33029'],
    );
    assert.deepEqual(new Set(sockets.map((s) => `${s.protocol} ${s.state}`)), new Set(['tcp LISTEN', 'udp UNCONN']));
  });

  test('a socket carries the pid and name of the process holding it; the others say why they have none', async () => {
    const result = await scan(root);
    const held = result.sockets.filter((socket) => socket.pid !== undefined);
    assert.deepEqual(JSON.parse(JSON.stringify(held)), [
      {
        protocol: 'tcp',
        family: 'ipv4',
        address: '127.0.0.1',
        port: 40939,
        state: 'LISTEN',
        inode: APISERVER_INODE,
        uid: 0,
        pid: 5586,
        process: 'kube-apiserver',
        owners: [{ pid: 5586, command: 'kube-apiserver' }],
      },
    ]);
    const unheld = JSON.parse(JSON.stringify(result.sockets.find((socket) => socket.pid === undefined)));
    assert.deepEqual(Object.keys(unheld), ['protocol', 'family', 'address', 'port', 'state', 'inode', 'uid']);
    assert.deepEqual(result.processInfo, {
      available: false,
      unavailableSockets: result.sockets.length - 1,
      processesDenied: 0,
      reason: `no process in ${root} holds them: kernel sockets, or processes of another PID namespace (in a pod: hostPID)`,
    });
  });

  test('processes this user may not read are named as the reason sockets lack one', async () => {
    const fs = failing({ '/5586/fd': 'EACCES' });
    const result = await scan(root, { fs });
    assert.equal(result.processInfo.processesDenied, 1);
    assert.equal(result.processInfo.unavailableSockets, result.sockets.length);
    assert.match(result.processInfo.reason ?? '', /^not permitted to read the open files of 1 process; run as root/);
  });

  test('the socket tables are started in the background before the processes are walked, and collected after', async () => {
    const calls: string[] = [];
    const recording: ProcFs = {
      readdir: (path) => { calls.push(`readdir ${path.slice(root.length)}`); return nodeProcFs.readdir(path); },
      readlink: (path) => nodeProcFs.readlink(path),
      readFile: (path) => nodeProcFs.readFile(path),
      readFilesInBackground: (paths) => {
        calls.push('tables started');
        const reads = nodeProcFs.readFilesInBackground(paths);
        return {
          [Symbol.asyncIterator]: () => {
            calls.push('tables collected');
            return reads[Symbol.asyncIterator]();
          },
        };
      },
    };
    const result = await scan(root, { fs: recording });
    assert.deepEqual(calls, ['tables started', 'readdir ', 'readdir /5586/fd', 'tables collected']);
    assert.equal(result.sockets.find((socket) => socket.inode === APISERVER_INODE)?.process, 'kube-apiserver');
  });

  test('with every socket held, process info is available and no reason is given', async () => {
    const only = mkdtempSync(join(tmpdir(), 'crowsnest-scan-'));
    try {
      mkdirSync(join(only, 'net'));
      writeFileSync(join(only, 'net', 'tcp'), nodeProcFs.readFile(fixture('proc-net-tcp')).split('\n').filter((l) => !l.includes(' 0A ') || l.includes('0100007F:9FEB')).join('\n'));
      mkdirSync(join(only, '5586', 'fd'), { recursive: true });
      writeFileSync(join(only, '5586', 'comm'), 'kube-apiserver\n');
      symlinkSync(`socket:[${APISERVER_INODE}]`, join(only, '5586', 'fd', '5'));
      const result = await scan(only);
      assert.equal(result.sockets.length, 1);
      assert.deepEqual(result.processInfo, { available: true, unavailableSockets: 0, processesDenied: 0 });
    } finally {
      rmSync(only, { recursive: true, force: true });
    }
  });
});

describe('which tables are read', () => {
  let root = '';
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'crowsnest-scan-'));
    // The reader's own namespace holds nothing; process 1's holds the hand-made table.
    mkdirSync(join(root, 'net'));
    for (const table of TABLES) writeFileSync(join(root, 'net', table), '');
    mkdirSync(join(root, '1', 'net'), { recursive: true });
    copyFileSync(fixture('proc-net-tcp-malformed'), join(root, '1', 'net', 'tcp'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test("with netPid, the tables of that process's network namespace are read: <proc>/<pid>/net", async () => {
    const own = await scan(root);
    assert.equal(own.sockets.length, 0);
    const host = await scan(root, { netPid: 1 });
    assert.deepEqual(
      host.sockets.map((s) => `${s.address}:${s.port} ${s.state}`),
      ['0.0.0.0:22 LISTEN', '127.0.0.1:8080 LISTEN', '127.0.0.1:8089 UNCONN'],
    );
    assert.equal(host.sources[0]?.path, `${root}/1/net/tcp`);
  });

  test('malformed lines are counted per table and in total, with the first few described', async () => {
    const host = await scan(root, { netPid: 1 });
    assert.equal(host.malformedLines, 11);
    assert.equal(host.sources[0]?.malformedLines, 11);
    assert.deepEqual(host.sources[0]?.malformed[0], { line: 3, reason: 'expected at least 10 fields, found 5', text: '   1: 0100007F:1F91 00000000:0000 0A 00000000:0000' });
  });

  test('a missing table (a host without IPv6) is reported absent, not an error', async () => {
    const host = await scan(root, { netPid: 1 });
    assert.deepEqual(host.sources.map((source) => source.present), [true, false, false, false]);
  });

  test('no table at all is an error that says where it looked', async () => {
    await assert.rejects(scan(root, { netPid: 999 }), {
      message: `no socket tables (tcp, tcp6, udp, udp6) in ${root}/999/net: is there a process 999 in ${root}?`,
    });
    await assert.rejects(scan(join(root, 'elsewhere')), {
      message: `no socket tables (tcp, tcp6, udp, udp6) in ${root}/elsewhere/net: is ${root}/elsewhere a proc file system?`,
    });
  });

  test('a table that exists but cannot be read is an error', async () => {
    await assert.rejects(scan(root, { fs: failing({ '/net/udp6': 'EACCES' }) }), { message: /^cannot read .*\/net\/udp6: EACCES/ });
  });

  test('a socket listed twice, as when the table changes between reads, is reported once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'crowsnest-scan-'));
    try {
      mkdirSync(join(dir, 'net'));
      const udp = nodeProcFs.readFile(fixture('proc-net-udp'));
      const rows = udp.split('\n').filter((line) => line.includes(': '));
      writeFileSync(join(dir, 'net', 'udp'), `${udp}${rows.join('\n')}\n`);
      const result = await scan(dir);
      assert.equal(result.sockets.length, 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

