import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createWriteStream, writeFileSync } from 'node:fs';
import { readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { useScratchDir } from '../../test/helpers/scratch.ts';
import { gunzipSync } from 'node:zlib';
import type { KubeObject } from '../kube/resources.ts';
import { fileTimestamp } from '../report-files.ts';
import { snapshotFormats, type SnapshotFormat } from './snapshot-format.ts';
import {
  pruneSnapshots,
  SnapshotEncoder,
  SnapshotFileWriter,
  snapshotStem,
  SnapshotWriteError,
} from './snapshot-writer.ts';

const objects: KubeObject[] = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } },
  { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'shop' }, spec: { replicas: 2 } } as KubeObject,
  { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg', namespace: 'shop' }, data: { note: 'línea ✓ 日本\n"quoted"' } } as KubeObject,
];

function encodeAll(format: SnapshotFormat, items: readonly KubeObject[]): string {
  const encoder = new SnapshotEncoder(format);
  return encoder.begin() + items.map((item) => encoder.encode(item)).join('') + encoder.end();
}

const scratch = useScratchDir('crowsnest-writer-');


describe('SnapshotEncoder', () => {
  it('offers exactly the ndjson and json formats', () => {
    assert.deepEqual([...snapshotFormats], ['ndjson', 'json']);
  });

  it('writes NDJSON as one object per line, with nothing before or after', () => {
    const text = encodeAll('ndjson', objects);
    assert.equal(text, objects.map((o) => `${JSON.stringify(o)}\n`).join(''));
    assert.deepEqual(text.trimEnd().split('\n').map((line) => JSON.parse(line)), objects);
  });

  it('writes an empty NDJSON snapshot as an empty string', () => {
    assert.equal(encodeAll('ndjson', []), '');
  });

  it('writes the json format as a {"objects":[…]} document that parses back to the objects', () => {
    const text = encodeAll('json', objects);
    assert.deepEqual(JSON.parse(text), { objects });
    assert.ok(text.startsWith('{"objects":[\n'));
    assert.ok(text.endsWith('\n]}\n'));
  });

  it('writes an empty json snapshot as a valid document', () => {
    const text = encodeAll('json', []);
    assert.equal(text, '{"objects":[]}\n');
    assert.deepEqual(JSON.parse(text), { objects: [] });
  });

  it('writes a single-object json snapshot without a stray comma', () => {
    assert.deepEqual(JSON.parse(encodeAll('json', objects.slice(0, 1))), { objects: objects.slice(0, 1) });
  });
});

describe('fileTimestamp and snapshotStem', () => {
  it('format the time as ISO 8601 basic, UTC, without milliseconds', () => {
    assert.equal(fileTimestamp(new Date('2026-11-23T14:15:00.789Z')), '20261123T141500Z');
    assert.equal(fileTimestamp(new Date(Date.UTC(2024, 0, 2, 3, 4, 5))), '20240102T030405Z');
  });

  it('name the snapshot after the cluster and start time', () => {
    assert.equal(snapshotStem('prod-eu_1', new Date('2026-11-23T14:15:00Z')), 'inventory-prod-eu_1-20261123T141500Z');
  });

  it('sort in time order as strings', () => {
    const times = ['2026-01-01T00:00:00Z', '2025-12-31T23:59:59Z', '2026-01-01T00:00:01Z', '2026-10-01T00:00:00Z'];
    const stems = times.map((t) => fileTimestamp(new Date(t)));
    assert.deepEqual([...stems].sort(), ['20251231T235959Z', '20260101T000000Z', '20260101T000001Z', '20261001T000000Z']);
  });
});

