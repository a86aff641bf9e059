/**
 * Classification of Kubernetes API errors, so callers branch on what an error means (gone,
 * conflict, retry later) instead of on how a client library happened to shape it.
 *
 * The shapes seen in practice:
 * - `ApiException` of @kubernetes/client-node 2.x (still used by tests and test-only helpers):
 *   `.code` is the HTTP status, `.headers` the response headers (lower-cased names), `.body` the
 *   raw response text (a JSON `Status` when the API server produced it) or, for 401, `undefined`.
 *   Recognised by shape: importing the class would load all of client-node (~85 MB).
 * - `Watch` failures: a plain `Error` with `.statusCode`.
 * - Network failures: undici's `TypeError('fetch failed')` whose `.cause` carries a Node error
 *   `code` such as `ECONNREFUSED`; aborted requests reject with `AbortError` or `TimeoutError`.
 * - The runtime's own `KubeApiError` (client.ts): `.status`, `.reason`, `.retryAfterMs`, raw `.body`.
 *   Recognised by shape, so this module does not depend on the HTTP client.
 */
import { realClock, type Clock } from '../clock.ts';

const HTTP_FORBIDDEN = 403;
const HTTP_NOT_FOUND = 404;
const HTTP_CONFLICT = 409;
const HTTP_GONE = 410;
const HTTP_TOO_MANY_REQUESTS = 429;
const HTTP_NOT_IMPLEMENTED = 501;
const HTTP_MIN_STATUS = 100;
const HTTP_MAX_STATUS = 599;
const HTTP_MIN_SERVER_ERROR = 500;
const MS_PER_SECOND = 1000;

/** How deep {@link isNetworkError} follows `.cause` chains; undici nests at most two levels. */
const MAX_CAUSE_DEPTH = 5;

/**
 * Node and undici error codes of failures on the way to the API server, not answers from it.
 * All are worth retrying: the server (or the connection to it) may be back on the next attempt.
 */
const NETWORK_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/** The subset of a Kubernetes `Status` object the helpers read. */
interface StatusBody {
  readonly code?: number;
  readonly reason?: string;
  readonly message?: string;
  readonly details?: { readonly retryAfterSeconds?: number };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function isHttpStatus(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= HTTP_MIN_STATUS && value <= HTTP_MAX_STATUS;
}

/**
 * client-node's `ApiException`: a numeric HTTP `code` next to the response `body` or `headers`.
 * (A string `code` is a Node system error code such as ECONNRESET, never an HTTP status.)
 */
function isApiException(err: unknown): err is { readonly code: number } {
  return isRecord(err) && isHttpStatus(err['code']) && ('body' in err || 'headers' in err);
}

/**
 * The HTTP status code an error carries, or `undefined` for errors that never got an answer
 * (network failures, aborts, programming errors).
 */
export function statusCode(err: unknown): number | undefined {
  if (isApiException(err)) return err.code;
  if (!isRecord(err)) return undefined;
  // client-node Watch errors.
  if (isHttpStatus(err['statusCode'])) return err['statusCode'];
  // KubeApiError, and fetch-style errors that carry the Response's status.
  const status = err['status'];
  if (err instanceof Error && isHttpStatus(status)) return status;
  const response = err['response'];
  if (isRecord(response)) {
    if (isHttpStatus(response['status'])) return response['status'];
    if (isHttpStatus(response['statusCode'])) return response['statusCode'];
  }
  return statusBody(err)?.code;
}

/**
 * The Kubernetes `Status` returned with the error, parsed from the raw body the error keeps.
 * `undefined` when the body is absent or not a Status (e.g. an HTML page from a proxy).
 */
export function statusBody(err: unknown): StatusBody | undefined {
  if (!isRecord(err)) return undefined;
  let body = err['body'];
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  if (!isRecord(body) || body['kind'] !== 'Status') return undefined;
  return body as StatusBody;
}

/** `Status.reason` of the error (`NotFound`, `AlreadyExists`, `Conflict`, …), if the server sent one. */
export function statusReason(err: unknown): string | undefined {
  const reason = isRecord(err) ? err['reason'] : undefined;
  return statusBody(err)?.reason ?? (typeof reason === 'string' && reason !== '' ? reason : undefined);
}

/** 404: the object (or its namespace, or its API) does not exist. */
export function isNotFound(err: unknown): boolean {
  return statusCode(err) === HTTP_NOT_FOUND;
}

/**
 * 409 from an update whose preconditions (resourceVersion, uid) no longer hold: someone else
 * changed the object first. Re-read and try again. A 409 `AlreadyExists` from a create is not a
 * conflict in this sense (see {@link isAlreadyExists}); retrying the same create cannot succeed.
 */
export function isConflict(err: unknown): boolean {
  return statusCode(err) === HTTP_CONFLICT && statusReason(err) !== 'AlreadyExists';
}

/** 409 `AlreadyExists`: a create found an object of that name. */
export function isAlreadyExists(err: unknown): boolean {
  return statusCode(err) === HTTP_CONFLICT && statusReason(err) === 'AlreadyExists';
}

/** 410: the resourceVersion a list or watch asked for has been compacted away; relist. */
export function isGone(err: unknown): boolean {
  return statusCode(err) === HTTP_GONE;
}

/** 429: the API server (priority and fairness) or a webhook asked us to slow down. */
export function isTooManyRequests(err: unknown): boolean {
  return statusCode(err) === HTTP_TOO_MANY_REQUESTS;
}

/** 403: RBAC denies the request. Not retryable until someone changes the RBAC rules. */
export function isForbidden(err: unknown): boolean {
  return statusCode(err) === HTTP_FORBIDDEN;
}

/**
 * How long the server asked us to wait before retrying, in milliseconds: the `Retry-After` header
 * (delta-seconds or an HTTP date, read against `clock`), else `Status.details.retryAfterSeconds`.
 * `undefined` when the error carries neither.
 */
export function retryAfterMs(err: unknown, clock: Clock = realClock): number | undefined {
  if (isRecord(err) && typeof err['retryAfterMs'] === 'number' && err['retryAfterMs'] >= 0) return err['retryAfterMs'];
  const fromHeader = parseRetryAfter(retryAfterHeader(err), clock);
  if (fromHeader !== undefined) return fromHeader;
  const seconds = statusBody(err)?.details?.retryAfterSeconds;
  return typeof seconds === 'number' && seconds >= 0 ? seconds * MS_PER_SECOND : undefined;
}

/**
 * A `Retry-After` header value (delta-seconds or an HTTP date, read against `clock`) in
 * milliseconds; `undefined` when absent or unreadable. Takes the first of repeated headers.
 */
export function parseRetryAfter(value: string | readonly string[] | undefined, clock: Clock = realClock): number | undefined {
  const text = (typeof value === 'string' ? value : value?.[0])?.trim();
  if (text === undefined) return undefined;
  if (/^\d+$/.test(text)) return Number(text) * MS_PER_SECOND;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - clock.now());
}

