import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseScanOutput, skipReason } from './collect.ts';
import { buildScanPod, SCAN_CONTAINER, SCAN_POD_NODE_ANNOTATION, type ScanPodOptions } from './pod.ts';
import type { HostScan } from './scan.ts';

const scan: HostScan = {
  apiVersion: 'crowsnest.dev/v1alpha1',
  kind: 'HostPortScan',
  hostname: 'node-a',
  scannedAt: '2026-11-23T03:00:10.000Z',
  sockets: [
    { protocol: 'tcp', family: 'ipv4', address: '0.0.0.0', port: 22, state: 'LISTEN', inode: 1001, uid: 0, pid: 812, process: 'sshd', owners: [{ pid: 812, command: 'sshd' }] },
    { protocol: 'udp', family: 'ipv6', address: '::', port: 5353, state: 'UNCONN', inode: 2002, uid: 101 },
  ],
  processInfo: { available: false, unavailableSockets: 1, processesDenied: 2, reason: 'run as root' },
  malformedLines: 1,
  sources: [{ path: '/proc/1/net/tcp', protocol: 'tcp', family: 'ipv4', present: true, lines: 4, sockets: 1, malformedLines: 1, malformed: [] }],
};

describe('parseScanOutput', () => {
  test('reads the pretty-printed scan from a log with scanner and Node warnings before and after it', () => {
    const log = [
      '(node:1) ExperimentalWarning: something is experimental',
      '(Use `node --trace-warnings ...` to show where the warning was created)',
      'warning: 1 malformed line(s) in /proc/1/net/tcp skipped',
      JSON.stringify(scan, null, 2),
      'warning: processes unknown for 1 socket(s): run as root',
      '(node:1) Warning: late warning',
      '',
    ].join('\n');
    assert.deepEqual(parseScanOutput(log), scan);
  });

  test('warning lines between the lines of the JSON are set aside too', () => {
    const lines = JSON.stringify(scan, null, 2).split('\n');
    const log = [...lines.slice(0, 5), 'warning: interleaved', '(node:17) Warning: interleaved too', ...lines.slice(5)].join('\n');
    assert.deepEqual(parseScanOutput(log), scan);
  });

  test('a compact scan without any warning is read', () => {
    assert.deepEqual(parseScanOutput(`${JSON.stringify(scan)}\n`), scan);
  });

  test('a log that is not JSON is an error quoting its start', () => {
    const log = 'error: cannot read /proc/1/net/tcp: EACCES: permission denied\n    at readFile (node:fs:1)\n';
    assert.throws(
      () => parseScanOutput(log),
      (err: unknown) => err instanceof Error && err.message.startsWith('scan output is not JSON: error: cannot read /proc/1/net/tcp: EACCES'),
    );
  });

  test('a long non-JSON log is quoted only up to 200 characters', () => {
    const log = `x${'y'.repeat(500)}`;
    assert.throws(
      () => parseScanOutput(log),
      (err: unknown) => err instanceof Error && err.message === `scan output is not JSON: x${'y'.repeat(199)}`,
    );
  });

  test('JSON of another kind is an error naming HostPortScan and the kind found', () => {
    const other = { apiVersion: 'crowsnest.dev/v1alpha1', kind: 'ClusterPortReport', nodes: [] };
    assert.throws(() => parseScanOutput(JSON.stringify(other)), { message: 'scan output is not a HostPortScan document (kind ClusterPortReport)' });
  });

  test('a HostPortScan without sockets is an error', () => {
    assert.throws(() => parseScanOutput('{"kind": "HostPortScan"}'), { message: 'scan output is not a HostPortScan document (kind HostPortScan)' });
  });
});

