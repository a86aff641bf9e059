import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import type { NodeScanOutcome } from './collect.ts';
import {
  buildReport,
  CLUSTER_PORT_REPORT_KIND,
  diffReports,
  nodeCollectorReportName,
  readPreviousReport,
  renderNodeCollectorReport,
  renderReportText,
  writeNodeCollectorReport,
  writeReport,
  type ClusterPortReport,
  type NodePorts,
  type ReportedPort,
} from './report.ts';
import type { HostScan, HostSocket } from './scan.ts';

const STARTED = new Date('2026-11-23T03:00:00.000Z');
const FINISHED = new Date('2026-11-23T03:00:42.500Z');

function socket(overrides: Partial<HostSocket> = {}): HostSocket {
  return { protocol: 'tcp', family: 'ipv4', address: '0.0.0.0', port: 22, state: 'LISTEN', inode: 1001, uid: 0, pid: 812, process: 'sshd', ...overrides };
}

function hostScan(hostname: string, sockets: HostSocket[], overrides: Partial<HostScan> = {}): HostScan {
  return {
    apiVersion: 'crowsnest.dev/v1alpha1',
    kind: 'HostPortScan',
    hostname,
    scannedAt: '2026-11-23T03:00:10.000Z',
    sockets,
    processInfo: { available: true, unavailableSockets: 0, processesDenied: 0 },
    malformedLines: 0,
    sources: [],
    ...overrides,
  };
}

function ok(node: string, sockets: HostSocket[], overrides: Partial<HostScan> = {}): NodeScanOutcome {
  return { node, ok: true, scan: hostScan(node, sockets, overrides), durationMs: 1500 };
}

function failed(node: string, reason: string): NodeScanOutcome {
  return { node, ok: false, reason, durationMs: 120_000 };
}

function port(overrides: Partial<ReportedPort> = {}): ReportedPort {
  return { protocol: 'tcp', family: 'ipv4', address: '0.0.0.0', port: 22, pid: 812, process: 'sshd', ...overrides };
}

function nodePorts(node: string, ports: ReportedPort[]): NodePorts {
  return { node, scannedAt: '2026-11-22T03:00:10.000Z', ports, processInfo: { available: true, unavailableSockets: 0, processesDenied: 0 }, malformedLines: 0 };
}

function report(nodes: NodePorts[], failures: { node: string; reason: string }[] = [], overrides: Partial<ClusterPortReport> = {}): ClusterPortReport {
  return {
    apiVersion: 'crowsnest.dev/v1alpha1',
    kind: CLUSTER_PORT_REPORT_KIND,
    runId: 'prev0001',
    startedAt: '2026-11-22T03:00:00.000Z',
    finishedAt: '2026-11-22T03:00:30.000Z',
    durationMs: 30_000,
    nodes,
    failed: failures,
    ...overrides,
  };
}

