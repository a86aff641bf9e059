import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { OptionError } from '../flags.ts';
import { resolveGlobalOptions } from './flags.ts';

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