describe('buildScanPod', () => {
  const base: ScanPodOptions = { namespace: 'crowsnest', node: 'worker-1.example.internal', runId: 'ab12cd34', image: 'ghcr.io/crowsnest/crowsnest:1.2.3', processInfo: true, activeDeadlineSeconds: 120 };

  interface Container {
    name: string;
    image: string;
    imagePullPolicy?: string;
    args: string[];
    securityContext: Record<string, unknown>;
  }
  interface PodShape {
    metadata: { generateName: string; namespace: string; labels: Record<string, string>; annotations: Record<string, string> };
    spec: Record<string, unknown> & { containers: Container[] };
  }
  const build = (overrides: Partial<ScanPodOptions> = {}): PodShape => buildScanPod({ ...base, ...overrides }) as unknown as PodShape;
  const container = (pod: PodShape): Container => {
    assert.equal(pod.spec.containers.length, 1);
    const [first] = pod.spec.containers;
    assert.ok(first);
    return first;
  };

  test('with process info the scan runs as root with only SYS_PTRACE and DAC_READ_SEARCH after dropping ALL, outside AppArmor', () => {
    assert.deepEqual(container(build({ processInfo: true })).securityContext, {
      runAsUser: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'], add: ['SYS_PTRACE', 'DAC_READ_SEARCH'] },
      appArmorProfile: { type: 'Unconfined' },
    });
  });

  test('without process info the scan runs as non-root 65532 with no capability added, under the default AppArmor profile', () => {
    const securityContext = container(build({ processInfo: false })).securityContext;
    assert.equal(securityContext['appArmorProfile'], undefined);
    assert.equal(securityContext['runAsUser'], 65532);
    assert.equal(securityContext['runAsGroup'], 65532);
    assert.equal(securityContext['runAsNonRoot'], true);
    assert.equal(securityContext['allowPrivilegeEscalation'], false);
    assert.equal(securityContext['readOnlyRootFilesystem'], true);
    assert.deepEqual(securityContext['capabilities'], { drop: ['ALL'] });
  });

  test('the pod is pinned to the node, sees the host PIDs, has no token, tolerates every taint and ends by the deadline', () => {
    const pod = build({ activeDeadlineSeconds: 45 });
    assert.equal(pod.spec['nodeName'], 'worker-1.example.internal');
    assert.equal(pod.spec['hostPID'], true);
    assert.equal(pod.spec['hostNetwork'], undefined);
    assert.equal(pod.spec['automountServiceAccountToken'], false);
    assert.equal(pod.spec['restartPolicy'], 'Never');
    assert.deepEqual(pod.spec['tolerations'], [{ operator: 'Exists' }]);
    assert.equal(pod.spec['activeDeadlineSeconds'], 45);
  });

  test('labels name crowsnest and the run; the node goes in an annotation', () => {
    const pod = build();
    assert.equal(pod.metadata.generateName, 'crowsnest-ports-');
    assert.equal(pod.metadata.namespace, 'crowsnest');
    assert.deepEqual(pod.metadata.labels, {
      'app.kubernetes.io/managed-by': 'crowsnest',
      'app.kubernetes.io/part-of': 'crowsnest',
      'app.kubernetes.io/component': 'ports-scan',
      'ports.crowsnest.dev/run': 'ab12cd34',
    });
    assert.deepEqual(pod.metadata.annotations, { [SCAN_POD_NODE_ANNOTATION]: 'worker-1.example.internal' });
    assert.equal(SCAN_POD_NODE_ANNOTATION, 'ports.crowsnest.dev/node');
  });

  test('the container runs the JSON scan of the host network namespace through pid 1', () => {
    const scanContainer = container(build());
    assert.equal(scanContainer.name, SCAN_CONTAINER);
    assert.equal(scanContainer.image, 'ghcr.io/crowsnest/crowsnest:1.2.3');
    assert.deepEqual(scanContainer.args, ['ports', 'scan', '--output', 'json', '--proc', '/proc', '--net-pid', '1', '--log-level', 'warn']);
    const netPid = scanContainer.args.indexOf('--net-pid');
    assert.equal(scanContainer.args[netPid + 1], '1');
  });

  test('priority class, pull secrets and pull policy are set only when given', () => {
    const plain = build();
    assert.equal('priorityClassName' in plain.spec, false);
    assert.equal('imagePullSecrets' in plain.spec, false);
    assert.equal('imagePullPolicy' in container(plain), false);
    assert.equal('imagePullSecrets' in build({ imagePullSecrets: [] }).spec, false);

    const full = build({ priorityClassName: 'system-node-critical', imagePullSecrets: ['ghcr', 'mirror'], imagePullPolicy: 'IfNotPresent' });
    assert.equal(full.spec['priorityClassName'], 'system-node-critical');
    assert.deepEqual(full.spec['imagePullSecrets'], [{ name: 'ghcr' }, { name: 'mirror' }]);
    assert.equal(container(full).imagePullPolicy, 'IfNotPresent');
  });
});

describe('skipReason', () => {
  test('Windows nodes and virtual kubelets are not scanned; Linux nodes and unlabelled ones are', () => {
    assert.match(skipReason({ metadata: { name: 'w', labels: { 'kubernetes.io/os': 'windows' } } }) ?? '', /not a Linux node \(kubernetes.io\/os=windows\)/);
    assert.match(skipReason({ metadata: { name: 'v', labels: { type: 'virtual-kubelet', 'kubernetes.io/os': 'linux' } } }) ?? '', /virtual kubelet/);
    assert.equal(skipReason({ metadata: { name: 'l', labels: { 'kubernetes.io/os': 'linux' } } }), undefined);
    assert.equal(skipReason({ metadata: { name: 'bare' } }), undefined);
  });
});
