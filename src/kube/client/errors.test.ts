import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiException } from '@kubernetes/client-node';
import { FakeClock } from '../clock.ts';
import {
  describeError,
  isAlreadyExists,
  isConflict,
  isForbidden,
  isGone,
  isNetworkError,
  isNotFound,
  isRetryable,
  isTooManyRequests,
  retryAfterMs,
  statusCode,
  statusReason,
} from './errors.ts';

function apiError(code: number, reason?: string, headers: Record<string, string> = {}, details?: object): ApiException<string> {
  const body = reason ? JSON.stringify({ kind: 'Status', apiVersion: 'v1', code, reason, message: `${reason} happened`, details }) : '';
  return new ApiException(code, 'Unknown API Status Code!', body, headers);
}

function fetchFailed(code: string): TypeError {
  return new TypeError('fetch failed', { cause: Object.assign(new Error(`connect ${code}`), { code }) });
}

describe('statusCode', () => {
  const cases: ReadonlyArray<{ name: string; err: unknown; code: number | undefined }> = [
    { name: 'an ApiException', err: apiError(404, 'NotFound'), code: 404 },
    { name: 'a Watch error with statusCode', err: Object.assign(new Error('Gone'), { statusCode: 410 }), code: 410 },
    { name: 'a KubeApiError-shaped error with status', err: Object.assign(new Error('x'), { status: 429, reason: 'TooManyRequests' }), code: 429 },
    { name: 'a network failure', err: fetchFailed('ECONNREFUSED'), code: undefined },
    { name: 'a Node system error whose code is a string', err: Object.assign(new Error('x'), { code: 'ECONNRESET' }), code: undefined },
    { name: 'a non-error', err: 'boom', code: undefined },
  ];
  for (const c of cases) it(`reads ${c.code} from ${c.name}`, () => assert.equal(statusCode(c.err), c.code));
});

describe('classification', () => {
  it('tells a conflicting update from a create that found an existing object', () => {
    assert.equal(isConflict(apiError(409, 'Conflict')), true);
    assert.equal(isConflict(apiError(409, 'AlreadyExists')), false);
    assert.equal(isAlreadyExists(apiError(409, 'AlreadyExists')), true);
    assert.equal(statusReason(apiError(409, 'AlreadyExists')), 'AlreadyExists');
  });

  it('names 404, 410, 429 and 403', () => {
    assert.equal(isNotFound(apiError(404, 'NotFound')), true);
    assert.equal(isGone(apiError(410, 'Expired')), true);
    assert.equal(isTooManyRequests(apiError(429, 'TooManyRequests')), true);
    assert.equal(isForbidden(apiError(403, 'Forbidden')), true);
    assert.equal(isForbidden(apiError(404, 'NotFound')), false);
  });

  const retryable: ReadonlyArray<{ name: string; err: unknown; retry: boolean }> = [
    { name: 'connection refused', err: fetchFailed('ECONNREFUSED'), retry: true },
    { name: 'a socket closed by undici', err: fetchFailed('UND_ERR_SOCKET'), retry: true },
    { name: 'our own request timeout', err: new DOMException('timed out', 'TimeoutError'), retry: true },
    { name: 'a deliberate abort', err: new DOMException('aborted', 'AbortError'), retry: false },
    { name: '429', err: apiError(429, 'TooManyRequests'), retry: true },
    { name: '500', err: apiError(500, 'InternalError'), retry: true },
    { name: '503', err: apiError(503, 'ServiceUnavailable'), retry: true },
    { name: '501', err: apiError(501, 'NotImplemented'), retry: false },
    { name: '409 Conflict', err: apiError(409, 'Conflict'), retry: true },
    { name: '409 AlreadyExists', err: apiError(409, 'AlreadyExists'), retry: false },
    { name: '422', err: apiError(422, 'Invalid'), retry: false },
    { name: '403', err: apiError(403, 'Forbidden'), retry: false },
    { name: '401 without a body', err: new ApiException(401, 'Unauthorized', undefined, {}), retry: false },
    { name: 'a programming error', err: new TypeError('x is undefined'), retry: false },
  ];
  for (const c of retryable) it(`${c.retry ? 'retries' : 'does not retry'} ${c.name}`, () => assert.equal(isRetryable(c.err), c.retry));

  it('recognises network errors through nested causes', () => {
    assert.equal(isNetworkError(fetchFailed('ETIMEDOUT')), true);
    assert.equal(isNetworkError(apiError(503, 'ServiceUnavailable')), false);
  });
});

describe('retryAfterMs', () => {
  const clock = new FakeClock(Date.parse('2024-01-01T00:00:00Z'));
  it('reads delta-seconds from the Retry-After header', () => assert.equal(retryAfterMs(apiError(429, 'TooManyRequests', { 'retry-after': '3' }), clock), 3_000));
  it('reads an HTTP date against the injected clock', () =>
    assert.equal(retryAfterMs(apiError(503, 'ServiceUnavailable', { 'retry-after': 'Mon, 01 Jan 2024 00:00:05 GMT' }), clock), 5_000));
  it('falls back to Status.details.retryAfterSeconds', () =>
    assert.equal(retryAfterMs(apiError(429, 'TooManyRequests', {}, { retryAfterSeconds: 2 }), clock), 2_000));
  it('uses retryAfterMs of a KubeApiError-shaped error', () => assert.equal(retryAfterMs(Object.assign(new Error('x'), { status: 429, retryAfterMs: 700 }), clock), 700));
  it('is undefined when the server gave no hint', () => assert.equal(retryAfterMs(apiError(500, 'InternalError'), clock), undefined));
});

describe('describeError', () => {
  it('summarises status, reason and server message', () => assert.equal(describeError(apiError(404, 'NotFound')), 'HTTP 404: NotFound: NotFound happened'));
  it('names the system error code of a network failure', () => assert.equal(describeError(fetchFailed('ECONNREFUSED')), 'TypeError: fetch failed (ECONNREFUSED)'));
});
