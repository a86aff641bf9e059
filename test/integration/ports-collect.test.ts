/**
 * `crowsnest ports collect` on the testbed. The scan of every node, merge, report and diff runs
 * for real: scan pods of the Crowsnest image (from the testbed's registry) on the two real nodes,
 * with hostPID, reading this machine's sockets (the nodes share its PID namespace, so /proc/1/net
 * is its network namespace). What real nodes cannot be made to do on demand — a scan that fails,
 * one that never finishes — is played on the kwok nodes by a stand-in kubelet
 * (testbed/scan-pods.ts): it serves the pod's log through kwok and ends the pod as asked, while
 * the collector's own code path (node list, pod spec accepted by the API server, waiting, log
 * read, report, cleanup) is unchanged.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { main, type CliIO } from '../../src/cli/main.ts';
import { buildScanPod } from '../../src/ports/pod.ts';
import { standInKubelet } from '../../testbed/scan-pods.ts';
import { serveValidatingWebhook } from '../../testbed/webhook.ts';
import { eventually, newNamespace, testbed } from './testbed.ts';


const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

async function runCli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const plane = await testbed();
  let stdout = '';
  let stderr = '';
  const io: CliIO = { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, env: { KUBECONFIG: plane.kubeconfigPath }, stderrIsTTY: false };
  const code = await main([...args, '--log-level', 'error'], io);
  return { code, stdout, stderr };
}

async function listen(host = '127.0.0.1'): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return { server, port: (server.address() as { port: number }).port };
}

interface Report {
  nodes: { node: string; ports: { protocol: string; address: string; port: number; process?: string }[] }[];
  failed: { node: string; reason: string }[];
  diff?: { nodes: { node: string; opened: { port: number }[]; closed: { port: number }[] }[]; previousReport: string };
}

/** The fields of a scan pod, as the API server accepted it, that the tests read. */
interface AcceptedScanPodSpec {
  nodeName?: string;
  hostPID?: boolean;
  hostNetwork?: boolean;
  automountServiceAccountToken?: boolean;
  tolerations?: unknown[];
  containers: {
    securityContext: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean; capabilities: { drop?: string[] }; runAsNonRoot?: boolean };
    resources: { limits: { memory?: string } };
    args: string[];
  }[];
  volumes?: { name: string }[];
}

async function reports(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => /^ports-\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}\.json$/.test(name)).sort();
}

async function scanPodsLeft(namespace: string): Promise<number> {
  const plane = await testbed();
  const res = await plane.request('GET', `/api/v1/namespaces/${namespace}/pods?labelSelector=app.kubernetes.io/component%3Dports-scan`);
  return (JSON.parse(res.body) as { items: unknown[] }).items.length;
}

/** Names of the nodes `selector` picks: `type!=kwok` the real ones, `type=kwok` those the stand-in kubelet plays. */
async function nodeNames(selector: 'type!=kwok' | 'type=kwok'): Promise<string[]> {
  const plane = await testbed();
  const res = await plane.request('GET', `/api/v1/nodes?labelSelector=${encodeURIComponent(selector)}`);
  return (JSON.parse(res.body) as { items: { metadata: { name: string } }[] }).items.map((n) => n.metadata.name).sort();
}

/** The Crowsnest image in the testbed's registry, by digest (what `make test-integration` built just before). */
async function crowsnestImage(): Promise<string> {
  const plane = await testbed();
  assert.ok(plane.images['crowsnest'], 'the Crowsnest image is in the testbed registry (make image)');
  return `${plane.images['crowsnest']}@${plane.imageDigests['crowsnest']}`;
}

