import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { escapeControl, escapeControlKeepingLines } from './terminal-text.ts';

describe('escapeControl', () => {
  const cases: [string, string, string][] = [
    ['an ANSI colour sequence', '\u001b[31mred\u001b[0m', '\\e[31mred\\e[0m'],
    ['a newline that would forge a line', 'nginx\ntcp    ipv4    0.0.0.0  22', 'nginx\\ntcp    ipv4    0.0.0.0  22'],
    ['carriage return, tab, NUL, DEL', 'a\rb\tc\u0000d\u007f', 'a\\rb\\tc\\x00d\\x7f'],
    ['C1 controls (CSI as one byte)', 'x\u009b2Jy', 'x\\x9b2Jy'],
    ['bidirectional overrides and isolates, line separators', 'a\u202eb\u2066c\u2028d', 'a\\u202eb\\u2066c\\u2028d'],
    ['printable text, non-ASCII included', 'línea ✓ 日本 \\ "q"', 'línea ✓ 日本 \\ "q"'],
  ];
  for (const [what, input, expected] of cases) {
    it(`makes visible: ${what}`, () => assert.equal(escapeControl(input), expected));
  }

  it('is idempotent: escaping escaped text changes nothing', () => {
    const once = escapeControl('\u001b]0;title\u0007\n');
    assert.equal(escapeControl(once), once);
  });

  it('keeps our own line breaks when asked, escaping inside each line', () => {
    assert.equal(escapeControlKeepingLines('one\u001b[2J\ntwo\r'), 'one\\e[2J\ntwo\\r');
  });
});