describe('buildReport', () => {
  test('scanned nodes and failed nodes each come out sorted by name, with run times', () => {
    const built = buildReport({
      runId: 'run00001',
      startedAt: STARTED,
      finishedAt: FINISHED,
      outcomes: [ok('worker-b', []), failed('worker-z', 'timed out after 120s (phase Pending)'), ok('control-plane', [socket()]), failed('worker-a', 'node is not Ready (KubeletNotReady)')],
    });
    assert.equal(built.kind, 'ClusterPortReport');
    assert.equal(built.apiVersion, 'crowsnest.dev/v1alpha1');
    assert.equal(built.runId, 'run00001');
    assert.equal(built.startedAt, '2026-11-23T03:00:00.000Z');
    assert.equal(built.finishedAt, '2026-11-23T03:00:42.500Z');
    assert.equal(built.durationMs, 42_500);
    assert.deepEqual(
      built.nodes.map((n) => n.node),
      ['control-plane', 'worker-b'],
    );
    assert.deepEqual(built.failed, [
      { node: 'worker-a', reason: 'node is not Ready (KubeletNotReady)' },
      { node: 'worker-z', reason: 'timed out after 120s (phase Pending)' },
    ]);
  });

  test('a node keeps its scan time, process info and malformed line count', () => {
    const processInfo = { available: false, unavailableSockets: 2, processesDenied: 3, reason: 'run as root' };
    const built = buildReport({ runId: 'r', startedAt: STARTED, finishedAt: FINISHED, outcomes: [ok('node-a', [], { processInfo, malformedLines: 4 })] });
    assert.deepEqual(built.nodes, [{ node: 'node-a', scannedAt: '2026-11-23T03:00:10.000Z', ports: [], processInfo, malformedLines: 4 }]);
  });

  test('ports leave out the per-host inode, uid, state and owners, and an unknown process stays absent', () => {
    const built = buildReport({
      runId: 'r',
      startedAt: STARTED,
      finishedAt: FINISHED,
      outcomes: [
        ok('node-a', [
          socket({ owners: [{ pid: 812, command: 'sshd' }] }),
          { protocol: 'udp', family: 'ipv6', address: '::', port: 5353, state: 'UNCONN', inode: 2002, uid: 101 },
        ]),
      ],
    });
    assert.deepEqual(built.nodes[0]?.ports, [
      { protocol: 'tcp', family: 'ipv4', address: '0.0.0.0', port: 22, pid: 812, process: 'sshd' },
      { protocol: 'udp', family: 'ipv6', address: '::', port: 5353 },
    ]);
    assert.equal('pid' in (built.nodes[0]?.ports[1] ?? {}), false);
  });

  test('the first report has no diff', () => {
    const built = buildReport({ runId: 'r', startedAt: STARTED, finishedAt: FINISHED, outcomes: [ok('node-a', [socket()])] });
    assert.equal('diff' in built, false);
  });

  test('with a previous report, the diff against it is included', () => {
    const previous = report([nodePorts('node-a', [])]);
    const built = buildReport({ runId: 'r', startedAt: STARTED, finishedAt: FINISHED, outcomes: [ok('node-a', [socket()])], previous: { name: 'ports-20261122T030000Z.json', report: previous } });
    assert.deepEqual(built.diff, {
      previousReport: 'ports-20261122T030000Z.json',
      previousRunAt: '2026-11-22T03:00:00.000Z',
      nodes: [{ node: 'node-a', opened: [port()], closed: [] }],
      newNodes: [],
      goneNodes: [],
      notCompared: [],
    });
  });
});