function retryAfterHeader(err: unknown): string | undefined {
  if (!isRecord(err) || !isRecord(err['headers'])) return undefined;
  const headers = err['headers'];
  // undici lower-cases header names, but a hand-built ApiException may not have.
  for (const [name, value] of Object.entries(headers)) {
    if (name.toLowerCase() === 'retry-after' && typeof value === 'string') return value;
  }
  return undefined;
}

/**
 * Whether the request failed before the API server answered: connection refused or reset, DNS,
 * socket and header timeouts, or our own per-request timeout (`TimeoutError`). A deliberate
 * cancellation (`AbortError`) is not a network error.
 */
export function isNetworkError(err: unknown): boolean {
  let current: unknown = err;
  for (let depth = 0; depth < MAX_CAUSE_DEPTH && isRecord(current); depth++) {
    const code = current['code'];
    if (typeof code === 'string' && NETWORK_ERROR_CODES.has(code)) return true;
    if (current['name'] === 'TimeoutError') return true;
    current = current['cause'];
  }
  return false;
}

/**
 * Whether trying the same request again later can succeed: network errors, 429, 5xx except 501,
 * and 409 conflicts of optimistic updates (after re-reading the object). Everything else — 4xx
 * validation, RBAC, not found, already exists — needs a change somewhere before a retry helps.
 * Callers retry with backoff, honouring {@link retryAfterMs} when present.
 */
export function isRetryable(err: unknown): boolean {
  if (isNetworkError(err)) return true;
  const code = statusCode(err);
  if (code === undefined) return false;
  if (code === HTTP_TOO_MANY_REQUESTS) return true;
  if (code >= HTTP_MIN_SERVER_ERROR && code !== HTTP_NOT_IMPLEMENTED) return true;
  return isConflict(err);
}

/** A one-line description of an error for logs: status, reason and the server's message when known. */
export function describeError(err: unknown): string {
  const code = statusCode(err);
  const status = statusBody(err);
  if (code !== undefined) {
    // An ApiException's own message repeats the whole body and headers: not for one log line.
    const detail = status?.message ?? (err instanceof Error && !isApiException(err) ? err.message : '');
    return [`HTTP ${code}`, status?.reason, detail].filter((part) => part).join(': ');
  }
  // KubeConnectionError (client.ts) already names the server and the cause.
  if (err instanceof Error && err.name === 'KubeConnectionError') return err.message;
  if (err instanceof Error) {
    const cause = isRecord(err.cause) && typeof err.cause['code'] === 'string' ? ` (${err.cause['code']})` : '';
    return `${err.name}: ${err.message}${cause}`;
  }
  return String(err);
}
