/**
 * Sends a finished snapshot to an HTTP endpoint in k8s-collector's wire format (commit 54c4425):
 * `POST <endpoint>/sink/send` of `{"objects":[…]}`, `Content-Encoding: gzip`, with
 * `Authorization: Bearer <token>` from the login exchange (`endpoint-login.ts`) when keys are
 * configured. The keys themselves are only ever sent to the login URL.
 *
 * Success is 204, the tool's contract; any other 2xx counts as delivered too. HTTP says a 2xx
 * means the request was received and accepted, a receiver written with a web framework's
 * defaults answers 200, and treating that as a failure would keep the snapshot and send it again
 * every run, forever, to a receiver that already has it. (The tool itself would fail such a run.)
 * 3xx is not followed: the chunk is refused with the status.
 *
 * A 401 is answered with one new login and one more try of the same chunk (the token may have
 * been revoked, or the receiver's clock be ahead); a second 401 fails the upload.
 *
 * The snapshot is read back from its spool file (gzip NDJSON in the report directory) and cut
 * into chunks by a byte budget, so memory holds one chunk whatever the cluster size. Every chunk
 * carries the run id, its index and whether it is the last, so a receiver can assemble a run
 * and discard one that never got its last chunk: `X-Crowsnest-Cluster-Id`,
 * `X-Crowsnest-Run-Id`, `X-Crowsnest-Chunk-Index` (from 0), `X-Crowsnest-Chunk-Final: true|false`
 * (a receiver built for the tool ignores them).
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream';
import { promisify } from 'node:util';
import { createGunzip, gzip as gzipCallback } from 'node:zlib';
import { realClock, type Clock } from '../kube/clock.ts';
import type { LoginSession } from './endpoint-login.ts';
import { postWithRetries, underBase, UploadError, type RequestPolicy } from './endpoint-request.ts';

export { UploadError };

/** Path of the chunks under the endpoint (commit 54c4425). */
export const SINK_SEND_PATH = '/sink/send';

const gzip = promisify(gzipCallback);

export interface EndpointOptions {
  /** The endpoint: chunks go to `<url>/sink/send`. */
  readonly url: string;
  /**
   * Logs in with the keys and keeps the token (share one across the uploads of a process, so
   * they share its token); without one, chunks are sent without `Authorization`.
   */
  readonly session?: LoginSession;
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

/** Uploads the gzip NDJSON snapshot at `path`. */
export async function uploadSnapshot(path: string, options: EndpointOptions): Promise<UploadResult> {
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
  const policy: RequestPolicy = {
    timeoutMs: options.timeoutMs,
    maxAttempts: options.maxAttempts,
    retryInitialMs: options.retryInitialMs,
    userAgent: options.userAgent,
    signal: options.signal,
    clock: options.clock ?? realClock,
    ...(options.onRetry ? { onRetry: options.onRetry } : {}),
    countRetry: () => retries++,
  };

  const send = async (final: boolean): Promise<void> => {
    const body = `{"objects":[${chunk.join(',')}]}`;
    const sent = await postChunk(body, index, final, options, policy);
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

async function postChunk(body: string, index: number, final: boolean, options: EndpointOptions, policy: RequestPolicy): Promise<number> {
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
    accept: 'application/json',
    'x-crowsnest-cluster-id': options.clusterId,
    'x-crowsnest-run-id': options.runId,
    'x-crowsnest-chunk-index': String(index),
    'x-crowsnest-chunk-final': String(final),
  };
  if (encoding) headers['content-encoding'] = encoding;

  const url = underBase(options.url, SINK_SEND_PATH);
  const host = new URL(url).host;
  const session = options.session;
  let token = session ? await session.token(policy, index) : undefined;
  for (let renewed = false; ; renewed = true) {
    const answer = await postWithRetries(
      {
        url,
        headers: token ? { ...headers, authorization: `Bearer ${token}` } : headers,
        body: payload,
        chunk: index,
        readSuccessBytes: 0,
        unreachable: (attempts, reason) => `endpoint ${host} unreachable for chunk ${index} after ${attempts} attempts: ${reason}`,
      },
      policy,
    );
    if (answer.status >= 200 && answer.status < 300) return payload.length;
    if (answer.status === 401 && session && token && !renewed) {
      token = await session.renew(token, policy, index);
      continue;
    }
    throw new UploadError(`endpoint ${host} refused chunk ${index}: ${answer.reason}${hintFor(answer.status, session !== undefined, renewed)}`, {
      chunk: index,
      attempts: answer.attempts,
      status: answer.status,
    });
  }
}

function hintFor(status: number, loggedIn: boolean, renewed: boolean): string {
  if (status === 401 && renewed) return ' (refused a token fresh from the login: the login and the endpoint do not agree; check --endpoint and --login-endpoint)';
  if (status === 401 && !loggedIn) return ' (it wants credentials: set CROWSNEST_ACCESS_KEY and CROWSNEST_SECRET_KEY)';
  if (status === 401 || status === 403) return ' (check the access and secret keys)';
  if (status === 413) return ' (lower --chunk-size)';
  return '';
}