describe('diffReports', () => {
  const ssh = port();
  const http = port({ port: 80, pid: 900, process: 'nginx' });
  const dns = port({ protocol: 'udp', family: 'ipv6', address: '::', port: 53, pid: 77, process: 'coredns' });

  test('ports opened and closed are listed per node', () => {
    const previous = report([nodePorts('node-a', [ssh, http]), nodePorts('node-b', [ssh])]);
    const diff = diffReports('prev.json', previous, { nodes: [nodePorts('node-b', [ssh, dns]), nodePorts('node-a', [ssh])], failed: [] });
    assert.deepEqual(diff.nodes, [
      { node: 'node-a', opened: [], closed: [http] },
      { node: 'node-b', opened: [dns], closed: [] },
    ]);
    assert.equal(diff.previousReport, 'prev.json');
    assert.equal(diff.previousRunAt, '2026-11-22T03:00:00.000Z');
  });

  test('a restarted process (new pid, same program) is not a change', () => {
    const previous = report([nodePorts('node-a', [ssh])]);
    const diff = diffReports('prev.json', previous, { nodes: [nodePorts('node-a', [{ ...ssh, pid: 4242 }])], failed: [] });
    assert.deepEqual(diff.nodes, []);
  });

  test('another program on the same port is a close and an open', () => {
    const previous = report([nodePorts('node-a', [http])]);
    const caddy = { ...http, pid: 901, process: 'caddy' };
    const diff = diffReports('prev.json', previous, { nodes: [nodePorts('node-a', [caddy])], failed: [] });
    assert.deepEqual(diff.nodes, [{ node: 'node-a', opened: [caddy], closed: [http] }]);
  });

  test('the same port on another address or protocol is a change', () => {
    const previous = report([nodePorts('node-a', [ssh])]);
    const localSsh = { ...ssh, address: '127.0.0.1' };
    const udp22 = { ...ssh, protocol: 'udp' as const };
    const diff = diffReports('prev.json', previous, { nodes: [nodePorts('node-a', [localSsh, udp22])], failed: [] });
    assert.deepEqual(diff.nodes, [{ node: 'node-a', opened: [localSsh, udp22], closed: [ssh] }]);
  });

  test('SO_REUSEPORT listeners on one port count once, in opened and in unchanged nodes', () => {
    const workers = [port({ port: 443, pid: 10, process: 'envoy' }), port({ port: 443, pid: 11, process: 'envoy' }), port({ port: 443, pid: 12, process: 'envoy' })];
    const opened = diffReports('prev.json', report([nodePorts('node-a', [])]), { nodes: [nodePorts('node-a', workers)], failed: [] });
    assert.equal(opened.nodes[0]?.opened.length, 1);
    assert.equal(opened.nodes[0]?.opened[0]?.port, 443);
    const fewer = diffReports('prev.json', report([nodePorts('node-a', workers)]), { nodes: [nodePorts('node-a', workers.slice(0, 1))], failed: [] });
    assert.deepEqual(fewer.nodes, []);
  });

  test('nodes scanned for the first time are new, not all-opened', () => {
    const previous = report([nodePorts('node-a', [ssh])]);
    const diff = diffReports('prev.json', previous, { nodes: [nodePorts('node-a', [ssh]), nodePorts('node-c', [ssh]), nodePorts('node-b', [http])], failed: [] });
    assert.deepEqual(diff.newNodes, ['node-b', 'node-c']);
    assert.deepEqual(diff.nodes, []);
  });

  test('nodes no longer scanned are gone, not all-closed', () => {
    const previous = report([nodePorts('node-a', [ssh]), nodePorts('node-z', [http]), nodePorts('node-m', [])]);
    const diff = diffReports('prev.json', previous, { nodes: [nodePorts('node-a', [ssh])], failed: [] });
    assert.deepEqual(diff.goneNodes, ['node-m', 'node-z']);
    assert.deepEqual(diff.nodes, []);
  });

  test('a node failing now is not compared, not gone and its ports not closed', () => {
    const previous = report([nodePorts('node-a', [ssh, http])]);
    const diff = diffReports('prev.json', previous, { nodes: [], failed: [{ node: 'node-a', reason: 'timed out' }] });
    assert.deepEqual(diff, { previousReport: 'prev.json', previousRunAt: '2026-11-22T03:00:00.000Z', nodes: [], newNodes: [], goneNodes: [], notCompared: ['node-a'] });
  });

  test('a node that failed then is not compared, not new and its ports not opened', () => {
    const previous = report([], [{ node: 'node-a', reason: 'timed out' }]);
    const diff = diffReports('prev.json', previous, { nodes: [nodePorts('node-a', [ssh])], failed: [] });
    assert.deepEqual(diff, { previousReport: 'prev.json', previousRunAt: '2026-11-22T03:00:00.000Z', nodes: [], newNodes: [], goneNodes: [], notCompared: ['node-a'] });
  });

  test('a node failing both times is not compared', () => {
    const previous = report([nodePorts('node-b', [])], [{ node: 'node-a', reason: 'ImagePullBackOff' }]);
    const diff = diffReports('prev.json', previous, { nodes: [nodePorts('node-b', [])], failed: [{ node: 'node-a', reason: 'ImagePullBackOff' }] });
    assert.deepEqual(diff.notCompared, ['node-a']);
    assert.deepEqual(diff.goneNodes, []);
    assert.deepEqual(diff.newNodes, []);
  });

  test('nodes without changes are left out', () => {
    const previous = report([nodePorts('node-a', [ssh]), nodePorts('node-b', [ssh]), nodePorts('node-c', [ssh])]);
    const diff = diffReports('prev.json', previous, { nodes: [nodePorts('node-a', [ssh]), nodePorts('node-b', [ssh, http]), nodePorts('node-c', [ssh])], failed: [] });
    assert.deepEqual(
      diff.nodes.map((n) => n.node),
      ['node-b'],
    );
  });
});

