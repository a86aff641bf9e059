/**
 * `crowsnest ports collect` and `crowsnest operator` as real processes, with the faults and bad
 * input of issue 10 (items 4, 7, 10): a report directory that cannot be written is found before
 * any node is scanned; a per-node timeout longer than Node's timers can hold still works; a token
 * that may not create pods fails the run at once with the API's words; an operator with nothing
 * to run says so.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { newNamespace, serviceAccountToken, testbed } from '../testbed.ts';
import { ApiServerProxy, crowsnest, removeTempDirs, tempDir } from './helpers.ts';

describe('ports collect and operator under faults (real processes)', () => {
  let proxy: ApiServerProxy | undefined;
  after(async () => {
    await proxy?.stop();
    await removeTempDirs();
  });

  it('ports collect with a report directory it cannot write: exit 2 before a single request, no pod created', async () => {
    proxy = await ApiServerProxy.start();
    const dir = await tempDir();
    const kubeconfig = await proxy.kubeconfig(dir);
    const namespace = await newNamespace('faults-ports-dir');
    for (const reportDir of ['/proc/nope/reports', '/proc/self']) {
      const run = await crowsnest(['ports', 'collect', '--namespace', namespace, '--report-dir', reportDir, '--image', 'crowsnest:test'], { KUBECONFIG: kubeconfig });
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, new RegExp(`^error: report directory ${reportDir}: .*; no node was scanned$`, 'm'));
      assert.ok(run.durationMs < 10_000, `took ${run.durationMs} ms`);
    }
    assert.deepEqual(proxy.requests, [], 'no request reached the API server');
  });

  it('ports collect with --timeout 700h: every node scanned, instead of every wait ending at once', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('faults-ports-timeout');
    await plane.waitForDefaultServiceAccount(namespace);
    const dir = await tempDir();
    assert.ok(plane.images['crowsnest'], 'the Crowsnest image is in the testbed registry (make image)');
    // Scans of the real nodes, by the image just built.
    const image = `${plane.images['crowsnest']}@${plane.imageDigests['crowsnest']}`;
    const run = await crowsnest(['ports', 'collect', '--namespace', namespace, '--report-dir', dir, '--image', image, '--node-selector', 'type!=kwok', '--timeout', '700h'], { KUBECONFIG: plane.kubeconfigPath });
    assert.equal(run.code, 0, run.stderr + run.stdout);
    assert.match(run.stdout, /2 node\(s\) scanned, 0 failed/);
  });

  it('ports collect with a token without the collector\'s rights: exit 1 at once, with the API server\'s reason', async () => {
    proxy ??= await ApiServerProxy.start();
    const namespace = await newNamespace('faults-ports-token');
    const dir = await tempDir();
    const token = await serviceAccountToken(namespace, 'no-rights');
    const run = await crowsnest(['ports', 'collect', '--namespace', namespace, '--report-dir', dir, '--image', 'crowsnest:test'], { KUBECONFIG: await proxy.kubeconfig(dir, token) });
    assert.equal(run.code, 1, run.stderr + run.stdout);
    assert.match(run.stderr, /^error: .*403 Forbidden: nodes is forbidden: User "system:serviceaccount:.*:no-rights" cannot list resource "nodes"/m);
    assert.ok(run.durationMs < 15_000, `took ${run.durationMs} ms`);
  });

  it('operator with no controller to run (--controllers=-logaccess): exit 2 at once, saying why', async () => {
    const plane = await testbed();
    const run = await crowsnest(['operator', '--controllers=-logaccess', '--metrics-bind-address', '0', '--health-probe-bind-address', '0'], { KUBECONFIG: plane.kubeconfigPath });
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /^error: invalid value "-logaccess" for --controllers: selects no controller, so the operator would have nothing to run/m);
  });
});
