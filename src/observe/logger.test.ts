import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createLogger, formatTextLine, TextDestination } from './logger.ts';

/** A destination that keeps what it is given. */
function capture(): { write(line: string): void; lines: string[] } {
  const lines: string[] = [];
  return { lines, write: (line: string) => void lines.push(line) };
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe('JSON format', () => {
  test('a line carries ISO time, the level label, the name crowsnest, the message and fields', () => {
    const out = capture();
    createLogger({ destination: out }).info({ namespace: 'default' }, 'reconciled');
    assert.equal(out.lines.length, 1);
    const record = JSON.parse(out.lines[0] ?? '') as Record<string, unknown>;
    assert.match(String(record['time']), ISO_TIME);
    assert.equal(record['level'], 'info');
    assert.equal(record['name'], 'crowsnest');
    assert.equal(record['msg'], 'reconciled');
    assert.equal(record['namespace'], 'default');
  });

  test('lines below the configured level are not written', () => {
    const out = capture();
    const logger = createLogger({ level: 'warn', destination: out });
    logger.info('hidden');
    logger.warn('shown');
    assert.deepEqual(out.lines.map((line) => JSON.parse(line).msg), ['shown']);
  });

  test('trace and debug lines are written at level trace', () => {
    const out = capture();
    const logger = createLogger({ level: 'trace', destination: out });
    logger.trace('t');
    logger.debug('d');
    assert.deepEqual(out.lines.map((line) => JSON.parse(line).level), ['trace', 'debug']);
  });
});

describe('text format', () => {
  test('a line is time, padded level, message, then key=value fields', () => {
    const out = capture();
    createLogger({ format: 'text', destination: out }).child({ controller: 'logaccess' }).info({ key: 'ns/app', queued: 3 }, 'synced');
    assert.equal(out.lines.length, 1);
    const line = out.lines[0] ?? '';
    assert.match(line, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z INFO {2}synced controller=logaccess key=ns\/app queued=3\n$/);
  });

  test('pid, hostname and name, the same on every line, are left out', () => {
    const out = capture();
    createLogger({ format: 'text', destination: out }).warn('careful');
    assert.doesNotMatch(out.lines[0] ?? '', /pid=|hostname=|name=/);
  });

  const rendering: readonly [string, Record<string, unknown>, string][] = [
    ['a string with spaces is quoted', { reason: 'not found' }, 'reason="not found"'],
    ['a string with a quote is escaped', { says: 'a"b' }, 'says="a\\"b"'],
    ['an empty string is quoted', { empty: '' }, 'empty=""'],
    ['an object is compact JSON', { labels: { app: 'web' } }, 'labels={"app":"web"}'],
    ['booleans and null are bare', { ok: true, gone: null }, 'ok=true gone=null'],
    ['control characters JSON leaves raw are escaped, even bare', { proc: 'a\u001b[31mb', body: 'x \u009by' }, 'proc=a\\e[31mb body="x \\x9by"'],
  ];
  for (const [what, fields, expected] of rendering) {
    test(what, () => {
      const json = JSON.stringify({ level: 'info', time: '2026-11-23T12:00:00.000Z', msg: 'm', ...fields });
      assert.equal(formatTextLine(json, { includeStacks: false }), `2026-11-23T12:00:00.000Z INFO  m ${expected}`);
    });
  }

  test('the level column is five wide, so messages line up', () => {
    const out = capture();
    const logger = createLogger({ level: 'debug', format: 'text', destination: out });
    logger.debug('a');
    logger.info('b');
    logger.warn('c');
    logger.error('d');
    assert.deepEqual(
      out.lines.map((line) => line.slice(25)),
      ['DEBUG a\n', 'INFO  b\n', 'WARN  c\n', 'ERROR d\n'],
    );
  });

  test('an error shows its message; its stack only at debug level', () => {
    const atInfo = capture();
    createLogger({ format: 'text', destination: atInfo }).error({ err: new Error('boom') }, 'sync failed');
    assert.match(atInfo.lines[0] ?? '', / ERROR sync failed err=boom\n$/);

    const atDebug = capture();
    createLogger({ level: 'debug', format: 'text', destination: atDebug }).error({ err: new Error('boom') }, 'sync failed');
    const [first, second] = (atDebug.lines[0] ?? '').split('\n');
    assert.match(first ?? '', / ERROR sync failed err=boom$/);
    assert.match(second ?? '', /^ {4}Error: boom$/);
  });

  test('input that is not a JSON object passes through unchanged', () => {
    assert.equal(formatTextLine('plain words', { includeStacks: false }), 'plain words');
    assert.equal(formatTextLine('[1,2]', { includeStacks: false }), '[1,2]');
  });

  test('the destination renders complete lines even when a writer splits them', () => {
    const out = capture();
    const destination = new TextDestination(out, { includeStacks: false });
    const json = JSON.stringify({ level: 'info', time: '2026-11-23T12:00:00.000Z', msg: 'split' });
    destination.write(json.slice(0, 10));
    assert.deepEqual(out.lines, []);
    destination.write(`${json.slice(10)}\n${json}\n`);
    assert.deepEqual(out.lines, ['2026-11-23T12:00:00.000Z INFO  split\n', '2026-11-23T12:00:00.000Z INFO  split\n']);
  });
});