describe('renderReportText', () => {
  const processInfo = { available: true, unavailableSockets: 0, processesDenied: 0 };
  const current = report(
    [
      {
        node: 'node-a',
        scannedAt: '2026-11-23T03:00:10.000Z',
        ports: [port(), port({ family: 'ipv6', address: '::', pid: 812 }), port({ protocol: 'udp', address: '127.0.0.1', port: 323, pid: 600, process: 'chronyd' })],
        processInfo,
        malformedLines: 0,
      },
      { node: 'node-b', scannedAt: '2026-11-23T03:00:11.000Z', ports: [{ protocol: 'tcp', family: 'ipv4', address: '10.0.0.5', port: 10250 }], processInfo: { available: false, unavailableSockets: 1, processesDenied: 0, reason: 'scanned without process info' }, malformedLines: 2 },
    ],
    [{ node: 'node-c', reason: 'scan pod Failed, exit code 1' }],
    { runId: 'run00002', startedAt: '2026-11-23T03:00:00.000Z', durationMs: 42_500 },
  );

  test('starts with the node count, run id, start time, duration and failed count', () => {
    const lines = renderReportText(current).split('\n');
    assert.equal(lines[0], 'Listening ports of 3 node(s), run run00002');
    assert.equal(lines[1], 'started 2026-11-23T03:00:00.000Z, took 42.5s; 1 node(s) failed');
  });

  test('lists each node under a header with its port count and scan time, ipv6 addresses in brackets, processes with their pid', () => {
    const text = renderReportText(current);
    assert.match(text, /^== node-a \(3 ports, scanned 2026-11-23T03:00:10\.000Z\)$/m);
    assert.match(text, /^ {2}tcp 0\.0\.0\.0:22 {2}sshd \(pid 812\)$/m);
    assert.match(text, /^ {2}tcp \[::\]:22 {2}sshd \(pid 812\)$/m);
    assert.match(text, /^ {2}udp 127\.0\.0\.1:323 {2}chronyd \(pid 600\)$/m);
    assert.match(text, /^== node-b \(1 ports, scanned 2026-11-23T03:00:11\.000Z\)$/m);
    assert.match(text, /^ {2}tcp 10\.0\.0\.5:10250$/m);
  });

  test('says when processes are unknown and malformed lines were skipped', () => {
    const text = renderReportText(current);
    assert.match(text, /^ {2}\(processes unknown for 1 socket\(s\): scanned without process info\)$/m);
    assert.match(text, /^ {2}\(2 malformed \/proc line\(s\) skipped\)$/m);
  });

  test('lists failed nodes with why', () => {
    const text = renderReportText(current);
    assert.match(text, /^== failed nodes\n {2}node-c: scan pod Failed, exit code 1$/m);
  });

  test('without failed nodes there is no failed section', () => {
    const text = renderReportText(report([nodePorts('node-a', [])]));
    assert.doesNotMatch(text, /failed nodes/);
  });

  test('the first report says there is nothing to compare with', () => {
    const text = renderReportText(current);
    assert.ok(text.endsWith('== changes: none to show (first report in this directory)\n'), text);
  });

  test('the changes section shows + for opened and - for closed ports per node, then new, gone and not compared nodes', () => {
    const withDiff: ClusterPortReport = {
      ...current,
      diff: {
        previousReport: 'ports-20261122T030000Z.json',
        previousRunAt: '2026-11-22T03:00:00.000Z',
        nodes: [{ node: 'node-a', opened: [port({ protocol: 'udp', address: '127.0.0.1', port: 323, pid: 600, process: 'chronyd' })], closed: [port({ family: 'ipv6', address: '::1', port: 8080, pid: 5, process: 'debug' })] }],
        newNodes: ['node-b'],
        goneNodes: ['node-x', 'node-y'],
        notCompared: ['node-c'],
      },
    };
    const text = renderReportText(withDiff);
    const changes = text.slice(text.indexOf('== changes'));
    assert.equal(
      changes,
      [
        '== changes since ports-20261122T030000Z.json (2026-11-22T03:00:00.000Z)',
        '  node-a:',
        '    + udp 127.0.0.1:323  chronyd (pid 600)',
        '    - tcp [::1]:8080  debug (pid 5)',
        '  new nodes: node-b',
        '  nodes gone: node-x, node-y',
        '  not compared (a scan failed): node-c',
        '',
      ].join('\n'),
    );
  });

  test('a diff without changes says so', () => {
    const text = renderReportText({ ...current, diff: { previousReport: 'p.json', previousRunAt: '2026-11-22T03:00:00.000Z', nodes: [], newNodes: [], goneNodes: [], notCompared: [] } });
    assert.ok(text.endsWith('== changes since p.json (2026-11-22T03:00:00.000Z)\n  no ports opened or closed\n'), text);
  });
});

