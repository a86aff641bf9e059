import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { KubeObject } from '../kube/objects/resources.ts';
import { jsonErrorOffset, layoutFromName, readSnapshotObjects, SnapshotFileError } from './snapshot-file.ts';

const objects: KubeObject[] = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } },
  { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'shop' }, spec: { replicas: 2 } } as KubeObject,
  { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg', namespace: 'shop' }, data: { note: 'línea ✓ 日本' } } as KubeObject,
];
const ndjson = `${objects.map((obj) => JSON.stringify(obj)).join('\n')}\n`;
const pretty = JSON.stringify({ collectedAt: '2024-01-01T00:00:00Z', objects }, null, 2);
const oneLine = JSON.stringify({ objects });

let dir: string;
before(async () => { dir = await mkdtemp(join(tmpdir(), 'crowsnest-snapshot-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

async function file(name: string, content: string | Buffer): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
}

async function readAll(path: string): Promise<KubeObject[]> {
  const out: KubeObject[] = [];
  for await (const obj of readSnapshotObjects(path)) out.push(obj);
  return out;
}

async function rejection(path: string): Promise<SnapshotFileError> {
  try {
    await readAll(path);
  } catch (err) {
    assert.ok(err instanceof SnapshotFileError, String(err));
    return err;
  }
  assert.fail(`${path} was read without error`);
}

describe('readSnapshotObjects: formats', () => {
  const cases: { name: string; file: string; content: () => string | Buffer }[] = [
    { name: 'NDJSON', file: 'a.ndjson', content: () => ndjson },
    { name: 'gzip NDJSON', file: 'a.ndjson.gz', content: () => gzipSync(ndjson) },
    { name: 'JSON document', file: 'a.json', content: () => pretty },
    { name: 'gzip JSON document', file: 'a.json.gz', content: () => gzipSync(pretty) },
    { name: 'gzip NDJSON without .gz in the name (magic bytes win)', file: 'b.ndjson', content: () => gzipSync(ndjson) },
    { name: 'plain NDJSON named .gz', file: 'c.ndjson.gz', content: () => ndjson },
    { name: 'NDJSON with CRLF, a BOM and blank lines', file: 'd.ndjson', content: () => `\uFEFF${ndjson.replaceAll('\n', '\r\n\r\n')}` },
    { name: 'NDJSON without a trailing newline', file: 'e.jsonl', content: () => ndjson.trimEnd() },
    { name: 'unnamed NDJSON, sniffed', file: 'snapshot', content: () => gzipSync(ndjson) },
    { name: 'unnamed pretty JSON document, sniffed', file: 'snapshot.out', content: () => pretty },
    { name: 'unnamed one-line JSON document, sniffed', file: 'snapshot.txt', content: () => oneLine },
    { name: 'a kubectl List (items)', file: 'list.json', content: () => JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }) },
  ];
  for (const { name, file: fileName, content } of cases) {
    it(`reads ${name}`, async () => {
      assert.deepEqual(await readAll(await file(fileName, content())), objects);
    });
  }

  it('reads a large gzip NDJSON file line by line, split across many chunks', async () => {
    const many = Array.from({ length: 5000 }, (_, i) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `cm-${i}` }, data: { v: 'x'.repeat(i % 300) } }));
    const path = await file('many.ndjson.gz', gzipSync(many.map((obj) => JSON.stringify(obj)).join('\n')));
    assert.deepEqual(await readAll(path), many);
  });

  it('stops reading when the consumer stops', async () => {
    const path = await file('early.ndjson', ndjson);
    for await (const obj of readSnapshotObjects(path)) {
      assert.equal(obj.kind, 'Namespace');
      break;
    }
  });

  it('reads an empty .ndjson file as no objects', async () => {
    assert.deepEqual(await readAll(await file('empty.ndjson', '')), []);
    assert.deepEqual(await readAll(await file('empty.ndjson.gz', gzipSync(''))), []);
  });

  it('takes the layout from the name before any .gz', () => {
    assert.equal(layoutFromName('/r/inventory.ndjson.gz'), 'ndjson');
    assert.equal(layoutFromName('INVENTORY.JSON'), 'json');
    assert.equal(layoutFromName('x.json.gz'), 'json');
    assert.equal(layoutFromName('x.gz'), undefined);
  });
});

