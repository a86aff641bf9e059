import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SnapshotDiff } from './diff.ts';
import { describeRef, renderDiffJson, renderDiffTable } from './diff-format.ts';

const web = { group: 'apps', kind: 'Deployment', namespace: 'shop', name: 'web', apiVersion: 'apps/v1' };
const cfg = { group: '', kind: 'ConfigMap', namespace: 'shop', name: 'cfg', apiVersion: 'v1' };
const ns = { group: '', kind: 'Namespace', name: 'old', apiVersion: 'v1' };
const db = { group: 'apps', kind: 'StatefulSet', namespace: 'shop', name: 'db', apiVersion: 'apps/v1' };

const empty: SnapshotDiff = { added: [], removed: [], changed: [], replaced: [], unchanged: 0, skipped: { duplicates: 0, unidentified: 0 } };
const full: SnapshotDiff = {
  added: [web],
  removed: [ns],
  changed: [
    { ref: cfg, paths: ['data["app.conf"]', 'metadata.labels.tier'], morePaths: 0 },
    { ref: web, paths: ['metadata.labels.a', 'metadata.labels.b'], morePaths: 3 },
  ],
  replaced: [db],
  unchanged: 120,
  skipped: { duplicates: 0, unidentified: 0 },
};

describe('renderDiffTable', () => {
  it('lists each kind of difference in its own section, then the counts', () => {
    assert.equal(renderDiffTable(full), [
      'Added (1):',
      '  + apps/Deployment shop/web',
      'Removed (1):',
      '  - Namespace old',
      'Changed (2):',
      '  ~ ConfigMap shop/cfg: data["app.conf"], metadata.labels.tier',
      '  ~ apps/Deployment shop/web: metadata.labels.a, metadata.labels.b (+3 more)',
      'Replaced (uid changed) (1):',
      '  ! apps/StatefulSet shop/db',
      '',
      '1 added, 1 removed, 2 changed, 1 replaced, 120 unchanged',
      '',
    ].join('\n'));
  });

  it('says so when nothing differs, and mentions skipped objects only when there are some', () => {
    assert.equal(renderDiffTable({ ...empty, unchanged: 4 }), 'No differences.\n\n0 added, 0 removed, 0 changed, 0 replaced, 4 unchanged\n');
    assert.match(
      renderDiffTable({ ...empty, skipped: { duplicates: 2, unidentified: 1 } }),
      /0 unchanged, 3 skipped \(2 duplicate, 1 without kind or name\)\n$/,
    );
  });

  it('escapes control characters in what the snapshot files say (names, kinds, changed keys)', () => {
    const odd = { group: '', kind: 'ConfigMap', namespace: 'a', name: 'x\u001b[2J\ny', apiVersion: 'v1' };
    const text = renderDiffTable({ added: [odd], removed: [], changed: [{ ref: odd, paths: ['data["k\u001b"]'], morePaths: 0 }], replaced: [], unchanged: 0, skipped: { duplicates: 0, unidentified: 0 } });
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for a raw escape character
    assert.doesNotMatch(text, /\u001b/);
    assert.match(text, /^ {2}\+ ConfigMap a\/x\\e\[2J\\ny$/m);
    assert.match(text, /data\["k\\e"\]/);
  });

  it('names core, grouped and cluster-scoped objects the way kubectl users read them', () => {
    assert.equal(describeRef(web), 'apps/Deployment shop/web');
    assert.equal(describeRef(cfg), 'ConfigMap shop/cfg');
    assert.equal(describeRef(ns), 'Namespace old');
  });
});

describe('renderDiffJson', () => {
  it('is the diff plus a summary of counts, parseable back', () => {
    const parsed = JSON.parse(renderDiffJson(full));
    assert.deepEqual(parsed.summary, { added: 1, removed: 1, changed: 2, replaced: 1, unchanged: 120, skipped: { duplicates: 0, unidentified: 0 } });
    assert.deepEqual(parsed.added, [web]);
    assert.deepEqual(parsed.removed, [ns], 'cluster-scoped refs have no namespace key');
    assert.deepEqual(parsed.changed, full.changed);
    assert.deepEqual(parsed.replaced, [db]);
    assert.ok(renderDiffJson(empty).endsWith('}\n'));
  });
});