describe('SnapshotFileWriter', () => {
  const startedAt = new Date('2026-03-01T10:00:00Z');

  it('writes into a hidden temporary file and shows the final file only after commit (gzip NDJSON)', async () => {
    const dir = await scratch.fresh();
    const writer = await SnapshotFileWriter.open({ dir, clusterId: 'prod', startedAt, format: 'ndjson', gzip: true });
    assert.equal(writer.path, join(dir, 'inventory-prod-20260301T100000Z.ndjson.gz'));
    for (const object of objects) await writer.write(object);
    assert.equal(writer.objects, 3);
    assert.deepEqual(await readdir(dir), ['.inventory-prod-20260301T100000Z.ndjson.gz.tmp']);

    const committed = await writer.commit();
    assert.deepEqual(await readdir(dir), ['inventory-prod-20260301T100000Z.ndjson.gz']);
    const raw = gunzipSync(await readFile(committed.path)).toString('utf8');
    assert.equal(raw, encodeAll('ndjson', objects));
    assert.deepEqual(raw.trimEnd().split('\n').map((line) => JSON.parse(line)), objects);
    assert.deepEqual(committed, {
      path: writer.path,
      objects: 3,
      rawBytes: Buffer.byteLength(raw),
      storedBytes: (await stat(writer.path)).size,
    });
    assert.notEqual(committed.storedBytes, committed.rawBytes);
  });

  it('writes an uncompressed json document', async () => {
    const dir = await scratch.fresh();
    const writer = await SnapshotFileWriter.open({ dir, clusterId: 'prod', startedAt, format: 'json', gzip: false });
    for (const object of objects) await writer.write(object);
    const committed = await writer.commit();
    assert.equal(committed.path, join(dir, 'inventory-prod-20260301T100000Z.json'));
    const text = await readFile(committed.path, 'utf8');
    assert.deepEqual(JSON.parse(text), { objects });
    assert.equal(committed.rawBytes, Buffer.byteLength(text));
    assert.equal(committed.storedBytes, Buffer.byteLength(text));
  });

  it('writes an empty snapshot as a valid file', async () => {
    for (const [format, gzip, expected] of [
      ['json', true, '{"objects":[]}\n'],
      ['ndjson', true, ''],
      ['json', false, '{"objects":[]}\n'],
    ] as const) {
      const dir = await scratch.fresh();
      const writer = await SnapshotFileWriter.open({ dir, clusterId: 'empty', startedAt, format, gzip });
      const committed = await writer.commit();
      const bytes = await readFile(committed.path);
      assert.equal((gzip ? gunzipSync(bytes) : bytes).toString('utf8'), expected);
      assert.equal(committed.objects, 0);
      assert.equal(committed.rawBytes, Buffer.byteLength(expected));
      assert.equal(committed.storedBytes, bytes.length);
    }
  });

  it('streams many objects across write blocks without losing or reordering any', async () => {
    const dir = await scratch.fresh();
    const many = Array.from({ length: 3000 }, (_, i) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `cm-${i}` }, data: { v: 'x'.repeat(i % 500) } }));
    const writer = await SnapshotFileWriter.open({ dir, clusterId: 'big', startedAt, format: 'ndjson', gzip: true });
    for (const object of many) await writer.write(object);
    const committed = await writer.commit();
    const raw = gunzipSync(await readFile(committed.path)).toString('utf8');
    assert.deepEqual(raw.trimEnd().split('\n').map((line) => JSON.parse(line)), many);
    assert.equal(committed.objects, 3000);
    assert.equal(committed.rawBytes, Buffer.byteLength(raw));
  });

  it('creates a missing report directory', async () => {
    const dir = join(await scratch.fresh(), 'nested', 'reports');
    const writer = await SnapshotFileWriter.open({ dir, clusterId: 'c', startedAt, format: 'ndjson', gzip: false });
    await writer.write(objects[0] as KubeObject);
    const committed = await writer.commit();
    assert.equal(await readFile(committed.path, 'utf8'), `${JSON.stringify(objects[0])}\n`);
  });

  it('removes the temporary file on abort and leaves no snapshot behind', async () => {
    const dir = await scratch.fresh();
    const writer = await SnapshotFileWriter.open({ dir, clusterId: 'prod', startedAt, format: 'ndjson', gzip: true });
    await writer.write(objects[0] as KubeObject);
    assert.equal((await readdir(dir)).length, 1);
    await writer.abort();
    assert.deepEqual(await readdir(dir), []);
  });

  /** Opens the temporary file as usual, but writes go to /dev/full: every write fails with ENOSPC. */
  const diskFull = (tempPath: string): Writable => {
    writeFileSync(tempPath, '', { flag: 'wx' });
    return createWriteStream('/dev/full');
  };
  const noisyObject = (i: number): KubeObject => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `cm-${i}` }, data: { v: randomBytes(600).toString('base64') } }) as KubeObject;

  for (const gzip of [true, false]) {
    it(`fails a write with a clear error when the disk is full, instead of waiting forever (gzip ${gzip})`, { timeout: 10_000 }, async () => {
      const dir = await scratch.fresh();
      const writer = await SnapshotFileWriter.open({ dir, clusterId: 'full', startedAt, format: 'ndjson', gzip, openFile: diskFull });
      assert.equal((await readdir(dir)).length, 1);
      const writeAll = async (): Promise<void> => {
        for (let i = 0; i < 5_000; i++) await writer.write(noisyObject(i));
        await writer.commit();
      };
      await assert.rejects(writeAll(), (err: unknown) => {
        assert.ok(err instanceof SnapshotWriteError, String(err));
        assert.equal(err.code, 'ENOSPC');
        assert.match(err.message, /^cannot write the snapshot .*inventory-full-20260301T100000Z\.ndjson.*: ENOSPC/);
        return true;
      });
      // Every later call fails the same way rather than hanging.
      await assert.rejects(writer.write(noisyObject(0)), SnapshotWriteError);
      await writer.abort();
      assert.deepEqual(await readdir(dir), []);
    });

    it(`removes the temporary file when commit fails (gzip ${gzip})`, { timeout: 10_000 }, async () => {
      const dir = await scratch.fresh();
      const writer = await SnapshotFileWriter.open({ dir, clusterId: 'full', startedAt, format: 'json', gzip, openFile: diskFull });
      // Small enough to stay in the write buffer: the failure only shows when commit flushes.
      await writer.write(objects[0] as KubeObject);
      await assert.rejects(writer.commit(), { name: 'SnapshotWriteError', code: 'ENOSPC' });
      assert.deepEqual(await readdir(dir), []);
      await writer.abort(); // harmless afterwards
    });
  }

  it('fails when the report directory disappears under a run, and leaves nothing behind', { timeout: 10_000 }, async () => {
    const parent = await scratch.fresh();
    const dir = join(parent, 'reports');
    const writer = await SnapshotFileWriter.open({ dir, clusterId: 'gone', startedAt, format: 'ndjson', gzip: true });
    await writer.write(objects[0] as KubeObject);
    await rm(dir, { recursive: true });
    // The open file still takes writes; the rename into the vanished directory is what fails.
    await assert.rejects(writer.commit(), { name: 'SnapshotWriteError', code: 'ENOENT', message: /^cannot write the snapshot .*inventory-gone-20260301T100000Z\.ndjson\.gz: ENOENT/ });
    assert.deepEqual(await readdir(parent), []);
  });

  it('refuses to open a second writer for the same run while the first is in progress', async () => {
    const dir = await scratch.fresh();
    const first = await SnapshotFileWriter.open({ dir, clusterId: 'prod', startedAt, format: 'json', gzip: false });
    await assert.rejects(SnapshotFileWriter.open({ dir, clusterId: 'prod', startedAt, format: 'json', gzip: false }), { code: 'EEXIST' });
    await first.abort();
  });
});