describe('readPreviousReport and writeReport', () => {
  let dir = '';
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'crowsnest-report-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const at = (iso: string, runId: string): ClusterPortReport => report([nodePorts('node-a', [port()])], [], { startedAt: iso, runId });

  test('a missing directory has no previous report', async () => {
    assert.equal(await readPreviousReport(join(dir, 'absent')), undefined);
  });

  test('the newest report by name is the previous one; other files are ignored', async () => {
    await writeFile(join(dir, 'ports-20261121T030000Z.json'), JSON.stringify(at('2026-11-21T03:00:00.000Z', 'old')));
    await writeFile(join(dir, 'ports-20261122T030000Z.json'), JSON.stringify(at('2026-11-22T03:00:00.000Z', 'newest')));
    await writeFile(join(dir, 'ports-20261120T030000Z.json'), JSON.stringify(at('2026-11-20T03:00:00.000Z', 'oldest')));
    await writeFile(join(dir, 'ports-20261123T030000Z.txt'), 'text only');
    await writeFile(join(dir, 'ports-20261124T030000Z.json.tmp'), '{');
    await writeFile(join(dir, 'ports-latest.json'), JSON.stringify(at('2026-11-25T03:00:00.000Z', 'not-a-report-name')));
    await writeFile(join(dir, 'zzz.json'), '{}');
    const skipped: string[] = [];
    const previous = await readPreviousReport(dir, (name) => skipped.push(name));
    assert.equal(previous?.name, 'ports-20261122T030000Z.json');
    assert.equal(previous?.report.runId, 'newest');
    assert.deepEqual(skipped, []);
  });

  test('a report an earlier version wrote (apiVersion crowsnest.io/v1alpha1) is still the previous report', async () => {
    await writeFile(join(dir, 'ports-20261122T030000Z.json'), JSON.stringify({ ...at('2026-11-22T03:00:00.000Z', 'before-the-rename'), apiVersion: 'crowsnest.io/v1alpha1' }));
    const skipped: string[] = [];
    const previous = await readPreviousReport(dir, (name) => skipped.push(name));
    assert.equal(previous?.report.runId, 'before-the-rename');
    assert.deepEqual(skipped, []);
    const next = buildReport({ runId: 'after0001', startedAt: STARTED, finishedAt: FINISHED, outcomes: [ok('node-a', [])], previous: previous! });
    assert.equal(next.apiVersion, 'crowsnest.dev/v1alpha1');
    assert.equal(next.diff?.previousReport, 'ports-20261122T030000Z.json');
  });

  test('a corrupt or foreign newest report is skipped with the reason and the older one used', async () => {
    await writeFile(join(dir, 'ports-20261121T030000Z.json'), JSON.stringify(at('2026-11-21T03:00:00.000Z', 'older')));
    await writeFile(join(dir, 'ports-20261122T030000Z.json'), '{"kind": "ClusterPortReport", "nodes": [');
    await writeFile(join(dir, 'ports-20261123T030000Z.json'), JSON.stringify({ kind: 'HostPortScan', sockets: [] }));
    const skipped: [string, string][] = [];
    const previous = await readPreviousReport(dir, (name, reason) => skipped.push([name, reason]));
    assert.equal(previous?.name, 'ports-20261121T030000Z.json');
    assert.equal(previous?.report.runId, 'older');
    assert.deepEqual(
      skipped.map(([name]) => name),
      ['ports-20261123T030000Z.json', 'ports-20261122T030000Z.json'],
    );
    assert.equal(skipped[0]?.[1], 'not a ClusterPortReport');
    assert.match(skipped[1]?.[1] ?? '', /JSON/);
  });

  test('writeReport writes the JSON and text files named by start time and run, leaving no temporary files', async () => {
    const written = buildReport({ runId: '0a1b2c3d', startedAt: STARTED, finishedAt: FINISHED, outcomes: [ok('node-a', [socket()])] });
    const paths = await writeReport(join(dir, 'nested'), written, 30);
    assert.deepEqual(paths, { json: join(dir, 'nested', 'ports-20261123T030000.000Z-0a1b2c3d.json'), text: join(dir, 'nested', 'ports-20261123T030000.000Z-0a1b2c3d.txt') });
    assert.deepEqual((await readdir(join(dir, 'nested'))).sort(), ['ports-20261123T030000.000Z-0a1b2c3d.json', 'ports-20261123T030000.000Z-0a1b2c3d.txt']);
    assert.deepEqual(JSON.parse(await readFile(paths.json, 'utf8')), JSON.parse(JSON.stringify(written)));
    assert.equal(await readFile(paths.text, 'utf8'), renderReportText(written));
    const previous = await readPreviousReport(join(dir, 'nested'));
    assert.equal(previous?.report.runId, '0a1b2c3d');
  });

  test('two runs started in the same second both keep their report, and the later one is the previous report', async () => {
    const first = at('2026-11-23T03:00:00.100Z', 'aaaaaaaa');
    const second = at('2026-11-23T03:00:00.600Z', 'bbbbbbbb');
    const one = await writeReport(dir, first, 30);
    const two = await writeReport(dir, second, 30);
    assert.notEqual(one.json, two.json);
    assert.equal(JSON.parse(await readFile(one.json, 'utf8')).runId, 'aaaaaaaa');
    assert.equal(JSON.parse(await readFile(two.json, 'utf8')).runId, 'bbbbbbbb');
    assert.equal((await readPreviousReport(dir))?.report.runId, 'bbbbbbbb');
    // The same run written twice (a bug, or a name clash) fails instead of replacing the first.
    await assert.rejects(writeReport(dir, first, 30), { code: 'EEXIST' });
    assert.equal(JSON.parse(await readFile(one.json, 'utf8')).runId, 'aaaaaaaa');
  });

  test('writeReport keeps the last N reports, removing older JSON files with their text', async () => {
    for (const day of ['20', '21', '22']) {
      await writeFile(join(dir, `ports-202611${day}T030000Z.json`), '{}');
      await writeFile(join(dir, `ports-202611${day}T030000Z.txt`), '');
    }
    await writeFile(join(dir, 'notes.txt'), 'keep me');
    // Reports of older versions (whole seconds, no run part) count among the current ones by time.
    await writeReport(dir, at('2026-11-23T03:00:00.000Z', 'cccccccc'), 2);
    assert.deepEqual((await readdir(dir)).sort(), ['notes.txt', 'ports-20261122T030000Z.json', 'ports-20261122T030000Z.txt', 'ports-20261123T030000.000Z-cccccccc.json', 'ports-20261123T030000.000Z-cccccccc.txt']);
  });

  test('writeReport with keepLast 0 keeps every report', async () => {
    for (const day of ['20', '21', '22']) await writeFile(join(dir, `ports-202611${day}T030000Z.json`), '{}');
    await writeReport(dir, at('2026-11-23T03:00:00.000Z', 'cccccccc'), 0);
    assert.deepEqual((await readdir(dir)).filter((name) => name.endsWith('.json')).sort(), [
      'ports-20261120T030000Z.json',
      'ports-20261121T030000Z.json',
      'ports-20261122T030000Z.json',
      'ports-20261123T030000.000Z-cccccccc.json',
    ]);
  });
});

