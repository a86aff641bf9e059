import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createWriteStream, writeFileSync } from 'node:fs';
import { readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { useScratchDir } from '../../test/helpers/scratch.ts';
import { gunzipSync } from 'node:zlib';
import type { KubeObject } from '../kube/objects/resources.ts';
import { fileTimestamp } from '../report-files.ts';
import { snapshotFormats, type SnapshotFormat } from './snapshot-format.ts';
import {
  pruneSnapshots,
  SnapshotEncoder,
  SnapshotFileWriter,
  snapshotStem,
  SnapshotWriteError,
} from './snapshot-writer.ts';

/** A run id as the CLI makes them: its first 8 hex digits go into the file names. */
const RUN = 'a1b2c3d4-0000-4000-8000-000000000000';

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
  it('format the time as ISO 8601 basic, UTC, with milliseconds', () => {
    assert.equal(fileTimestamp(new Date('2026-11-23T14:15:00.789Z')), '20261123T141500.789Z');
    assert.equal(fileTimestamp(new Date(Date.UTC(2024, 0, 2, 3, 4, 5))), '20240102T030405.000Z');
  });

  it('name the snapshot after the cluster, the start time and the run', () => {
    assert.equal(snapshotStem('prod-eu_1', new Date('2026-11-23T14:15:00Z'), RUN), 'inventory-prod-eu_1-20261123T141500.000Z-a1b2c3d4');
  });

  it('give two runs started in the same millisecond names of their own', () => {
    const at = new Date('2026-11-23T14:15:00.123Z');
    assert.notEqual(snapshotStem('prod', at, RUN), snapshotStem('prod', at, 'ffffffff-0000-4000-8000-000000000000'));
  });

  it('sort in time order as strings', () => {
    const times = ['2026-01-01T00:00:00Z', '2025-12-31T23:59:59.999Z', '2026-01-01T00:00:00.001Z', '2026-10-01T00:00:00Z'];
    const stems = times.map((t) => fileTimestamp(new Date(t)));
    assert.deepEqual([...stems].sort(), ['20251231T235959.999Z', '20260101T000000.000Z', '20260101T000000.001Z', '20261001T000000.000Z']);
  });
});

