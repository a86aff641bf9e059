/**
 * Installs the chart's generated CRDs (deploy/helm/crowsnest/crds) on the shared testbed, once
 * per test process, and waits until their resources are served.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { CRD_DIR } from '../../src/operator/apis.ts';
import { eventually, testbed } from './testbed.ts';

const repo = join(import.meta.dirname, '..', '..');
let installed: Promise<void> | undefined;

export function installCrds(): Promise<void> {
  installed ??= install();
  return installed;
}

async function install(): Promise<void> {
  const plane = await testbed();
  for (const file of await readdir(join(repo, CRD_DIR))) {
    const crd = load(await readFile(join(repo, CRD_DIR, file), 'utf8')) as { metadata: { name: string }; spec: { group: string; versions: Array<{ name: string }>; names: { plural: string } } };
    const res = await plane.request('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
    if (res.status !== 201 && res.status !== 409) throw new Error(`installing ${file}: ${res.status} ${res.body}`);
    const version = crd.spec.versions[0]!.name;
    await eventually(`${crd.metadata.name} to be served`, async () =>
      (await plane.request('GET', `/apis/${crd.spec.group}/${version}/${crd.spec.names.plural}?limit=1`)).status === 200);
  }
}