describe('readSnapshotObjects: errors name the file and line', () => {
  const cases: { name: string; file: string; content: () => string | Buffer; line?: number; message: RegExp }[] = [
    { name: 'invalid JSON on an NDJSON line', file: 'bad.ndjson', content: () => `${JSON.stringify(objects[0])}\n{"kind": oops}\n`, line: 2, message: /invalid JSON at column 10: Unexpected token 'o'$/ },
    { name: 'a truncated NDJSON line', file: 'cut.ndjson', content: () => `${JSON.stringify(objects[0])}\n{"kind": "Po`, line: 2, message: /invalid JSON at column 13: Unterminated string/ },
    { name: 'invalid JSON in gzip NDJSON', file: 'bad.ndjson.gz', content: () => gzipSync(`${ndjson}\n[1,2]\n`), line: 5, message: /expected a JSON object, got an array/ },
    { name: 'a non-object NDJSON line', file: 'num.ndjson', content: () => `${JSON.stringify(objects[0])}\n42\n`, line: 2, message: /got a number/ },
    { name: 'invalid JSON in a pretty document', file: 'bad.json', content: () => pretty.replace('"replicas": 2', '"replicas": 2,,'), line: pretty.split('\n').findIndex((l) => l.includes('"replicas"')) + 1, message: /invalid JSON at column \d+: /, },
    { name: 'a bare word in a pretty document', file: 'word.json', content: () => '{\n  "objects": [\n    oops\n  ]\n}\n', line: 3, message: /invalid JSON at column 5: Unexpected token 'o'$/ },
    { name: 'a document without objects', file: 'nothing.json', content: () => '{"items": 3}', message: /expected a JSON object with an "objects" array/ },
    { name: 'a non-object in objects', file: 'item.json', content: () => '{"objects": [{"kind": "Pod"}, "x"]}', message: /objects\[1\] is not a JSON object/ },
    { name: 'an empty .json file', file: 'empty.json', content: () => '', message: /empty file/ },
    { name: 'truncated gzip', file: 'cut.ndjson.gz', content: () => gzipSync(ndjson.repeat(50)).subarray(0, 60), message: /cannot read or decompress/ },
  ];
  for (const { name, file: fileName, content, line, message } of cases) {
    it(name, async () => {
      const path = await file(fileName, content());
      const err = await rejection(path);
      assert.match(err.message, message);
      assert.equal(err.path, path);
      assert.equal(err.line, line);
      assert.ok(err.message.startsWith(line === undefined ? `${path}: ` : `${path}:${line}: `), err.message);
    });
  }

  it('a missing file', async () => {
    const path = join(dir, 'absent.ndjson');
    const err = await rejection(path);
    assert.match(err.message, /cannot read: ENOENT/);
    assert.ok(err.message.startsWith(path));
  });

  it('a directory', async () => {
    const err = await rejection(dir);
    assert.match(err.message, /cannot read: EISDIR/);
  });
});

describe('jsonErrorOffset', () => {
  const cases: { text: string; offset: number | undefined }[] = [
    { text: '{"a": 1}', offset: undefined },
    { text: '{"a": 1,}', offset: 8 },
    { text: '{"a" 1}', offset: 5 },
    { text: '[1, 2', offset: 5 },
    { text: '[1 2]', offset: 3 },
    { text: '{"a": tru}', offset: 6 },
    { text: '{"a": "x\\q"}', offset: 8 },
    { text: '{"a": "\\u12G4"}', offset: 7 },
    { text: '{"a": "tab\there"}', offset: 10 },
    { text: '{"a": -01}', offset: 8 },
    { text: '{"a": [true, false, null, -1.5e3, "\\u00e9\\n"]} x', offset: 47 },
    { text: '', offset: 0 },
  ];
  for (const { text, offset } of cases) {
    it(`${JSON.stringify(text)} fails at ${offset}`, () => {
      assert.equal(jsonErrorOffset(text), offset);
      assert.equal(offset === undefined, (() => { try { JSON.parse(text); return true; } catch { return false; } })());
    });
  }
});