describe('SnapshotFileWriter', () => {
  const startedAt = new Date('2026-03-01T10:00:00Z');

  it('writes into a hidden temporary file and shows the final file only after commit (gzip NDJSON)', async () => {
    const dir = await scratch.fresh();
    const writer = await SnapshotFileWriter.open({ dir, clusterId: 'prod', startedAt, runId: RUN, format: 'ndjson', gzip: true });
    assert.equal(writer.path, join(dir, 'inventory-prod-20260301T100000.000Z-a1b2c3d4.ndjson.gz'));
    for (const object of objects) await writer.write(object);
    assert.equal(writer.objects, 3);
    const during = await readdir(dir);
    assert.equal(during.length, 1);
    assert.match(during[0]!, /^\.inventory-prod-20260301T100000\.000Z-a1b2c3d4\.ndjson\.gz\.[0-9a-f]{8}\.tmp$/);

    const committed = await writer.commit();
    assert.deepEqual(await readdir(dir), ['inventory-prod-20260301T100000.000Z-a1b2c3d4.ndjson.gz']);
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
    const writer = await SnapshotFileWriter.open({ dir, clusterId: 'prod', startedAt, runId: RUN, format: 'json', gzip: false });
    for (const object of objects) await writer.write(object);
    const committed = await writer.commit();
    assert.equal(committed.path, join(dir, 'inventory-prod-20260301T100000.000Z-a1b2c3d4.json'));
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
      const writer = await SnapshotFileWriter.open({ dir, clusterId: 'empty', startedAt, runId: RUN, format, gzip });
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
    const writer = await SnapshotFileWriter.open({ dir, clusterId: 'big', startedAt, runId: RUN, format: 'ndjson', gzip: true });
    for (const object of many) await writer.write(object);
    const committed = await writer.commit();
    const raw = gunzipSync(await readFile(committed.path)).toString('utf8');
    assert.deepEqual(raw.trimEnd().split('\n').map((line) => JSON.parse(line)), many);
    assert.equal(committed.objects, 3000);
    assert.equal(committed.rawBytes, Buffer.byteLength(raw));
  });

  it('creates a missing report directory', async () => {
    const dir = join(await scratch.fresh(), 'nested', 'reports');
    const writer = await SnapshotFileWriter.open({ dir, clusterId: 'c', startedAt, runId: RUN, format: 'ndjson', gzip: false });
    await writer.write(objects[0] as KubeObject);
    const committed = await writer.commit();
    assert.equal(await readFile(committed.path, 'utf8'), `${JSON.stringify(objects[0])}\n`);
  });

  it('removes the temporary file on abort and leaves no snapshot behind', async () => {
    const dir = await scratch.fresh();
    const writer = await SnapshotFileWriter.open({ dir, clusterId: 'prod', startedAt, runId: RUN, format: 'ndjson', gzip: true });
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
      const writer = await SnapshotFileWriter.open({ dir, clusterId: 'full', startedAt, runId: RUN, format: 'ndjson', gzip, openFile: diskFull });
      assert.equal((await readdir(dir)).length, 1);
      const writeAll = async (): Promise<void> => {
        for (let i = 0; i < 5_000; i++) await writer.write(noisyObject(i));
        await writer.commit();
      };
      await assert.rejects(writeAll(), (err: unknown) => {
        assert.ok(err instanceof SnapshotWriteError, String(err));
        assert.equal(err.code, 'ENOSPC');
        assert.match(err.message, /^cannot write the snapshot .*inventory-full-20260301T100000.000Z-a1b2c3d4\.ndjson.*: ENOSPC/);
        return true;
      });
      // Every later call fails the same way rather than hanging.
      await assert.rejects(writer.write(noisyObject(0)), SnapshotWriteError);
      await writer.abort();
      assert.deepEqual(await readdir(dir), []);
    });

    it(`removes the temporary file when commit fails (gzip ${gzip})`, { timeout: 10_000 }, async () => {
      const dir = await scratch.fresh();
      const writer = await SnapshotFileWriter.open({ dir, clusterId: 'full', startedAt, runId: RUN, format: 'json', gzip, openFile: diskFull });
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
    const writer = await SnapshotFileWriter.open({ dir, clusterId: 'gone', startedAt, runId: RUN, format: 'ndjson', gzip: true });
    await writer.write(objects[0] as KubeObject);
    await rm(dir, { recursive: true });
    // The open file still takes writes; the rename into the vanished directory is what fails.
    await assert.rejects(writer.commit(), { name: 'SnapshotWriteError', code: 'ENOENT', message: /^cannot write the snapshot .*inventory-gone-20260301T100000.000Z-a1b2c3d4\.ndjson\.gz: ENOENT/ });
    assert.deepEqual(await readdir(parent), []);
  });

  it('never replaces a snapshot of the same name: the second commit fails and the first file stays whole', async () => {
    const dir = await scratch.fresh();
    const first = await SnapshotFileWriter.open({ dir, clusterId: 'prod', startedAt, runId: RUN, format: 'json', gzip: false });
    const second = await SnapshotFileWriter.open({ dir, clusterId: 'prod', startedAt, runId: RUN, format: 'json', gzip: false });
    await first.write(objects[0] as KubeObject);
    await second.write(objects[1] as KubeObject);
    const committed = await first.commit();
    await assert.rejects(second.commit(), { name: 'SnapshotWriteError', code: 'EEXIST' });
    assert.deepEqual(JSON.parse(await readFile(committed.path, 'utf8')), { objects: [objects[0]] });
    assert.deepEqual(await readdir(dir), [basename(committed.path)], 'the loser leaves no temporary file');
  });
});