describe('ports collect', () => {
  const dirs: string[] = [];
  const servers: Server[] = [];
  after(async () => {
    for (const server of servers) server.close();
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it('scans every real node in parallel with a hostPID pod, merges the results into a JSON and a text report, diffs the next run, and deletes its pods', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('ports');
    await plane.waitForDefaultServiceAccount(namespace);
    const dir = await mkdtemp(join(tmpdir(), 'crowsnest-ports-'));
    dirs.push(dir);
    const nodes = await nodeNames('type!=kwok');
    assert.deepEqual(nodes, ['crowsnest-real-0', 'crowsnest-real-1']);
    const image = await crowsnestImage();
    const first = await listen();
    servers.push(first.server);
    // Every scan pod the run creates, seen while it exists: where it ran and with what.
    const seenPods = new Map<string, { node?: string; hostPID?: boolean; image?: string }>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const res = await plane.request('GET', `/api/v1/namespaces/${namespace}/pods`);
        for (const pod of (JSON.parse(res.body) as { items: { metadata: { name: string }; spec: { nodeName?: string; hostPID?: boolean; containers: { image: string }[] } }[] }).items) {
          seenPods.set(pod.metadata.name, { node: pod.spec.nodeName, hostPID: pod.spec.hostPID, image: pod.spec.containers[0]?.image });
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    try {
      const run1 = await runCli(['ports', 'collect', '--namespace', namespace, '--report-dir', dir, '--image', image, '--node-selector', 'type!=kwok']);
      assert.equal(run1.code, 0, run1.stderr + run1.stdout);
      assert.match(run1.stdout, /first report/);
      const [name1] = await reports(dir);
      const report1 = JSON.parse(await readFile(join(dir, name1!), 'utf8')) as Report;
      assert.deepEqual(report1.nodes.map((n) => n.node), nodes);
      assert.deepEqual(report1.failed, []);
      for (const node of report1.nodes) {
        const mine = node.ports.find((p) => p.protocol === 'tcp' && p.address === '127.0.0.1' && p.port === first.port);
        assert.ok(mine, `${node.node} lacks the listener on ${first.port}`);
      }
      const text1 = await readFile(join(dir, name1!.replace(/\.json$/, '.txt')), 'utf8');
      for (const node of nodes) assert.match(text1, new RegExp(`== ${node} \\(\\d+ ports`));
      assert.ok(text1.includes(`127.0.0.1:${first.port}`));
      await eventually('scan pods to be deleted', async () => (await scanPodsLeft(namespace)) === 0, 20_000);
      assert.deepEqual([...seenPods.values()].map((p) => p.node).sort(), nodes, 'one pod per node');
      for (const pod of seenPods.values()) assert.deepEqual({ hostPID: pod.hostPID, image: pod.image }, { hostPID: true, image });

      // Between runs: one port closes, another opens.
      first.server.close();
      const second = await listen();
      servers.push(second.server);
      // A listener on every IPv4 address: what k8s-node-collector's report lists.
      const wildcard = await listen('0.0.0.0');
      servers.push(wildcard.server);
      const run2 = await runCli(['ports', 'collect', '--namespace', namespace, '--report-dir', dir, '--image', image, '--node-selector', 'type!=kwok', '--output', 'json', '--report-format', 'node-collector']);
      assert.equal(run2.code, 0, run2.stderr);
      const report2 = JSON.parse(run2.stdout) as Report;
      // k8s-node-collector's file beside ours: its name and layout, the TCP ports on 0.0.0.0 per node.
      const compatible = (await readdir(dir)).filter((name) => /^\d\d-[A-Z][a-z]{2}-\d\d:\d\d$/.test(name));
      assert.equal(compatible.length, 1, `one k8s-node-collector report: ${(await readdir(dir)).join(', ')}`);
      const expectedText = [...report2.nodes].sort((a, b) => a.node.localeCompare(b.node)).flatMap((n) => [
        `Ports opened in Node: ${n.node}`,
        ...n.ports.filter((p) => p.protocol === 'tcp' && p.address === '0.0.0.0').map((p) => p.port).sort((a, b) => a - b).map(String),
      ]).join('\n');
      assert.equal(await readFile(join(dir, compatible[0]!), 'utf8'), `${expectedText}\n`);
      for (const node of nodes) assert.ok(report2.nodes.find((n) => n.node === node)?.ports.some((p) => p.address === '0.0.0.0' && p.port === wildcard.port), `${node}: the 0.0.0.0 listener ${wildcard.port} is in the report, so the file lists it`);
      assert.equal(report2.diff?.previousReport, name1);
      assert.deepEqual(report2.diff?.nodes.map((n) => n.node), nodes);
      for (const change of report2.diff!.nodes) {
        assert.ok(change.opened.some((p) => p.port === second.port), `${change.node}: ${second.port} not reported opened`);
        assert.ok(change.closed.some((p) => p.port === first.port), `${change.node}: ${first.port} not reported closed`);
      }
      assert.equal((await reports(dir)).length, 2);
      const text2 = await readFile(join(dir, (await reports(dir))[1]!.replace(/\.json$/, '.txt')), 'utf8');
      assert.match(text2, new RegExp(`\\+ tcp 127\\.0\\.0\\.1:${second.port}`));
      assert.match(text2, new RegExp(`- tcp 127\\.0\\.0\\.1:${first.port}`));
    } finally {
      watching = false;
      await watcher;
    }
  });

  it('reports a node whose scan fails and one that never finishes, keeps the others, deletes every pod, exits 3', async () => {
    const namespace = await newNamespace('ports-fail');
    const dir = await mkdtemp(join(tmpdir(), 'crowsnest-ports-fail-'));
    dirs.push(dir);
    const nodes = await nodeNames('type=kwok');
    const [failing, hanging] = [nodes[1]!, nodes[2]!];
    const kubelet = standInKubelet(await testbed(), namespace, (node) => (node === failing ? 'fail' : node === hanging ? 'hang' : 'scan'));
    try {
      const result = await runCli(['ports', 'collect', '--namespace', namespace, '--report-dir', dir, '--image', 'crowsnest:test', '--node-selector', 'type=kwok', '--timeout', '4s']);
      assert.equal(result.code, 3, result.stderr + result.stdout);
      const report = JSON.parse(await readFile(join(dir, (await reports(dir))[0]!), 'utf8')) as Report;
      assert.deepEqual(report.nodes.map((n) => n.node), [nodes[0]]);
      const reasons = Object.fromEntries(report.failed.map((f) => [f.node, f.reason]));
      assert.match(reasons[failing] ?? '', /Failed, exit code 1.*permission denied/);
      assert.match(reasons[hanging] ?? '', /timed out after 4s \(phase Running/);
      assert.match(result.stdout, new RegExp(`! ${failing}: `));
      await eventually('failed and timed-out scan pods to be deleted too', async () => (await scanPodsLeft(namespace)) === 0, 20_000);
    } finally {
      await kubelet.stop();
    }
  });

  it('stops on SIGTERM while its pod creates are held in admission: no scan pod is left, the report names the interrupted nodes, exits 1', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('ports-term');
    const dir = await mkdtemp(join(tmpdir(), 'crowsnest-ports-term-'));
    dirs.push(dir);
    // A slow admission webhook (a policy engine having a bad day) holds every scan pod's create
    // for 3 s, and the signal comes while they are held: none of them may become a pod that
    // outlives the run. No stand-in kubelet either, so no scan would finish.
    const heldMs = 3_000;
    const webhook = await serveValidatingWebhook(
      plane,
      {
        name: `slow-${namespace}`,
        namespace,
        rule: { apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], operations: ['CREATE'] },
        review: async (request) => {
          if (!request.dryRun) await new Promise((resolve) => setTimeout(resolve, heldMs));
          return { allowed: true };
        },
      },
      { path: `/api/v1/namespaces/${namespace}/pods`, object: { apiVersion: 'v1', kind: 'Pod', spec: { containers: [{ name: 'c', image: 'x' }] } } },
    );
    try {
      const child = spawn(join(repo, 'bin', 'crowsnest'), ['ports', 'collect', '--namespace', namespace, '--report-dir', dir, '--image', 'crowsnest:test', '--node-selector', 'type=kwok', '--timeout', '60s', '--log-format', 'json'], {
        env: { ...process.env, KUBECONFIG: plane.kubeconfigPath },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      const nodes = await nodeNames('type=kwok');
      await eventually('every scan pod create to be held in admission', () => webhook.requests.length === nodes.length, 20_000);
      const heldUntil = Date.now() + heldMs;
      const signalled = Date.now();
      child.kill('SIGTERM');
      const code = await exited;
      const stoppedInMs = Date.now() - signalled;

      assert.equal(code, 1, stderr + stdout);
      assert.ok(stoppedInMs < 15_000, `took ${stoppedInMs} ms to stop; the node timeout is 60 s`);
      assert.match(stderr, /interrupted: deleting scan pods/);
      const report = JSON.parse(await readFile(join(dir, (await reports(dir))[0]!), 'utf8')) as Report;
      assert.deepEqual(report.nodes, []);
      assert.deepEqual(report.failed.map((f) => f.node).sort(), nodes);
      for (const failure of report.failed) assert.match(failure.reason, /interrupted/);
      // Once admission would have let the creates through, no pod may exist: not left for the
      // next run's sweep of pods over an hour old.
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, heldUntil - Date.now()) + 1_000));
      assert.equal(await scanPodsLeft(namespace), 0, 'scan pods outlived the interrupted run');
    } finally {
      await webhook.stop();
    }
  });

  it('builds a scan pod the apiserver accepts: pinned to its node, hostPID, no token, tolerating every taint', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('ports-pod');
    for (const processInfo of [true, false]) {
      const pod = buildScanPod({ namespace, node: 'kwok-node-0', runId: 'abc', image: 'crowsnest:test', processInfo, activeDeadlineSeconds: 120 });
      const out = await plane.kubectl(['create', '--dry-run=server', '-o', 'json', '-f', '-'], { input: JSON.stringify(pod) });
      const accepted = JSON.parse(out) as { spec: AcceptedScanPodSpec };
      assert.equal(accepted.spec['nodeName'], 'kwok-node-0');
      assert.equal(accepted.spec['hostPID'], true);
      assert.equal(accepted.spec['hostNetwork'], undefined);
      assert.equal(accepted.spec['automountServiceAccountToken'], false);
      assert.deepEqual(accepted.spec['tolerations'], [{ operator: 'Exists' }]);
      const container = accepted.spec['containers'][0]!;
      assert.equal(container.securityContext.readOnlyRootFilesystem, true);
      assert.equal(container.securityContext.allowPrivilegeEscalation, false);
      assert.deepEqual(container.securityContext.capabilities.drop, ['ALL']);
      assert.equal(container.securityContext.runAsNonRoot, !processInfo);
      assert.ok(container.resources.limits.memory, 'memory limit set');
      assert.deepEqual(container.args.slice(0, 4), ['ports', 'scan', '--output', 'json']);
      assert.equal(accepted.spec['volumes']?.some((v: { name: string }) => v.name.startsWith('kube-api-access')) ?? false, false, 'no token volume');
    }
  });
});
