/**
 * One POST to the inventory endpoint (a chunk or a login) under the upload's retry policy:
 * network errors, 408, 425, 429 and 5xx are retried with backoff (or as long as Retry-After
 * asks, capped at 2 minutes); any other answer is returned for the caller to judge.
 */
import { request } from 'undici';
import { describeConnectionFailure } from '../kube/client/client.ts';
import { sleep, timeoutSignal, type Clock } from '../kube/clock.ts';
import { parseRetryAfter } from '../kube/client/errors.ts';
import { excerpt, readBoundedText } from '../kube/client/http-body.ts';
import { ExponentialBackoff } from '../kube/runtime/ratelimiter.ts';

/** The endpoint refused a request or stayed unreachable through every attempt. */
export class UploadError extends Error {
  readonly chunk: number;
  readonly attempts: number;
  /** HTTP status of the last answer, when there was one. */
  readonly status: number | undefined;

  constructor(message: string, init: { chunk: number; attempts: number; status?: number }) {
    super(message);
    this.name = 'UploadError';
    this.chunk = init.chunk;
    this.attempts = init.attempts;
    this.status = init.status;
  }
}

/** How requests to the endpoint are made; shared by chunks and logins. */
export interface RequestPolicy {
  /** Per-request timeout, in milliseconds; it covers the answer's body too. */
  readonly timeoutMs: number;
  /** Attempts per request before it is given up. */
  readonly maxAttempts: number;
  /** First retry delay, in milliseconds; doubles per attempt up to 30 s. */
  readonly retryInitialMs: number;
  readonly userAgent: string;
  readonly signal: AbortSignal;
  readonly clock: Clock;
  /** Called before each retry, for logs. */
  readonly onRetry?: (info: { chunk: number; attempt: number; waitMs: number; reason: string }) => void;
  /** Called once per retry, for the run's count. */
  readonly countRetry: () => void;
}

export interface PostRequest {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  /** The chunk this request is for (a login counts as part of the chunk that needed it). */
  readonly chunk: number;
  /** Bytes of a 2xx answer's body to read; 0 reads none (the status is the answer). */
  readonly readSuccessBytes: number;
  /** What an exhausted request was, for the error: `endpoint host:port … for chunk 3`. */
  readonly unreachable: (attempts: number, reason: string) => string;
}

/** A final (not retried) answer. */
export interface Answer {
  readonly status: number;
  /** The body of a non-2xx answer (at most 4 KiB), or of a 2xx one up to `readSuccessBytes`. */
  readonly text: string;
  /** Whether a 2xx body went on past `readSuccessBytes`. */
  readonly truncated: boolean;
  /** `HTTP 401: <excerpt of the body>`, for messages. */
  readonly reason: string;
  readonly attempts: number;
}

const RETRY_MAX_MS = 30_000;
const MAX_RETRY_AFTER_MS = 120_000;
/**
 * Of an error answer only this much is read: enough for a message. The rest is not read (the
 * connection is closed instead).
 */
const MAX_ERROR_BYTES = 4 * 1024;
/** Characters of an error body quoted in messages. */
const MAX_QUOTED_CHARS = 200;

/**
 * POSTs `req.body` to `req.url`, retrying what says "try again later".
 * @throws UploadError when every attempt failed that way (`req.unreachable` words it).
 */
export async function postWithRetries(req: PostRequest, policy: RequestPolicy): Promise<Answer> {
  const backoff = new ExponentialBackoff({ initialMs: policy.retryInitialMs, maxMs: Math.max(policy.retryInitialMs, RETRY_MAX_MS), jitter: 0.2 });
  for (let attempt = 1; ; attempt++) {
    let status: number | undefined;
    let reason: string;
    let retryAfterMs: number | undefined;
    try {
      // One signal for the whole exchange, the answer's body included: a body that trickles in
      // forever ends with the timeout like a server that never answers.
      const res = await request(req.url, {
        method: 'POST',
        headers: { ...req.headers, 'user-agent': policy.userAgent },
        body: req.body,
        signal: AbortSignal.any([policy.signal, timeoutSignal(policy.timeoutMs)]),
      });
      status = res.statusCode;
      if (status >= 200 && status < 300) {
        if (req.readSuccessBytes > 0) {
          const { text, truncated } = await readBoundedText(res.body, req.readSuccessBytes);
          return { status, text, truncated, reason: `HTTP ${status}`, attempts: attempt };
        }
        // Success is the status: the body is not needed, and an endless one must not hold us.
        // (Destroying an unread body reports an abort: that is us, not the endpoint.)
        res.body.on('error', () => {});
        res.body.destroy();
        return { status, text: '', truncated: false, reason: `HTTP ${status}`, attempts: attempt };
      }
      const text = (await readBoundedText(res.body, MAX_ERROR_BYTES).catch(() => ({ text: '' }))).text;
      reason = `HTTP ${status}${text.trim() ? `: ${excerpt(text, MAX_QUOTED_CHARS)}` : ''}`;
      if (!isRetryableStatus(status)) return { status, text, truncated: false, reason, attempts: attempt };
      retryAfterMs = parseRetryAfter(res.headers['retry-after'], policy.clock);
    } catch (err) {
      if (policy.signal.aborted) throw err;
      reason = describeConnectionFailure(err, policy.timeoutMs);
    }
    if (attempt >= policy.maxAttempts) {
      throw new UploadError(req.unreachable(attempt, reason), { chunk: req.chunk, attempts: attempt, ...(status !== undefined ? { status } : {}) });
    }
    const waitMs = retryAfterMs !== undefined ? Math.min(retryAfterMs, MAX_RETRY_AFTER_MS) : backoff.next();
    policy.countRetry();
    policy.onRetry?.({ chunk: req.chunk, attempt, waitMs, reason });
    await sleep(policy.clock, waitMs, policy.signal);
  }
}

/** Network errors are retried elsewhere; these statuses say "try again later". */
function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}

/** `base` with `path` appended to its path (one `/` between them; query kept). */
export function underBase(base: string, path: string): string {
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${path}`;
  return url.toString();
}