describe('pruneSnapshots', () => {
  const now = new Date('2026-03-10T12:00:00Z');
  const hour = 3_600_000;
  const stampAgo = (hoursAgo: number): string => fileTimestamp(new Date(now.getTime() - hoursAgo * hour));
  /** Run stems of cluster prod, newest first: 1 h, 2 h, … old. */
  const prodStems = [1, 2, 3, 26, 50].map((hoursAgo, i) => `inventory-prod-${stampAgo(hoursAgo)}-0000000${i}`);
  const DIR_SUMMARY = JSON.stringify({ kind: 'InventoryRunSummary', sink: { kind: 'dir', delivered: true } });
  const endpointSummary = (delivered: boolean): string => JSON.stringify({ kind: 'InventoryRunSummary', sink: { kind: 'endpoint', delivered } });
  const policy = (keepLast: number, maxAgeMs: number, maxUndelivered = 0) => ({ keepLast, maxAgeMs, maxUndelivered });

  /** Writes `files` (name → content; a summary gets DIR_SUMMARY unless given). */
  async function write(dir: string, files: Readonly<Record<string, string>>): Promise<void> {
    for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  }

  const unrelated: Readonly<Record<string, string>> = {
    // other clusters, one of them sharing the prefix
    [`inventory-prod-eu-${stampAgo(50)}-aaaaaaaa.ndjson.gz`]: 'x',
    [`inventory-prod-eu-${stampAgo(50)}-aaaaaaaa.summary.json`]: DIR_SUMMARY,
    [`inventory-staging-${stampAgo(50)}-bbbbbbbb.ndjson.gz`]: 'x',
    // not ours
    'notes.txt': 'x',
    'inventory-prod-latest.ndjson.gz': 'x',
    [`inventory-prod-${stampAgo(50)}-cccccccc.ndjson.gz.bak`]: 'x',
    [`backup-inventory-prod-${stampAgo(50)}-cccccccc.ndjson.gz`]: 'x',
  };
  const unrelatedNames = Object.keys(unrelated).sort();

  async function layout(): Promise<string> {
    const dir = await scratch.fresh();
    await write(dir, unrelated);
    for (const [i, stem] of prodStems.entries()) {
      await write(dir, { [`${stem}.${i % 2 === 0 ? 'ndjson.gz' : 'json'}`]: 'x', [`${stem}.summary.json`]: DIR_SUMMARY });
    }
    return dir;
  }
  const runFiles = (i: number): string[] => [`${prodStems[i]}.${i % 2 === 0 ? 'ndjson.gz' : 'json'}`, `${prodStems[i]}.summary.json`];

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
      const result = await pruneSnapshots(dir, 'prod', policy(c.keepLast, c.maxAgeMs), now);
      const expectedDeleted = [0, 1, 2, 3, 4].filter((i) => !c.kept.includes(i)).flatMap(runFiles);
      assert.deepEqual([...result.deleted].sort(), expectedDeleted.sort());
      const left = await readdir(dir);
      assert.deepEqual(left.filter((n) => !unrelatedNames.includes(n)).sort(), c.kept.flatMap(runFiles).sort());
      assert.deepEqual(left.filter((n) => unrelatedNames.includes(n)).sort(), unrelatedNames);
    });
  }

  it('prunes another cluster without touching prod', async () => {
    const dir = await layout();
    const result = await pruneSnapshots(dir, 'prod-eu', policy(0, hour), now);
    assert.deepEqual(result.deleted.sort(), [`inventory-prod-eu-${stampAgo(50)}-aaaaaaaa.ndjson.gz`, `inventory-prod-eu-${stampAgo(50)}-aaaaaaaa.summary.json`]);
    assert.equal((await readdir(dir)).filter((n) => n.startsWith('inventory-prod-') && !n.startsWith('inventory-prod-eu-') && !n.includes('latest') && !n.endsWith('.bak')).length, 10);
  });

  it('counts a run with only a summary (the endpoint got its snapshot) and prunes it like any other', async () => {
    const dir = await scratch.fresh();
    // Runs 0, 2, 3 and 4 were uploaded: only their summaries are left. Run 1 is a directory run.
    const runs = prodStems.map((stem, i) => (i === 1 ? [`${stem}.ndjson.gz`, `${stem}.summary.json`] : [`${stem}.summary.json`]));
    for (const [i, names] of runs.entries()) {
      await write(dir, Object.fromEntries(names.map((name) => [name, name.endsWith('.summary.json') ? (i === 1 ? DIR_SUMMARY : endpointSummary(true)) : 'x'])));
    }
    const notOurs = [`${prodStems[4]}.summary.json.bak`, `${prodStems[4]}.summary.txt`, `${prodStems[4]}.summary.json~`, `old-${prodStems[4]}.summary.json`, 'inventory-prod-latest.summary.json'];
    await write(dir, Object.fromEntries(notOurs.map((name) => [name, 'x'])));

    const byCount = await pruneSnapshots(dir, 'prod', policy(3, 0), now);
    assert.deepEqual(byCount.deleted, [...runs[3]!, ...runs[4]!]);
    const byAge = await pruneSnapshots(dir, 'prod', policy(0, 90 * 60_000), now);
    assert.deepEqual(byAge.deleted, [...runs[1]!, ...runs[2]!]);
    assert.deepEqual((await readdir(dir)).sort(), [...runs[0]!, ...notOurs].sort());
  });

  it('never deletes a snapshot the endpoint did not get by keepLast or maxAge, however old', async () => {
    const dir = await scratch.fresh();
    // Endpoint runs, newest first: 0 delivered, 1 kept (undelivered), 2 delivered, 3 kept, 4 kept.
    const undelivered = new Set([1, 3, 4]);
    for (const [i, stem] of prodStems.entries()) {
      await write(dir, undelivered.has(i)
        ? { [`${stem}.ndjson.gz`]: 'x', [`${stem}.summary.json`]: endpointSummary(false) }
        : { [`${stem}.summary.json`]: endpointSummary(true) });
    }
    const result = await pruneSnapshots(dir, 'prod', policy(1, hour / 2), now);
    assert.deepEqual(result.deleted.sort(), [`${prodStems[0]}.summary.json`, `${prodStems[2]}.summary.json`].sort(), 'only delivered runs go');
    assert.equal(result.undeliveredKept, 3);
    assert.deepEqual(result.undeliveredDeleted, []);
    for (const i of undelivered) assert.ok((await readdir(dir)).includes(`${prodStems[i]}.ndjson.gz`));
  });

  it('keeps at most maxUndelivered undelivered snapshots, deleting the oldest and saying which', async () => {
    const dir = await scratch.fresh();
    for (const stem of prodStems) await write(dir, { [`${stem}.ndjson.gz`]: 'x', [`${stem}.summary.json`]: endpointSummary(false) });
    const result = await pruneSnapshots(dir, 'prod', policy(1, hour, 2), now);
    const gone = [2, 3, 4].flatMap((i) => [`${prodStems[i]}.ndjson.gz`, `${prodStems[i]}.summary.json`]);
    assert.deepEqual(result.undeliveredDeleted.sort(), gone.sort());
    assert.deepEqual(result.deleted.sort(), gone.sort());
    assert.equal(result.undeliveredKept, 2);
  });

  it('keeps a snapshot whose summary cannot be read: nobody can tell it was delivered', async () => {
    const dir = await scratch.fresh();
    await write(dir, { [`${prodStems[4]}.ndjson.gz`]: 'x', [`${prodStems[4]}.summary.json`]: '{"kind":"Inventory' });
    const result = await pruneSnapshots(dir, 'prod', policy(1, hour), now);
    assert.deepEqual(result.deleted, []);
    assert.equal(result.undeliveredKept, 1);
  });

  it('orders names of versions before 0.2 (whole seconds, no run part) by their time among the current ones', async () => {
    const dir = await scratch.fresh();
    const sameSecond = new Date('2026-03-10T11:00:00.000Z');
    const old = `inventory-prod-20260310T110000Z`; // 11:00:00, written by an older version
    const newer = `inventory-prod-${fileTimestamp(new Date(sameSecond.getTime() + 500))}-dddddddd`; // 11:00:00.500
    const oldest = `inventory-prod-20260310T100000Z`;
    for (const stem of [old, newer, oldest]) await write(dir, { [`${stem}.ndjson.gz`]: 'x', [`${stem}.summary.json`]: DIR_SUMMARY });
    const result = await pruneSnapshots(dir, 'prod', policy(1, 0), now);
    assert.deepEqual(result.deleted.sort(), [`${old}.ndjson.gz`, `${old}.summary.json`, `${oldest}.ndjson.gz`, `${oldest}.summary.json`].sort());
  });

  it('removes temporary files of crashed runs older than 6 h, but not fresh ones or other clusters\'', async () => {
    const dir = await scratch.fresh();
    const stale = `.${prodStems[0]}.ndjson.gz.0123abcd.tmp`;
    const staleOldStyle = '.inventory-prod-20260310T040000Z.ndjson.gz.tmp';
    const staleSummary = `.${prodStems[1]}.summary.json.89abcdef.tmp`;
    const fresh = `.${prodStems[2]}.ndjson.gz.0123abcd.tmp`;
    const justUnder = `.${prodStems[3]}.json.0123abcd.tmp`;
    const otherCluster = `.inventory-staging-${stampAgo(8)}-aaaaaaaa.ndjson.gz.0123abcd.tmp`;
    // cluster "prod-eu" shares the prefix "inventory-prod-" with cluster "prod"
    const prefixCluster = `.inventory-prod-eu-${stampAgo(8)}-aaaaaaaa.ndjson.gz.0123abcd.tmp`;
    const notOurs = '.cache.tmp';
    const notOursWithPrefix = '.inventory-prod-scratch.tmp';
    const ages: [string, number][] = [
      [stale, 7 * hour], [staleOldStyle, 7 * hour], [staleSummary, 7 * hour], [fresh, 1 * hour], [justUnder, 6 * hour - 60_000],
      [otherCluster, 7 * hour], [prefixCluster, 7 * hour], [notOurs, 100 * hour], [notOursWithPrefix, 100 * hour],
    ];
    for (const [name, age] of ages) {
      const path = join(dir, name);
      await writeFile(path, 'partial');
      const mtime = new Date(now.getTime() - age);
      await utimes(path, mtime, mtime);
    }
    const result = await pruneSnapshots(dir, 'prod', policy(1, 0), now);
    assert.deepEqual(result.deleted.sort(), [stale, staleOldStyle, staleSummary].sort());
    assert.deepEqual((await readdir(dir)).sort(), [notOurs, notOursWithPrefix, otherCluster, prefixCluster, justUnder, fresh].sort());
  });

  it('returns nothing for a report directory that does not exist', async () => {
    assert.deepEqual(await pruneSnapshots(join(scratch.root, 'no-such-dir'), 'prod', policy(1, hour), now), { deleted: [], undeliveredKept: 0, undeliveredDeleted: [] });
  });
});
