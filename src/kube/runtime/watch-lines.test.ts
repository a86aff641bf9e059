import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type RawWatchEvent, WatchLineDecoder } from './watch-lines.ts';

const encoder = new TextEncoder();

function decode(chunks: readonly Uint8Array[]): { events: RawWatchEvent[]; malformed: string[]; count: number } {
  const events: RawWatchEvent[] = [];
  const malformed: string[] = [];
  const decoder = new WatchLineDecoder({ onEvent: (e) => events.push(e), onMalformed: (line) => malformed.push(line) });
  for (const chunk of chunks) decoder.push(chunk);
  decoder.end();
  return { events, malformed, count: decoder.malformed };
}

const added = { type: 'ADDED', object: { kind: 'ConfigMap', metadata: { name: 'grüße-✓', resourceVersion: '7' } } };
const bookmark = { type: 'BOOKMARK', object: { metadata: { resourceVersion: '9', annotations: { 'k8s.io/initial-events-end': 'true' } } } };
const stream = encoder.encode(`${JSON.stringify(added)}\n${JSON.stringify(bookmark)}\n`);

describe('WatchLineDecoder', () => {
  it('decodes every event whatever byte the chunks are cut at, multi-byte characters included', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const { events, count } = decode([stream.subarray(0, cut), stream.subarray(cut)]);
      assert.deepEqual(events, [added, bookmark], `cut at byte ${cut}`);
      assert.equal(count, 0, `cut at byte ${cut}`);
    }
  });

  it('decodes a stream delivered one byte at a time', () => {
    const bytes = Array.from(stream, (b) => Uint8Array.of(b));
    assert.deepEqual(decode(bytes).events, [added, bookmark]);
  });

  it('counts and reports lines that are not watch events, and still delivers the events around them', () => {
    const text = [
      JSON.stringify(added),
      '<html>502 Bad Gateway</html>',
      '{"type": 1, "object": {}}',
      '["ADDED"]',
      'null',
      '{"object": {}}',
      JSON.stringify(bookmark),
    ].join('\n');
    const { events, malformed, count } = decode([encoder.encode(`${text}\n`)]);
    assert.deepEqual(events, [added, bookmark]);
    assert.equal(count, 5);
    assert.deepEqual(malformed, ['<html>502 Bad Gateway</html>', '{"type": 1, "object": {}}', '["ADDED"]', 'null', '{"object": {}}']);
  });

  it('ignores blank lines (keep-alive newlines are not malformed)', () => {
    const { events, count } = decode([encoder.encode(`\n\r\n${JSON.stringify(added)}\r\n\n`)]);
    assert.deepEqual(events, [added]);
    assert.equal(count, 0);
  });

  it('decodes a last event without its newline at the end, and counts a cut-off last line as malformed', () => {
    assert.deepEqual(decode([encoder.encode(JSON.stringify(added))]).events, [added]);
    const cut = decode([encoder.encode(`${JSON.stringify(added)}\n{"type":"MODIFIED","obj`)]);
    assert.deepEqual(cut.events, [added]);
    assert.deepEqual(cut.malformed, ['{"type":"MODIFIED","obj']);
  });

  it('keeps only the first 200 characters of a malformed line for the report', () => {
    const { malformed } = decode([encoder.encode(`${'x'.repeat(1_000)}\n`)]);
    assert.equal(malformed[0]?.length, 200);
  });
});