describe('pruneSnapshots', () => {
  const now = new Date('2026-03-10T12:00:00Z');
  const hour = 3_600_000;
  /** Snapshots of cluster prod, newest first: 1 h, 2 h, … old. */
  const prodStamps = [1, 2, 3, 26, 50].map((hoursAgo) => fileTimestamp(new Date(now.getTime() - hoursAgo * hour)));

  async function layout(): Promise<string> {
    const dir = await scratch.fresh();
    const names = [
      ...prodStamps.flatMap((stamp, i) => [
        `inventory-prod-${stamp}.${i % 2 === 0 ? 'ndjson.gz' : 'json'}`,
        `inventory-prod-${stamp}.summary.json`,
      ]),
      // other clusters, one of them sharing the prefix
      `inventory-prod-eu-${prodStamps[4]}.ndjson.gz`,
      `inventory-prod-eu-${prodStamps[4]}.summary.json`,
      `inventory-staging-${prodStamps[4]}.ndjson.gz`,
      // not ours
      'notes.txt',
      'inventory-prod-latest.ndjson.gz',
      `inventory-prod-${prodStamps[4]}.ndjson.gz.bak`,
      `backup-inventory-prod-${prodStamps[4]}.ndjson.gz`,
    ];
    for (const name of names) await writeFile(join(dir, name), name);
    return dir;
  }

  const unrelatedNames = [
    'backup-inventory-prod-20260308T100000Z.ndjson.gz',
    'inventory-prod-20260308T100000Z.ndjson.gz.bak',
    'inventory-prod-eu-20260308T100000Z.ndjson.gz',
    'inventory-prod-eu-20260308T100000Z.summary.json',
    'inventory-prod-latest.ndjson.gz',
    'inventory-staging-20260308T100000Z.ndjson.gz',
    'notes.txt',
  ];
  const unrelated = (names: string[]): string[] => names.filter((n) => unrelatedNames.includes(n)).sort();
  const prodFiles = (names: string[]): string[] => names.filter((n) => !unrelatedNames.includes(n)).sort();

  const cases: { name: string; keepLast: number; maxAgeMs: number; kept: number[] }[] = [
    { name: 'keepLast keeps the newest n', keepLast: 2, maxAgeMs: 0, kept: [0, 1] },
    { name: 'maxAge deletes the older ones', keepLast: 0, maxAgeMs: 24 * hour, kept: [0, 1, 2] },
    { name: 'both apply together: whichever deletes more', keepLast: 4, maxAgeMs: 2.5 * hour, kept: [0, 1] },
    { name: 'both apply together: keepLast the stricter', keepLast: 1, maxAgeMs: 48 * hour, kept: [0] },
    { name: '0 and 0 keep everything', keepLast: 0, maxAgeMs: 0, kept: [0, 1, 2, 3, 4] },
  ];
  for (const c of cases) {
    it(`${c.name}, with their summaries, and nothing else`, async () => {
      const dir = await layout();
      const deleted = await pruneSnapshots(dir, 'prod', { keepLast: c.keepLast, maxAgeMs: c.maxAgeMs }, now);
      const expectedDeleted = prodStamps
        .map((stamp, i) => ({ stamp, i }))
        .filter(({ i }) => !c.kept.includes(i))
        .flatMap(({ stamp, i }) => [`inventory-prod-${stamp}.${i % 2 === 0 ? 'ndjson.gz' : 'json'}`, `inventory-prod-${stamp}.summary.json`]);
      assert.deepEqual(deleted, expectedDeleted);
      const left = await readdir(dir);
      const expectedLeft = c.kept.flatMap((i) => [
        `inventory-prod-${prodStamps[i]}.${i % 2 === 0 ? 'ndjson.gz' : 'json'}`,
        `inventory-prod-${prodStamps[i]}.summary.json`,
      ]);
      assert.deepEqual(prodFiles(left), expectedLeft.sort());
      assert.deepEqual(unrelated(left), unrelatedNames);
    });
  }

  it('prunes another cluster without touching prod', async () => {
    const dir = await layout();
    const deleted = await pruneSnapshots(dir, 'prod-eu', { keepLast: 0, maxAgeMs: hour }, now);
    assert.deepEqual(deleted, ['inventory-prod-eu-20260308T100000Z.ndjson.gz', 'inventory-prod-eu-20260308T100000Z.summary.json']);
    const left = await readdir(dir);
    assert.ok(!left.includes('inventory-prod-eu-20260308T100000Z.summary.json'));
    assert.equal(prodFiles(left).length, 10);
    assert.deepEqual(unrelated(left), unrelatedNames.filter((n) => !n.startsWith('inventory-prod-eu-')));
  });

  it('counts a run with only a summary (the endpoint removed its snapshot) and prunes it like any other', async () => {
    const dir = await scratch.fresh();
    const stamps = [1, 2, 3, 26, 50].map((hoursAgo) => fileTimestamp(new Date(now.getTime() - hoursAgo * hour)));
    // Runs 0, 2, 3 and 4 were uploaded: only their summaries are left. Run 1 kept its snapshot.
    const runs = stamps.map((stamp, i) => (i === 1 ? [`inventory-prod-${stamp}.ndjson.gz`, `inventory-prod-${stamp}.summary.json`] : [`inventory-prod-${stamp}.summary.json`]));
    const notOurs = [
      `inventory-prod-${stamps[4]}.summary.json.bak`,
      `inventory-prod-${stamps[4]}.summary.txt`,
      `inventory-prod-${stamps[4]}.summary.json~`,
      `inventory-prod-eu-${stamps[4]}.summary.json`,
      `old-inventory-prod-${stamps[4]}.summary.json`,
      'inventory-prod-latest.summary.json',
    ];
    for (const name of [...runs.flat(), ...notOurs]) await writeFile(join(dir, name), name);

    const byCount = await pruneSnapshots(dir, 'prod', { keepLast: 3, maxAgeMs: 0 }, now);
    assert.deepEqual(byCount, [...runs[3]!, ...runs[4]!]);
    assert.deepEqual((await readdir(dir)).sort(), [...runs[0]!, ...runs[1]!, ...runs[2]!, ...notOurs].sort());

    const byAge = await pruneSnapshots(dir, 'prod', { keepLast: 0, maxAgeMs: 90 * 60_000 }, now);
    assert.deepEqual(byAge, [...runs[1]!, ...runs[2]!]);
    assert.deepEqual((await readdir(dir)).sort(), [...runs[0]!, ...notOurs].sort());
  });

  it('removes temporary files of crashed runs older than 6 h, but not fresh ones or other clusters\'', async () => {
    const dir = await scratch.fresh();
    const stale = '.inventory-prod-20260310T040000Z.ndjson.gz.tmp';
    const fresh = '.inventory-prod-20260310T110000Z.ndjson.gz.tmp';
    const justUnder = '.inventory-prod-20260310T060100Z.json.tmp';
    const otherCluster = '.inventory-staging-20260310T040000Z.ndjson.gz.tmp';
    // cluster "prod-eu" shares the prefix "inventory-prod-" with cluster "prod"
    const prefixCluster = '.inventory-prod-eu-20260310T040000Z.ndjson.gz.tmp';
    const notOurs = '.cache.tmp';
    const notOursWithPrefix = '.inventory-prod-scratch.tmp';
    const ages: [string, number][] = [
      [stale, 7 * hour], [fresh, 1 * hour], [justUnder, 6 * hour - 60_000],
      [otherCluster, 7 * hour], [prefixCluster, 7 * hour], [notOurs, 100 * hour], [notOursWithPrefix, 100 * hour],
    ];
    for (const [name, age] of ages) {
      const path = join(dir, name);
      await writeFile(path, 'partial');
      const mtime = new Date(now.getTime() - age);
      await utimes(path, mtime, mtime);
    }
    const deleted = await pruneSnapshots(dir, 'prod', { keepLast: 1, maxAgeMs: 0 }, now);
    assert.deepEqual(deleted, [stale]);
    assert.deepEqual((await readdir(dir)).sort(), [notOurs, notOursWithPrefix, otherCluster, prefixCluster, justUnder, fresh].sort());
  });

  it('returns nothing for a report directory that does not exist', async () => {
    assert.deepEqual(await pruneSnapshots(join(scratch.root, 'no-such-dir'), 'prod', { keepLast: 1, maxAgeMs: hour }, now), []);
  });
});
