import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { useScratchDir } from '../../../test/helpers/scratch.ts';
import { criRecord, FakeContainerLog } from './fake-pod-logs.ts';
import { cursorAtEnd, kubeletRotationTime, readContainer, type Cursor } from './tail.ts';

const scratch = useScratchDir('guard-tail-');

async function container(): Promise<FakeContainerLog> {
  return await new FakeContainerLog(await scratch.fresh(), 'shop', 'web-0', 'uid-0', 'app').create();
}

/** Reads everything from `cursor`, returning the lines and the cursor after them. */
async function readAll(log: FakeContainerLog, cursor: Cursor, budgetBytes = 1 << 30): Promise<{ lines: string[]; cursor: Cursor; more: boolean; malformed: number; lostFiles: number }> {
  const lines: string[] = [];
  const result = await readContainer(log.dir, cursor, { budgetBytes, maxLineBytes: 1024, nowMs: Date.now() }, (line) => lines.push(line.toString()));
  return { lines, cursor: result.cursor, more: result.more, malformed: result.malformed, lostFiles: result.lostFiles };
}

const numbers = (lines: readonly string[]): number[] => lines.map((line) => Number(/(\d+)/.exec(line)![1]));
const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

describe('tailing a container log', () => {
  it('reads whole lines, and the next read resumes after them (the unfinished last record waits)', async () => {
    const log = await container();
    await log.lines(3);
    await log.write(criRecord('line 3').slice(0, 20));
    const first = await readAll(log, { offset: 0 });
    assert.deepEqual(numbers(first.lines), [0, 1, 2]);
    await log.write(criRecord('line 3').slice(20));
    await log.lines(2, { from: 4 });
    const second = await readAll(log, first.cursor);
    assert.equal(second.lines.length, 3);
    assert.equal(second.lines[1], 'line 4');
  });

  it('joins partial records into one line, also when the cursor is persisted between them', async () => {
    const log = await container();
    await log.write(criRecord('hello ', { partial: true }), criRecord('oops', { stream: 'stderr' }));
    const first = await readAll(log, { offset: 0 });
    assert.deepEqual(first.lines, ['oops']);
    assert.ok(first.cursor.partial?.stdout, 'the unfinished line travels in the cursor');
    await log.write(criRecord('big ', { partial: true }), criRecord('world'));
    const second = await readAll(log, JSON.parse(JSON.stringify(first.cursor)) as Cursor);
    assert.deepEqual(second.lines, ['hello big world']);
    assert.equal(second.cursor.partial, undefined);
  });

  it('finishes a rotated file before the new one, never re-reading what it read', async () => {
    const log = await container();
    await log.lines(5);
    const first = await readAll(log, { offset: 0 });
    await log.lines(5, { from: 5 });
    await log.rotate();
    await log.lines(5, { from: 10 });
    const second = await readAll(log, first.cursor);
    assert.deepEqual(numbers(second.lines), range(5, 15));
    assert.equal(second.cursor.file?.name, '0.log');
  });

  it('finds its file after the kubelet rotated and compressed it, and goes on from the same offset', async () => {
    const log = await container();
    await log.lines(4);
    const first = await readAll(log, { offset: 0 });
    await log.lines(4, { from: 4 });
    const rotated = await log.rotate();
    await log.lines(4, { from: 8 });
    await log.rotate();
    await log.compress(rotated);
    await log.lines(4, { from: 12 });
    const second = await readAll(log, first.cursor);
    assert.deepEqual(numbers(second.lines), range(4, 16));
    assert.equal(second.lostFiles, 0);
  });

  it('carries a partial line across a rotation', async () => {
    const log = await container();
    await log.write(criRecord('first half ', { partial: true }));
    const first = await readAll(log, { offset: 0 });
    await log.rotate();
    await log.write(criRecord('second half'));
    assert.deepEqual((await readAll(log, first.cursor)).lines, ['first half second half']);
  });

  it('moves on to the next run of the container, ending a line its previous run left unfinished', async () => {
    const log = await container();
    await log.lines(2);
    await log.write(criRecord('cut short', { partial: true }));
    const first = await readAll(log, { offset: 0 });
    await log.restart();
    await log.lines(2, { from: 2 });
    const second = await readAll(log, first.cursor);
    assert.deepEqual(second.lines, ['cut short', 'line 2', 'line 3']);
    assert.equal(second.cursor.file?.name, '1.log');
  });

  it('stops at its budget and resumes there: nothing lost, nothing twice', async () => {
    const log = await container();
    await log.lines(1_000);
    await log.rotate();
    await log.lines(1_000, { from: 1_000 });
    const seen: number[] = [];
    let cursor: Cursor = { offset: 0 };
    let reads = 0;
    for (;;) {
      const read = await readAll(log, cursor, 4_096);
      seen.push(...numbers(read.lines));
      cursor = read.cursor;
      reads++;
      if (!read.more) break;
    }
    assert.deepEqual(seen, range(0, 2_000));
    assert.ok(reads > 10, `${reads} reads`);
  });

  it('counts what is not a CRI record as malformed and goes on', async () => {
    const log = await container();
    await log.write('garbage without a time\n', criRecord('good'));
    const read = await readAll(log, { offset: 0 });
    assert.deepEqual(read.lines, ['good']);
    assert.equal(read.malformed, 1);
  });

  it('reports a file deleted before it was finished as lost, and goes on with the files after it', async () => {
    const log = await container();
    await log.lines(2);
    const first = await readAll(log, { ...(await cursorAtEnd(log.dir, Date.now() - 1_000)), offset: 0 });
    await log.lines(2, { from: 2 });
    const rotated = await log.rotate();
    await log.lines(2, { from: 4 });
    await log.remove(rotated);
    const second = await readAll(log, { ...first.cursor, movedAtMs: Date.UTC(2026, 11, 7, 3, 0, 0) });
    assert.equal(second.lostFiles, 1);
    assert.deepEqual(numbers(second.lines), [4, 5]);
  });

  it('starts a new watch at the end of what the container logged so far', async () => {
    const log = await container();
    await log.lines(3);
    await log.write(criRecord('being written').slice(0, 10));
    const cursor = await cursorAtEnd(log.dir, Date.now());
    await log.write(criRecord('being written').slice(10));
    await log.lines(1, { from: 9 });
    assert.deepEqual((await readAll(log, cursor)).lines, ['being written', 'line 9']);
  });

  it('names rotation times as the kubelet does', () => {
    assert.equal(kubeletRotationTime(Date.UTC(2026, 11, 7, 3, 4, 5, 678)), '20261207-030405');
  });
});
