/**
 * The admission webhook server (src/kube/webhook) called by a real API server: a mutation's JSON
 * Patch lands in the stored object (a sidecar appended to a pod's init containers), a denial's
 * message and code reach the client, and a serving certificate rotated on disk is picked up
 * without a restart while objects are being created, none of them failing admission.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:tls';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import type { KubeObject } from '../../src/kube/objects/resources.ts';
import { allow, deny, mutate } from '../../src/kube/webhook/review.ts';
import { issueServingCertificate, serveAdmissionWebhook } from '../../testbed/webhook.ts';
import { eventually, newNamespace, testbed } from './testbed.ts';

interface Pod {
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { initContainers?: Array<{ name: string; image: string; restartPolicy?: string }>; containers: Array<{ name: string; image: string }> };
}

const podsRule = { apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], operations: ['CREATE'] };
const configMapsRule = { apiGroups: [''], apiVersions: ['v1'], resources: ['configmaps'], operations: ['CREATE'] };

function pod(name: string, initContainers?: Pod['spec']['initContainers']): Pod & { apiVersion: string; kind: string } {
  return {
    apiVersion: 'v1', kind: 'Pod', metadata: { name },
    spec: { ...(initContainers ? { initContainers } : {}), containers: [{ name: 'app', image: 'localhost/app:1' }] },
  };
}

const configMap = (name: string, labels: Record<string, string> = {}) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, labels }, data: { a: '1' } });

describe('admission webhook server on a real API server', () => {
  it('mutates: the sidecar is appended to init containers and the annotation (a key with "/") is set', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('webhook-mutate');
    const sidecar = { name: 'net-prober', image: 'localhost/crowsnest:test', restartPolicy: 'Always' };
    const webhook = await serveAdmissionWebhook(plane, {
      name: `inject-${namespace}`, type: 'Mutating', namespace, rule: podsRule, failurePolicy: 'Ignore', timeoutSeconds: 3,
      review: (request) => {
        const mutated = structuredClone(request.object) as unknown as Pod;
        if (mutated.spec.initContainers?.some((c) => c.name === sidecar.name)) return allow();
        mutated.spec.initContainers = [...(mutated.spec.initContainers ?? []), sidecar];
        mutated.metadata.annotations = { ...mutated.metadata.annotations, 'crowsnest.dev/injected': 'net-prober', 'netprober-container-deployed': 'true' };
        return mutate(mutated as unknown as KubeObject);
      },
    }, { path: `/api/v1/namespaces/${namespace}/pods`, object: { ...pod('probe') } });
    try {
      const created = await plane.request('POST', `/api/v1/namespaces/${namespace}/pods`, pod('with-init', [{ name: 'migrate', image: 'localhost/migrate:1' }]));
      assert.equal(created.status, 201, created.body);
      const stored = JSON.parse((await plane.request('GET', `/api/v1/namespaces/${namespace}/pods/with-init`)).body) as Pod;
      assert.deepEqual(stored.spec.initContainers?.map((c) => c.name), ['migrate', 'net-prober']);
      assert.equal(stored.spec.initContainers?.[1]?.restartPolicy, 'Always');
      assert.equal(stored.metadata.annotations?.['crowsnest.dev/injected'], 'net-prober');
      assert.equal(stored.metadata.annotations?.['netprober-container-deployed'], 'true');

      const bare = await plane.request('POST', `/api/v1/namespaces/${namespace}/pods`, pod('bare'));
      assert.equal(bare.status, 201, bare.body);
      assert.deepEqual((JSON.parse(bare.body) as Pod).spec.initContainers?.map((c) => c.name), ['net-prober']);
    } finally {
      await webhook.stop();
    }
  });

  it('denies: the client gets the message and the code', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('webhook-deny');
    const registry = new Registry();
    const webhook = await serveAdmissionWebhook(plane, {
      name: `deny-${namespace}`, type: 'Validating', namespace, rule: configMapsRule, timeoutSeconds: 3, registry,
      review: (request) => (request.object?.metadata?.labels?.['team'] ? allow() : deny('every ConfigMap in this namespace needs a "team" label', { code: 422 })),
    }, { path: `/api/v1/namespaces/${namespace}/configmaps`, object: configMap('probe', { team: 'x' }) });
    try {
      const refused = await plane.request('POST', `/api/v1/namespaces/${namespace}/configmaps`, configMap('unlabelled'));
      assert.equal(refused.status, 422);
      assert.match((JSON.parse(refused.body) as { message: string }).message, /denied the request: every ConfigMap in this namespace needs a "team" label/);
      const accepted = await plane.request('POST', `/api/v1/namespaces/${namespace}/configmaps`, configMap('labelled', { team: 'a' }));
      assert.equal(accepted.status, 201, accepted.body);
      const metrics = await registry.metrics();
      assert.match(metrics, new RegExp(`crowsnest_webhook_requests_total\\{webhook="deny-${namespace}",code="422"\\} 1`));
      assert.match(metrics, new RegExp(`crowsnest_webhook_requests_total\\{webhook="deny-${namespace}",code="200"\\} [1-9]`));
    } finally {
      await webhook.stop();
    }
  });

  it('serves a certificate rotated on disk to new connections without a restart; no create fails meanwhile', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('webhook-rotate');
    // failurePolicy Fail: a handshake the API server cannot complete would fail the create.
    const webhook = await serveAdmissionWebhook(plane, {
      name: `rotate-${namespace}`, type: 'Validating', namespace, rule: configMapsRule, failurePolicy: 'Fail', timeoutSeconds: 5,
      review: () => allow(),
    }, { path: `/api/v1/namespaces/${namespace}/configmaps`, object: configMap('probe') });
    const ca = await readFile(plane.pki.caCert);
    const served = (): Promise<string> => new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: webhook.server.port, ca, servername: 'localhost' }, () => {
        resolve(new X509Certificate(socket.getPeerCertificate(true).raw).fingerprint256);
        socket.end();
      });
      socket.on('error', reject);
    });

    let creating = true;
    const failures: string[] = [];
    let created = 0;
    const creator = (async () => {
      for (let i = 0; creating && i < 5_000; i++) {
        const res = await plane.request('POST', `/api/v1/namespaces/${namespace}/configmaps`, configMap(`cm-${i}`));
        if (res.status === 201) created++;
        else failures.push(`${res.status} ${res.body}`);
      }
    })();
    try {
      const seen = [await served()];
      for (let rotation = 0; rotation < 3; rotation++) {
        const next = await issueServingCertificate({ cert: plane.pki.caCert, key: plane.pki.caKey }, plane.dir, { name: `rotated-${namespace}-${rotation}` });
        const [cert, key] = await Promise.all([readFile(next.certFile), readFile(next.keyFile)]);
        // Written in place, key first: for a moment the files hold a pair that does not match.
        await writeFile(webhook.keyFile, key);
        await writeFile(webhook.certFile, cert);
        const expected = new X509Certificate(cert).fingerprint256;
        // Picked up by the file watch (or the poll), not by a call from here.
        await eventually(`rotation ${rotation + 1} to be served`, async () => (await served()) === expected, 15_000);
        seen.push(expected);
        const before = created;
        await eventually('creates to go on after the rotation', () => created > before + 3, 15_000);
      }
      assert.equal(new Set(seen).size, 4);
    } finally {
      creating = false;
      await creator;
      await webhook.stop();
    }
    assert.deepEqual(failures, []);
    assert.ok(created >= 12, `only ${created} creates`);
    assert.ok(webhook.requests.length >= created, 'the creates went through the webhook');
  });
});
