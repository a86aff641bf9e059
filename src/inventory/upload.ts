/**
 * Sends a finished snapshot to an HTTP endpoint in the seed's wire format: `POST` of
 * `{"objects":[…]}`, `Content-Encoding: gzip`, success = 204 (any 2xx is accepted).
 *
 * The snapshot is read back from its spool file (gzip NDJSON in the report directory) and cut
 * into chunks by a byte budget, so memory holds one chunk whatever the cluster size. Every chunk
 * carries the run id, its index and whether it is the last, so a receiver can assemble a run
 * and discard one that never got its last chunk.
 *
 * Headers (all requests):
 * - `X-Crowsnest-Access-Key`, `X-Crowsnest-Secret-Key`: the keys, when configured;
 * - `X-Crowsnest-Cluster-Id`, `X-Crowsnest-Run-Id`;
 * - `X-Crowsnest-Chunk-Index` (from 0) and `X-Crowsnest-Chunk-Final: true|false`.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream';
import { promisify } from 'node:util';
import { createGunzip, gzip as gzipCallback } from 'node:zlib';
import { request } from 'undici';
import { describeConnectionFailure } from '../kube/client/client.ts';
import { realClock, sleep, timeoutSignal, type Clock } from '../kube/clock.ts';
import { parseRetryAfter } from '../kube/client/errors.ts';
import { excerpt, readBoundedText } from '../kube/client/http-body.ts';
import { ExponentialBackoff } from '../kube/runtime/ratelimiter.ts';

const gzip = promisify(gzipCallback);

export interface EndpointOptions {
  readonly url: string;
  readonly accessKey?: string;
  readonly secretKey?: string;
  readonly clusterId: string;
  readonly runId: string;
  /** Uncompressed bytes of objects per request; an object larger than this goes alone. */
  readonly chunkBytes: number;
  /** Per-request timeout, in milliseconds. */
  readonly timeoutMs: number;
  /** Attempts per chunk before the upload is given up. */
  readonly maxAttempts: number;
  /** First retry delay, in milliseconds; doubles per attempt up to 30 s. */
  readonly retryInitialMs: number;
  readonly userAgent: string;
  readonly signal: AbortSignal;
  readonly clock?: Clock;
  /** Called before each retry, for logs. */
  readonly onRetry?: (info: { chunk: number; attempt: number; waitMs: number; reason: string }) => void;
}

export interface UploadResult {
  readonly chunks: number;
  readonly objects: number;
  /** JSON bytes before compression. */
  readonly rawBytes: number;
  /** Request body bytes as sent. */
  readonly sentBytes: number;
  readonly retries: number;
}

/** The endpoint refused a chunk or stayed unreachable through every attempt. */
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

const RETRY_MAX_MS = 30_000;
const MAX_RETRY_AFTER_MS = 120_000;
/**
 * Of the endpoint's answer only this much is read: enough for an error message, and a success
 * needs no body at all. The rest is not read (the connection is closed instead).
 */
const MAX_ANSWER_BYTES = 4 * 1024;
/** Characters of an error body quoted in messages. */
const MAX_QUOTED_CHARS = 200;

/** Uploads the gzip NDJSON snapshot at `path`. */
export async function uploadSnapshot(path: string, options: EndpointOptions): Promise<UploadResult> {
  const clock = options.clock ?? realClock;
  const file = createReadStream(path);
  const gunzip = createGunzip();
  // pipeline, not pipe: a read error reaches the lines loop instead of leaving it waiting; the
  // callback only keeps a destroy on early exit from being reported as an unhandled error.
  pipeline(file, gunzip, () => {});
  const lines = createInterface({ input: gunzip, crlfDelay: Infinity });
  let chunk: string[] = [];
  let chunkBytes = 0;
  let index = 0;
  let objects = 0;
  let rawBytes = 0;
  let sentBytes = 0;
  let retries = 0;

  const send = async (final: boolean): Promise<void> => {
    const body = `{"objects":[${chunk.join(',')}]}`;
    const sent = await postChunk(body, index, final, options, clock, () => retries++);
    objects += chunk.length;
    rawBytes += Buffer.byteLength(body);
    sentBytes += sent;
    index++;
    chunk = [];
    chunkBytes = 0;
  };

  try {
    for await (const line of lines) {
      if (!line) continue;
      const bytes = Buffer.byteLength(line) + 1;
      // The chunk is sent only once the next object is known to exist, so the last request can
      // say it is the last.
      if (chunk.length > 0 && chunkBytes + bytes > options.chunkBytes) await send(false);
      chunk.push(line);
      chunkBytes += bytes;
    }
  } finally {
    // Closing readline only stops reading: on an early exit (a refused chunk, an abort) the
    // streams must be destroyed too, or the spool file's descriptor stays open.
    lines.close();
    gunzip.destroy();
    file.destroy();
  }
  await send(true); // also sends `{"objects":[]}` for an empty snapshot: the run still happened
  return { chunks: index, objects, rawBytes, sentBytes, retries };
}

