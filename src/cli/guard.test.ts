import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadAll } from 'js-yaml';
import { EXIT_OK, EXIT_USAGE, main } from './main.ts';

async function run(argv: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: (text) => { stdout += text; }, stderr: (text) => { stderr += text; }, env: {}, stderrIsTTY: false });
  return { code, stdout, stderr };
}

describe('crowsnest guard convert', () => {
  const dir = mkdtempSync(join(tmpdir(), 'crowsnest-convert-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  test('prints the policies as YAML documents on stdout and the notes on stderr', async () => {
    const path = file('receiver.yaml', 'kind: Receiver\nmetadata: {name: web}\nspec: {Namespace: [a, b], action: quarantine, labelSelector: {matchLabels: {app: web}}}\n');
    const { code, stdout, stderr } = await run(['guard', 'convert', '-f', path]);
    assert.equal(code, EXIT_OK, stderr);
    const documents = loadAll(stdout) as { kind: string; metadata: { namespace: string } }[];
    assert.deepEqual(documents.map((document) => `${document.kind} ${document.metadata.namespace}`), ['GuardPolicy a', 'GuardPolicy b']);
    assert.match(stderr, /^note: .*kubectl label namespace a b sidecar-injection=enabled/m);
    assert.doesNotMatch(stdout, /note:/);
  });

  test('-o json prints one List; --enforce makes policies that act', async () => {
    const path = file('policy.yaml', 'kind: PolicyDefinition\nmetadata: {name: web}\nspec: {}\n');
    const { code, stdout } = await run(['guard', 'convert', '-f', path, '-o', 'json', '--enforce']);
    assert.equal(code, EXIT_OK);
    const list = JSON.parse(stdout) as { kind: string; items: { spec: { dryRun: boolean } }[] };
    assert.equal(list.kind, 'List');
    assert.deepEqual(list.items.map((item) => item.spec.dryRun), [false]);
  });

  test('input it cannot convert, a missing file or no -f: a one-line error and exit 2, nothing on stdout', async () => {
    const bad = file('bad.yaml', 'kind: Receiver\nmetadata: {name: web}\nspec: {action: scale-to-zero}\n');
    for (const [argv, message] of [
      [['guard', 'convert', '-f', bad], /^error: .*bad\.yaml, document 1 \(Receiver\/web\): action "scale-to-zero" is not the tool's only action, quarantine\n$/],
      [['guard', 'convert', '-f', join(dir, 'missing.yaml')], /^error: cannot read .*missing\.yaml: ENOENT/],
      [['guard', 'convert'], /^error: --filename is required/],
    ] as const) {
      const { code, stdout, stderr } = await run(argv);
      assert.equal(code, EXIT_USAGE, stderr);
      assert.equal(stdout, '');
      assert.match(stderr, message);
    }
  });
});
