import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { renderJson, renderTable, scanWarnings } from './format.ts';
import type { HostScan, HostSocket, ScanSource } from './scan.ts';

function source(path: string, overrides: Partial<ScanSource> = {}): ScanSource {
  return { path, protocol: 'tcp', family: 'ipv4', present: true, lines: 3, sockets: 1, malformedLines: 0, malformed: [], ...overrides };
}

function hostScan(sockets: HostSocket[], overrides: Partial<HostScan> = {}): HostScan {
  return {
    apiVersion: 'crowsnest.dev/v1alpha1',
    kind: 'HostPortScan',
    hostname: 'node-a',
    scannedAt: '2026-01-02T03:04:05.678Z',
    sockets,
    processInfo: { available: true, unavailableSockets: 0, processesDenied: 0 },
    malformedLines: 0,
    sources: [source('/proc/net/tcp')],
    ...overrides,
  };
}

const nginx: HostSocket = {
  protocol: 'tcp',
  family: 'ipv4',
  address: '0.0.0.0',
  port: 80,
  state: 'LISTEN',
  inode: 1,
  uid: 0,
  pid: 812,
  process: 'nginx',
  owners: [
    { pid: 812, command: 'nginx' },
    { pid: 813, command: 'nginx' },
    { pid: 814, command: 'nginx' },
  ],
};
const sshd: HostSocket = { protocol: 'tcp', family: 'ipv6', address: '::', port: 22, state: 'LISTEN', inode: 2, uid: 0, pid: 1, process: 'sshd', owners: [{ pid: 1, command: 'sshd' }] };
const kernel: HostSocket = { protocol: 'udp', family: 'ipv6', address: 'fe80::1', port: 12345, state: 'UNCONN', inode: 3, uid: 0 };

describe('table', () => {
  test('one aligned line per socket, numbers right-aligned, unknown processes as -', () => {
    assert.equal(
      renderTable(hostScan([nginx, sshd, kernel])),
      [
        'PROTO  FAMILY  ADDRESS   PORT  PID  PROCESS',
        'tcp    ipv4    0.0.0.0     80  812  nginx (+2 more)',
        'tcp    ipv6    ::          22    1  sshd',
        'udp    ipv6    fe80::1  12345    -  -',
        '',
      ].join('\n'),
    );
  });

  test('a process name holding escape sequences and a newline stays one escaped cell (it cannot forge a line)', () => {
    // Any process can set its name with prctl(PR_SET_NAME): 15 bytes of its choice.
    const forged: HostSocket = { ...sshd, port: 2222, process: '\u001b[2K\nudp ipv4 1.2.3.4', owners: [{ pid: 1, command: 'x' }] };
    const lines = renderTable(hostScan([forged])).split('\n');
    assert.deepEqual(lines, ['PROTO  FAMILY  ADDRESS  PORT  PID  PROCESS', 'tcp    ipv6    ::       2222    1  \\e[2K\\nudp ipv4 1.2.3.4', '']);
  });

  test('with no sockets, only the header', () => {
    assert.equal(renderTable(hostScan([])), 'PROTO  FAMILY  ADDRESS  PORT  PID  PROCESS\n');
  });
});

describe('json', () => {
  test('is the document itself, one socket per line', () => {
    const scan = hostScan([nginx, sshd, kernel]);
    const text = renderJson(scan);
    assert.deepEqual(JSON.parse(text), scan);
    const lines = text.split('\n');
    assert.equal(lines[0], '{');
    assert.equal(lines[1], '  "apiVersion": "crowsnest.dev/v1alpha1",');
    assert.equal(lines.filter((line) => line.startsWith('    {"protocol":')).length, 3);
    assert.ok(lines.includes(`    ${JSON.stringify(kernel)}`));
    assert.ok(text.endsWith('\n}\n'));
  });

  test('with no sockets, still valid JSON', () => {
    const scan = hostScan([], { sources: [] });
    assert.deepEqual(JSON.parse(renderJson(scan)), scan);
    assert.match(renderJson(scan), /^ {2}"sockets": \[\],$/m);
  });
});

describe('warnings', () => {
  test('a complete scan has none', () => {
    assert.deepEqual(scanWarnings(hostScan([sshd])), []);
  });

  test('say how many sockets lack a process and why, and where lines were skipped', () => {
    const scan = hostScan([kernel], {
      processInfo: { available: false, unavailableSockets: 3, processesDenied: 2, reason: 'not permitted to read the open files of 2 processes; run as root to see them' },
      malformedLines: 4,
      sources: [
        source('/proc/1/net/tcp', { malformedLines: 4, malformed: [{ line: 7, reason: 'bad state', text: '...' }] }),
        source('/proc/1/net/udp', { malformedLines: 1, malformed: [] }),
      ],
    });
    assert.deepEqual(scanWarnings(scan), [
      'process info unavailable for 3 sockets (not permitted to read the open files of 2 processes; run as root to see them)',
      'skipped 4 malformed lines in /proc/1/net/tcp; first at line 7: bad state',
      'skipped 1 malformed line in /proc/1/net/udp',
    ]);
  });
});