async function postChunk(
  body: string,
  index: number,
  final: boolean,
  options: EndpointOptions,
  clock: Clock,
  countRetry: () => void,
): Promise<number> {
  let payload: Buffer;
  let encoding: string | undefined = 'gzip';
  try {
    payload = await gzip(body);
  } catch {
    // The seed's rule: identity only when compression failed.
    payload = Buffer.from(body);
    encoding = undefined;
  }
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': options.userAgent,
    'x-crowsnest-cluster-id': options.clusterId,
    'x-crowsnest-run-id': options.runId,
    'x-crowsnest-chunk-index': String(index),
    'x-crowsnest-chunk-final': String(final),
  };
  if (encoding) headers['content-encoding'] = encoding;
  if (options.accessKey) headers['x-crowsnest-access-key'] = options.accessKey;
  if (options.secretKey) headers['x-crowsnest-secret-key'] = options.secretKey;

  const backoff = new ExponentialBackoff({ initialMs: options.retryInitialMs, maxMs: Math.max(options.retryInitialMs, RETRY_MAX_MS), jitter: 0.2 });
  const host = new URL(options.url).host;
  for (let attempt = 1; ; attempt++) {
    let status: number | undefined;
    let reason: string;
    let retryAfterMs: number | undefined;
    try {
      // One signal for the whole exchange, the answer's body included: a body that trickles in
      // forever ends with the timeout like a server that never answers.
      const res = await request(options.url, {
        method: 'POST',
        headers,
        body: payload,
        signal: AbortSignal.any([options.signal, timeoutSignal(options.timeoutMs)]),
      });
      status = res.statusCode;
      if (status >= 200 && status < 300) {
        // Success is the status: the body is not needed, and an endless one must not hold us.
        // (Destroying an unread body reports an abort: that is us, not the endpoint.)
        res.body.on('error', () => {});
        res.body.destroy();
        return payload.length;
      }
      const text = (await readBoundedText(res.body, MAX_ANSWER_BYTES).catch(() => ({ text: '' }))).text;
      reason = `HTTP ${status}${text.trim() ? `: ${excerpt(text, MAX_QUOTED_CHARS)}` : ''}`;
      retryAfterMs = parseRetryAfter(res.headers['retry-after'], clock);
      if (!isRetryableStatus(status)) {
        throw new UploadError(`endpoint ${host} refused chunk ${index}: ${reason}${hintFor(status)}`, { chunk: index, attempts: attempt, status });
      }
    } catch (err) {
      if (err instanceof UploadError || options.signal.aborted) throw err;
      reason = describeConnectionFailure(err, options.timeoutMs);
    }
    if (attempt >= options.maxAttempts) {
      throw new UploadError(`endpoint ${host} unreachable for chunk ${index} after ${attempt} attempts: ${reason}`, {
        chunk: index,
        attempts: attempt,
        ...(status !== undefined ? { status } : {}),
      });
    }
    const waitMs = retryAfterMs !== undefined ? Math.min(retryAfterMs, MAX_RETRY_AFTER_MS) : backoff.next();
    countRetry();
    options.onRetry?.({ chunk: index, attempt, waitMs, reason });
    await sleep(clock, waitMs, options.signal);
  }
}

/** Network errors are retried elsewhere; these statuses say "try again later". */
function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}

function hintFor(status: number): string {
  if (status === 401 || status === 403) return ' (check the access and secret keys)';
  if (status === 413) return ' (lower --chunk-size)';
  return '';
}