describe('a node whose scan fails for a while', () => {
  test('keeps its last known ports in the report, and the first good scan afterwards is compared with them', () => {
    const port22 = { protocol: 'tcp' as const, family: 'ipv4' as const, address: '0.0.0.0', port: 22 };
    const port4444 = { protocol: 'tcp' as const, family: 'ipv4' as const, address: '0.0.0.0', port: 4444 };
    const scanOf = (ports: typeof port22[]): NodeScanOutcome => ({
      node: 'n1', ok: true, durationMs: 1,
      scan: { apiVersion: 'crowsnest.dev/v1alpha1', kind: 'HostPortScan', hostname: 'n1', scannedAt: '2026-11-20T03:00:00.000Z', sockets: ports.map((p, i) => ({ ...p, state: 'LISTEN' as const, inode: i + 1, uid: 0 })), processInfo: { available: true, unavailableSockets: 0, processesDenied: 0 }, malformedLines: 0, sources: [] },
    });
    const at = (day: number): Date => new Date(`2026-11-${day}T03:00:00.000Z`);
    const run1 = buildReport({ runId: 'r1', startedAt: at(20), finishedAt: at(20), outcomes: [scanOf([port22])] });
    const run2 = buildReport({ runId: 'r2', startedAt: at(21), finishedAt: at(21), outcomes: [{ node: 'n1', ok: false, reason: 'timed out', durationMs: 1 }], previous: { name: 'r1.json', report: run1 } });
    assert.deepEqual(run2.failed[0]?.lastKnown?.ports.map((p) => p.port), [22]);
    assert.deepEqual(run2.diff?.notCompared, ['n1']);
    const run3 = buildReport({ runId: 'r3', startedAt: at(22), finishedAt: at(22), outcomes: [{ node: 'n1', ok: false, reason: 'timed out', durationMs: 1 }], previous: { name: 'r2.json', report: run2 } });
    assert.deepEqual(run3.failed[0]?.lastKnown?.ports.map((p) => p.port), [22], 'carried over a second failure');
    const run4 = buildReport({ runId: 'r4', startedAt: at(23), finishedAt: at(23), outcomes: [scanOf([port22, port4444])], previous: { name: 'r3.json', report: run3 } });
    assert.deepEqual(run4.diff?.nodes, [{ node: 'n1', opened: [port4444], closed: [] }]);
    assert.deepEqual(run4.diff?.notCompared, []);
  });

  test('skipped nodes are listed apart from failures', () => {
    const report = buildReport({ runId: 'r', startedAt: new Date(0), finishedAt: new Date(0), outcomes: [{ node: 'win-1', ok: false, skipped: true, reason: 'not a Linux node (kubernetes.io/os=windows)', durationMs: 0 }] });
    assert.deepEqual(report.failed, []);
    assert.deepEqual(report.skipped, [{ node: 'win-1', reason: 'not a Linux node (kubernetes.io/os=windows)' }]);
    assert.match(renderReportText(report), /== nodes not scanned\n {2}win-1: not a Linux node/);
  });
});

