import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Command, CommanderError } from 'commander';
import { flag, OptionError } from '../flags.ts';
import { oneOf, parseBool, parsePositiveInteger } from '../flag-values.ts';
import { addFlags, resolveGlobalOptions } from './flags.ts';

describe('resolveGlobalOptions', () => {
  test('log level defaults to info; log format follows whether stderr is a terminal', () => {
    assert.deepEqual(resolveGlobalOptions({ flags: {}, env: {} }, true), {
      kubeconfig: undefined,
      context: undefined,
      logLevel: 'info',
      logFormat: 'text',
    });
    assert.equal(resolveGlobalOptions({ flags: {}, env: {} }, false).logFormat, 'json');
  });

  test('env sets level and format; flags win over env', () => {
    const env = { CROWSNEST_LOG_LEVEL: 'debug', CROWSNEST_LOG_FORMAT: 'text' };
    assert.equal(resolveGlobalOptions({ flags: {}, env }, false).logLevel, 'debug');
    assert.equal(resolveGlobalOptions({ flags: {}, env }, false).logFormat, 'text');
    assert.equal(resolveGlobalOptions({ flags: { 'log-level': 'warn' }, env }, false).logLevel, 'warn');
  });

  test('KUBECONFIG is left to the kubeconfig loader', () => {
    assert.equal(resolveGlobalOptions({ flags: {}, env: { KUBECONFIG: '/a:/b' } }, false).kubeconfig, undefined);
    assert.equal(resolveGlobalOptions({ flags: { kubeconfig: '/k' }, env: {} }, false).kubeconfig, '/k');
  });

  test('an unknown level or format is an OptionError listing the choices', () => {
    assert.throws(
      () => resolveGlobalOptions({ flags: { 'log-level': 'verbose' }, env: {} }, false),
      (err: unknown) => err instanceof OptionError && /--log-level: must be one of trace, debug, info, warn, error/.test(err.message),
    );
    assert.throws(
      () => resolveGlobalOptions({ flags: {}, env: { CROWSNEST_LOG_FORMAT: 'yaml' } }, false),
      /invalid value "yaml" for --log-format \(from CROWSNEST_LOG_FORMAT\): must be one of json, text/,
    );
  });
});

describe('addFlags', () => {
  const table = [
    flag({ name: 'page-size', valueName: '<n>', description: 'objects per page', default: '500', parse: parsePositiveInteger }),
    flag({ name: 'redact', valueName: '[bool]', description: 'redact values', default: true, negatable: true, parse: parseBool }),
    flag({ name: 'output', short: 'o', valueName: '<format>', description: 'output format', default: 'text', choices: ['text', 'json'], env: false, parse: oneOf(['text', 'json']) }),
  ];
  function parse(argv: readonly string[]): Record<string, unknown> {
    const command = new Command('test').exitOverride().configureOutput({ writeErr: () => {} });
    const values = addFlags(command, table);
    command.parse(argv, { from: 'user' });
    return values();
  }

  test('reads the command line keyed by long flag name, leaving flags not given undefined', () => {
    assert.deepEqual(parse(['--page-size', '10', '-o', 'json']), { 'page-size': '10', redact: undefined, output: 'json' });
    assert.deepEqual(parse([]), { 'page-size': undefined, redact: undefined, output: undefined }, 'commander applies no default: env and config must still be able to');
  });

  test('a switch is true alone, its value with =, false as --no-<name>', () => {
    assert.equal(parse(['--redact']).redact, true);
    assert.equal(parse(['--redact=false']).redact, 'false');
    assert.equal(parse(['--no-redact']).redact, false);
  });

  test('choices are checked by the parser', () => {
    assert.throws(() => parse(['-o', 'yaml']), (err: unknown) => err instanceof CommanderError && /argument 'yaml' is invalid/.test(err.message));
  });

  test('help shows each flag with its default and variables, and the negated form after it', () => {
    const command = new Command('test').configureHelp({ helpWidth: 200 });
    addFlags(command, table);
    const help = command.helpInformation({ error: false });
    assert.match(help, /--page-size <n> +objects per page \(default: 500; env: CROWSNEST_PAGE_SIZE\)/);
    assert.match(help, /--redact \[bool\] +redact values \(default: true; env: CROWSNEST_REDACT\)\n +--no-redact +same as --redact=false/);
    assert.match(help, /-o, --output <format> +output format \(default: text\) \(choices: "text", "json"\)/);
  });
});
