import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LineJoiner, parseCriRecord } from './cri.ts';

const record = (text: string) => parseCriRecord(Buffer.from(text));

describe('CRI log records', () => {
  it('reads time, stream, tag and text as containerd writes them', () => {
    const parsed = record('2026-12-07T03:14:42.123456789Z stdout F hello world');
    assert.equal(parsed?.stream, 'stdout');
    assert.equal(parsed?.partial, false);
    assert.equal(parsed?.text.toString(), 'hello world');
    assert.equal(record('2026-12-07T03:14:42.1+01:00 stderr P part')?.partial, true);
  });

  it('keeps spaces inside the text and accepts an empty text, with or without the space after the tag', () => {
    assert.equal(record('2026-12-07T03:14:42.123456789Z stdout F  two  spaces ')?.text.toString(), ' two  spaces ');
    assert.equal(record('2026-12-07T03:14:42.123456789Z stdout F ')?.text.length, 0);
    assert.equal(record('2026-12-07T03:14:42.123456789Z stdout F')?.text.length, 0);
  });

  it('accepts further tags after a colon (the format allows them)', () => {
    assert.equal(record('2026-12-07T03:14:42Z stdout F:x text')?.text.toString(), 'text');
  });

  it('refuses what is not a record: a docker JSON line, an unknown stream or tag, a short time', () => {
    for (const line of ['{"log":"x\\n","stream":"stdout"}', '2026-12-07T03:14:42Z stdin F x', '2026-12-07T03:14:42Z stdout X x', '2026-12-07T03:14:42Z stdout FF x', 'short stdout F x', '']) {
      assert.equal(record(line), undefined, line);
    }
  });
});

describe('joining partial lines', () => {
  const push = (joiner: LineJoiner, line: string) => joiner.push(record(line)!)?.toString();

  it('joins P records up to the next F of the same stream into one line', () => {
    const joiner = new LineJoiner(1024);
    assert.equal(push(joiner, '2026-12-07T03:14:42Z stdout P aaa'), undefined);
    assert.equal(push(joiner, '2026-12-07T03:14:42Z stdout P bbb'), undefined);
    assert.equal(joiner.holding, true);
    assert.equal(push(joiner, '2026-12-07T03:14:42Z stdout F ccc'), 'aaabbbccc');
    assert.equal(joiner.holding, false);
  });

  it('does not end a partial stdout line with a stderr record', () => {
    const joiner = new LineJoiner(1024);
    push(joiner, '2026-12-07T03:14:42Z stdout P out-');
    assert.equal(push(joiner, '2026-12-07T03:14:42Z stderr F err'), 'err');
    assert.equal(push(joiner, '2026-12-07T03:14:42Z stdout F end'), 'out-end');
  });

  it('keeps at most maxLineBytes of a long line', () => {
    const joiner = new LineJoiner(5);
    push(joiner, '2026-12-07T03:14:42Z stdout P abc');
    push(joiner, '2026-12-07T03:14:42Z stdout P def');
    assert.equal(push(joiner, '2026-12-07T03:14:42Z stdout F ghi'), 'abcde');
    assert.equal(push(joiner, '2026-12-07T03:14:42Z stdout F 123456789'), '12345');
  });

  it('saves and restores unfinished lines (they travel in a cursor), and flushes them as lines', () => {
    const first = new LineJoiner(1024);
    push(first, '2026-12-07T03:14:42Z stdout P abc');
    push(first, '2026-12-07T03:14:42Z stderr P xyz');
    const second = new LineJoiner(1024);
    second.restore(first.save());
    assert.equal(push(second, '2026-12-07T03:14:42Z stdout F def'), 'abcdef');
    assert.deepEqual(second.flush().map(String), ['xyz']);
    assert.equal(second.holding, false);
  });
});
