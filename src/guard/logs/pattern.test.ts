import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errorLogPattern, type GuardPolicySpec } from '../api.ts';
import { compilePattern, foldCase, MAX_PATTERN_LENGTH, PatternError } from './pattern.ts';

describe('watch patterns', () => {
  it('compiles ordinary patterns for the linear-time engine', () => {
    const pattern = compilePattern('error|panic');
    assert.ok(pattern.flags.includes('l'));
    assert.equal(pattern.test('a panic here'), true);
    assert.equal(pattern.test('all good'), false);
  });

  // A backtracking engine needs ~2^50000 steps for this line and never finishes: the test's
  // timeout fails it. The linear engine takes milliseconds.
  it('runs a pattern that is catastrophic for a backtracking engine in linear time', { timeout: 20_000 }, () => {
    const pattern = compilePattern('(a+)+$');
    assert.equal(pattern.test(`${'a'.repeat(50_000)}!`), false);
  });

  it('refuses backreferences, lookarounds and inline modifiers, saying why', () => {
    for (const source of ['(a)\\1', '(?<x>a)\\k<x>', 'a(?=b)', 'a(?!b)', '(?<=a)b', '(?<!a)b']) {
      assert.throws(() => compilePattern(source), (err: unknown) => err instanceof PatternError && /linear time/.test(err.message), source);
    }
    for (const source of ['a(?i:b)', '(?i:a)|(?i:b)', '(?i:a)(b)']) assert.throws(() => compilePattern(source), /linear time/, source);
  });

  it('takes a pattern that is one (?i:...) group as a whole, as the operator sends a policy\'s ignoreCase', () => {
    const pattern = compilePattern(errorLogPattern({ targets: {}, detectors: { errorLogs: { pattern: 'error|panic' } } } as GuardPolicySpec)!);
    assert.ok(pattern.flags.includes('l'));
    assert.equal(pattern.test('a PANIC here'), true);
    assert.equal(pattern.test('Error: x'), true);
    assert.equal(pattern.test('all good'), false);
  });

  it('refuses invalid and overlong patterns', () => {
    assert.throws(() => compilePattern('(unclosed'), (err: unknown) => err instanceof PatternError && /not a valid regular expression/.test(err.message));
    assert.throws(() => compilePattern('a'.repeat(MAX_PATTERN_LENGTH + 1)), /at most 1024/);
  });

  it('honours a leading (?i) as RE2 does, by folding letters into classes', () => {
    const pattern = compilePattern('(?i)error|panic');
    assert.equal(pattern.test('ERROR: disk'), true);
    assert.equal(pattern.test('Panic!'), true);
    assert.equal(pattern.test('fine'), false);
  });

  it('folds letters, class ranges and keeps escapes, quantifiers and group names', () => {
    assert.equal(foldCase('ab'), '[aA][bB]');
    assert.equal(foldCase('[a-cx]'), '[a-cA-Cx' + 'X]');
    assert.equal(foldCase('\\d+\\w\\x41\\u0041\\p{L}'), '\\d+\\w\\x41\\u0041\\p{L}');
    assert.equal(foldCase('a{2,3}'), '[aA]{2,3}');
    assert.equal(foldCase('(?:a)(?<name>b)'), '(?:[aA])(?<name>[bB])');
    assert.equal(foldCase('[^a]'), '[^aA]');
    assert.equal(compilePattern('(?i)[^a-z]x').test('1X'), true);
  });
});
