import assert from 'node:assert/strict';
import { describe, it, test } from 'node:test';
import { parseByteSize, parseDuration, parseHttpsUrl, parseList } from './flag-values.ts';

describe('parseDuration', () => {
  const valid: readonly [string, number][] = [
    ['0', 0],
    ['15s', 15_000],
    ['1m30s', 90_000],
    ['500ms', 500],
    ['1.5h', 5_400_000],
    ['.5s', 500],
    ['2h45m', 9_900_000],
    ['1500us', 1.5],
    ['1500µs', 1.5],
    ['2000000ns', 2],
    ['-2s', -2_000],
    ['+3m', 180_000],
    ['1s500ms', 1_500],
  ];
  for (const [input, expectedMs] of valid) {
    test(`"${input}" is ${expectedMs} ms`, () => {
      assert.equal(parseDuration(input), expectedMs);
    });
  }

  const invalid: readonly [string, RegExp][] = [
    ['', /invalid duration ""/],
    ['-', /invalid duration "-"/],
    ['15', /missing unit in duration "15"/],
    ['1m30', /missing unit in duration "1m30"/],
    ['15x', /unknown unit "x" in duration "15x"/],
    ['15 s', /unknown unit " s"/],
    ['s', /invalid duration "s"/],
    ['.s', /invalid duration ".s"/],
    ['1.5.5s', /missing unit/],
    [`${'9'.repeat(400)}h`, /duration "9{400}h" is too large/],
  ];
  for (const [input, message] of invalid) {
    test(`"${input}" is rejected with a message naming the input`, () => {
      assert.throws(() => parseDuration(input), message);
    });
  }
});

describe('parseList', () => {
  const cases: { input: string; expected: string[] }[] = [
    { input: 'a,b , c', expected: ['a', 'b', 'c'] },
    { input: 'a\nb\r\nc\n', expected: ['a', 'b', 'c'] },
    { input: '- a\n-b\n  - c  \n', expected: ['a', 'b', 'c'] },
    { input: '# header\na # trailing comment\n\n,,b', expected: ['a', 'b'] },
    { input: 'kube-system, my-ns', expected: ['kube-system', 'my-ns'] },
    { input: '', expected: [] },
    { input: '  # only a comment ', expected: [] },
  ];
  for (const { input, expected } of cases) {
    it(`splits ${JSON.stringify(input)}`, () => {
      assert.deepEqual(parseList(input), expected);
    });
  }

  it('needs a value', () => {
    assert.throws(() => parseList(true), /a value is required/);
  });
});

describe('parseByteSize', () => {
  const accepted: [string, number][] = [
    ['65536', 65536],
    ['512Ki', 512 * 1024],
    ['4Mi', 4 * 1024 * 1024],
    ['1Gi', 1024 ** 3],
    ['1M', 1_000_000],
    ['2k', 2000],
    ['1.5Ki', 1536],
    [' 64Ki ', 65536],
  ];
  for (const [input, bytes] of accepted) {
    it(`reads "${input}" as ${bytes} bytes`, () => {
      assert.equal(parseByteSize(input), bytes);
    });
  }

  const rejected: [string, RegExp][] = [
    ['0', /at least 1 byte/],
    ['0.5', /at least 1 byte/],
    ['4 MB', /like 65536, 512Ki or 4Mi/],
    ['-1', /like 65536, 512Ki or 4Mi/],
    ['4mi', /like 65536, 512Ki or 4Mi/],
    ['ki', /like 65536, 512Ki or 4Mi/],
    ['', /like 65536, 512Ki or 4Mi/],
  ];
  for (const [input, pattern] of rejected) {
    it(`rejects "${input}"`, () => {
      assert.throws(() => parseByteSize(input), pattern);
    });
  }
});

describe('parseHttpsUrl', () => {
  it('takes https URLs, without trailing slashes', () => {
    assert.equal(parseHttpsUrl(' https://guard.crowsnest-system.svc:9445/ '), 'https://guard.crowsnest-system.svc:9445');
  });

  it('refuses plain http (a token is sent there) and what is not a URL', () => {
    assert.throws(() => parseHttpsUrl('http://guard:9445'), /must be an https:\/\/ URL/);
    assert.throws(() => parseHttpsUrl('not a url'), /must be a URL like https:\/\/host:port/);
    assert.throws(() => parseHttpsUrl(true), /a value is required/);
  });
});
