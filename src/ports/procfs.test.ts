import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readFilesInBackground, type BackgroundReads, type FileRead } from './procfs.ts';

/** Every result, by index; fails if one comes twice or is missing. */
async function inOrder(reads: BackgroundReads): Promise<FileRead[]> {
  const results: FileRead[] = [];
  for await (const { index, read } of reads) {
    assert.equal(results[index], undefined, `file ${index} came twice`);
    results[index] = read;
  }
  return results;
}

/** A result as plain data: the text, or the error's code. */
function outcome(read: FileRead): string {
  return 'text' in read ? `text:${read.text}` : `error:${(read.error as { code?: string }).code}`;
}

describe('reading files in the background', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'crowsnest-procfs-'));
    for (let i = 0; i < 8; i++) writeFileSync(join(dir, `table-${i}`), `contents of ${i}\n`.repeat(i + 1));
    mkdirSync(join(dir, 'a-directory'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const paths = (): string[] => [
    ...Array.from({ length: 8 }, (_, i) => join(dir, `table-${i}`)),
    join(dir, 'missing'),
    join(dir, 'a-directory'),
  ];
  const expected = (): string[] => [
    ...Array.from({ length: 8 }, (_, i) => `text:${`contents of ${i}\n`.repeat(i + 1)}`),
    'error:ENOENT',
    'error:EISDIR',
  ];

  for (const thread of [true, false]) {
    test(`${thread ? 'with' : 'without'} a reader thread: one result per path, in order, errors with their codes`, async () => {
      const reads = readFilesInBackground(paths(), { thread });
      assert.deepEqual((await inOrder(reads)).map(outcome), expected());
    });
  }

  test('the caller can work before it collects, and every file is read once it does', async () => {
    const reads = readFilesInBackground(paths());
    // Gives the thread time to start and claim files, so both threads read some.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual((await inOrder(reads)).map(outcome), expected());
  });

  test('a read error carries its message as Node wrote it', async () => {
    const [read] = await inOrder(readFilesInBackground([join(dir, 'missing')]));
    assert.ok(read !== undefined && 'error' in read);
    assert.match(read.error.message, /^ENOENT: no such file or directory, open '.*missing'$/);
  });

  test('no paths, no thread, no results', async () => {
    assert.deepEqual(await inOrder(readFilesInBackground([])), []);
  });
});