describe('k8s-node-collector\'s report (--report-format node-collector)', () => {
  test('is named as the tool\'s `date +%d-%b-%H:%M`, in UTC', () => {
    assert.equal(nodeCollectorReportName(new Date('2026-12-07T02:15:59.000Z')), '07-Dec-02:15');
    assert.equal(nodeCollectorReportName(new Date('2027-01-01T00:00:00.000Z')), '01-Jan-00:00');
  });

  test('lists per node, by name, the TCP ports listening on 0.0.0.0, as its netstat | grep | awk kept them; a failed node gets its header only', () => {
    const text = renderNodeCollectorReport(report([
      nodePorts('node-b', [port({ port: 8080 }), port({ port: 22 }), port({ protocol: 'udp', port: 53 }), port({ address: '127.0.0.1', port: 631 }), port({ family: 'ipv6', address: '::', port: 443 })]),
      nodePorts('node-a', [port({ port: 10250 })]),
    ], [{ node: 'node-c', reason: 'pod never started' }]));
    assert.equal(text, 'Ports opened in Node: node-a\n10250\nPorts opened in Node: node-b\n22\n8080\nPorts opened in Node: node-c\n');
  });

  test('a run in the same minute replaces the file, as the tool\'s did; only the newest keepLast are kept', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'crowsnest-node-collector-'));
    try {
      const at = (iso: string, ports: number[]): ClusterPortReport => report([nodePorts('node-a', ports.map((p) => port({ port: p })))], [], { startedAt: iso });
      const first = await writeNodeCollectorReport(dir, at('2026-12-07T02:15:01.000Z', [22]), 2);
      assert.equal(first, join(dir, '07-Dec-02:15'));
      await writeNodeCollectorReport(dir, at('2026-12-07T02:15:40.000Z', [22, 80]), 2);
      assert.equal(await readFile(first, 'utf8'), 'Ports opened in Node: node-a\n22\n80\n');
      await writeFile(join(dir, 'ports-20261207T021500Z-abcd.json'), '{}');
      for (const iso of ['2026-12-07T02:16:00.000Z', '2026-12-07T02:17:00.000Z']) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        await writeNodeCollectorReport(dir, at(iso, [22]), 2);
      }
      assert.deepEqual((await readdir(dir)).sort(), ['07-Dec-02:16', '07-Dec-02:17', 'ports-20261207T021500Z-abcd.json']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
