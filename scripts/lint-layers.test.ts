import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { check, findCycles, importsOf, layerViolation } from './lint-layers.ts';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');

describe('layerViolation', () => {
  const upward = [
    ['src/kube/runtime/manager.ts', 'src/logaccess/controller.ts', /kube must not import capability/],
    ['src/kube/runtime/cache.ts', 'src/observe/http.ts', /kube must not import observe/],
    ['src/logaccess/controller.ts', 'src/operator/context.ts', /capability must not import operator/],
    ['src/prober/api.ts', 'src/cli/flags.ts', /capability must not import cli/],
    ['src/operator/catalog.ts', 'src/cli/flags.ts', /operator must not import cli/],
    ['src/observe/http.ts', 'src/operator/run.ts', /observe must not import operator/],
    ['src/version.ts', 'src/kube/client/client.ts', /shared must not import kube/],
    ['src/ports/scan.ts', 'src/inventory/types.ts', /a capability does not import another/],
    ['src/kube/client/client.ts', 'test/helpers/metrics.ts', /imports nothing from outside src/],
    ['src/brandnew/x.ts', 'src/kube/runtime/cache.ts', /give the new folder a layer/],
  ] as const;
  for (const [from, to, why] of upward) {
    it(`refuses ${from} → ${to}`, () => assert.match(layerViolation(from, to) ?? 'allowed', why));
  }

  const downward = [
    ['src/cli/operator.ts', 'src/operator/run.ts'],
    ['src/cli/flags.ts', 'src/logaccess/desired.ts'],
    ['src/operator/catalog.ts', 'src/logaccess/controller.ts'],
    ['src/operator/run.ts', 'src/observe/http.ts'],
    ['src/logaccess/controller.ts', 'src/kube/runtime/manager.ts'],
    ['src/inventory/collect.ts', 'src/report-files.ts'],
    ['src/observe/http.ts', 'src/kube/clock.ts'],
    ['src/kube/webhook/server.ts', 'src/kube/logger-type.ts'],
    ['src/kube/runtime/controller.test.ts', 'test/helpers/metrics.ts'],
    ['test/integration/x.test.ts', 'src/cli/flags.ts'],
  ] as const;
  for (const [from, to] of downward) {
    it(`allows ${from} → ${to}`, () => assert.equal(layerViolation(from, to), undefined));
  }
});

describe('findCycles', () => {
  it('finds each cycle once, as its sorted files, and nothing in an acyclic graph', () => {
    const graph = new Map([
      ['a', ['b']], ['b', ['c']], ['c', ['a', 'd']], ['d', []],
      ['e', ['f']], ['f', ['e']],
      ['g', ['g']],
      ['h', ['d']],
    ]);
    assert.deepEqual(findCycles(graph), [['a', 'b', 'c'], ['e', 'f'], ['g']]);
    assert.deepEqual(findCycles(new Map([['a', ['b']], ['b', ['c']], ['c', []]])), []);
  });
});

describe('importsOf', () => {
  it('sees static, type-only, dynamic and re-exporting imports, and ignores packages', () => {
    const text = [
      "import { a } from './a.ts';",
      "import type { B } from '../b/b.ts';",
      "export { c } from './c.ts';",
      "const d = await import('./d.ts');",
      "import { e } from 'prom-client';",
      "// import { f } from './commented.ts' is text in a comment, not an import",
    ].join('\n');
    assert.deepEqual(importsOf('/repo', 'src/x/y.ts', text), ['src/x/a.ts', 'src/b/b.ts', 'src/x/c.ts', 'src/x/d.ts']);
  });
});

describe('check', () => {
  it('passes on this repository', () => {
    assert.deepEqual(check(repo), []);
  });

  it('reports an upward import, a new cycle, and a known cycle that is gone', () => {
    const root = mkdtempSync(join(tmpdir(), 'lint-layers-'));
    try {
      const write = (path: string, text: string): void => {
        mkdirSync(join(root, dirname(path)), { recursive: true });
        writeFileSync(join(root, path), text);
      };
      write('src/kube/a.ts', "import { b } from './b.ts';\nimport { x } from '../operator/x.ts';\n");
      write('src/kube/b.ts', "import type { a } from './a.ts';\n");
      write('src/operator/x.ts', 'export const x = 1;\n');
      const gone = { files: ['src/kube/c.ts', 'src/kube/d.ts'], why: 'cut by a named change' };
      assert.deepEqual(check(root, [gone]), [
        'src/kube/a.ts imports src/operator/x.ts: kube must not import operator (layers import downward only)',
        'import cycle: src/kube/a.ts ↔ src/kube/b.ts',
        'known cycle src/kube/c.ts ↔ src/kube/d.ts is gone (cut by a named change): remove it from KNOWN_CYCLES in scripts/lint-layers.ts',
      ]);
      assert.deepEqual(check(root, [{ files: ['src/kube/a.ts', 'src/kube/b.ts'], why: 'known' }]).length, 1, 'a known cycle is tolerated');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
