import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { load } from 'js-yaml';
import { apiDefinitions, CRD_DIR, generatedCrdFiles } from './apis.ts';

const repo = join(import.meta.dirname, '..', '..');

describe('the chart\'s CRDs', () => {
  it('are exactly what the API definitions generate (run make crds after changing one)', async () => {
    for (const [file, yaml] of generatedCrdFiles()) {
      const committed = await readFile(join(repo, CRD_DIR, file), 'utf8').catch(() => '<missing>');
      assert.equal(committed, yaml, `${CRD_DIR}/${file} is out of date: run make crds`);
    }
  });

  it('has no CRD file that no definition generates', async () => {
    const generated = generatedCrdFiles();
    assert.deepEqual((await readdir(join(repo, CRD_DIR))).filter((f) => !generated.has(f)), []);
  });

  it('names every CRD <plural>.<group>, in the crowsnest.dev group, with a status subresource', () => {
    for (const [file, yaml] of generatedCrdFiles()) {
      const crd = load(yaml) as { metadata: { name: string }; spec: { group: string; versions: Array<{ subresources: unknown }> } };
      assert.equal(`${crd.metadata.name}.yaml`, file);
      assert.equal(crd.spec.group, 'crowsnest.dev');
      for (const version of crd.spec.versions) assert.deepEqual(version.subresources, { status: {} });
    }
    assert.ok(apiDefinitions.length > 0);
  });
});
