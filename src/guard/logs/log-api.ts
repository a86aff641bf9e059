/**
 * The log API for people, served by the log agent on each node (HTTPS): the log of a pod on this
 * node, read from the kubelet's files, for callers allowed to read it.
 *
 *   GET /v1/namespaces/<namespace>/pods/<pod>/log?container=<c>&tailLines=<n>&previous=true
 *   Authorization: Bearer <the caller's Kubernetes token, as kubectl sends it>
 *
 * Every request is authorized by the API server, not by us: a TokenReview of the caller's token
 * and a SubjectAccessReview for `get pods/log` on that pod in that namespace (the permission
 * `kubectl logs` needs, and the one logaccess grants), see src/kube/auth/subject-access-review.ts.
 * 401 without a valid token, 403 naming what the user may not do, 503 when the API server cannot
 * be asked — never the log. The policy framework's log API had no authentication at all.
 *
 * Answers: the container's lines as `kubectl logs` prints them (text only, partial records
 * joined), of its current run or, with `previous=true`, the run before; rotated and compressed
 * files included, oldest first. At most `maxBytes` (the first ones; with tailLines, the last).
 */
import { open, readdir, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { AccessDecision, ResourceAttributes } from '../../kube/auth/subject-access-review.ts';
import type { Logger } from '../../kube/logger-type.ts';
import { LineJoiner, parseCriRecord } from './cri.ts';
import { listLogFiles, readContent, type LogFile } from './files.ts';

export interface LogApiOptions {
  /** The kubelet's pod log directory as mounted. */
  readonly podLogsDir: string;
  readonly node: string;
  readonly access: { check(token: string, attributes: ResourceAttributes): Promise<AccessDecision> };
  readonly logger: Logger;
  /** Most bytes of log in one answer. Default 10 MiB. */
  readonly maxBytes?: number;
}

const PATH = /^\/v1\/namespaces\/([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/pods\/([a-z0-9]([-.a-z0-9]*[a-z0-9])?)\/log$/;
const CONTAINER = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** A line of an answer is never cut below this. */
const MAX_LINE_BYTES = 1024 * 1024;

type Answer = { readonly status: number; readonly body: string };

/** The request handler (for an HTTPS server of node:https). */
export function logApiHandler(options: LogApiOptions): (request: IncomingMessage, response: ServerResponse) => void {
  return (request, response) => {
    answer(request, options).then(
      (result) => {
        response.writeHead(result.status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).end(result.body);
      },
      (err: unknown) => {
        options.logger.warn({ err: (err as Error).message, path: request.url }, 'log API request failed');
        if (!response.headersSent) response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('internal error\n');
      },
    );
  };
}

async function answer(request: IncomingMessage, options: LogApiOptions): Promise<Answer> {
  const url = new URL(request.url ?? '/', 'https://log-api');
  if (request.method !== 'GET') return { status: 405, body: 'only GET\n' };
  const match = PATH.exec(url.pathname);
  if (!match) return { status: 404, body: 'not found: GET /v1/namespaces/<namespace>/pods/<pod>/log\n' };
  const namespace = match[1]!;
  const pod = match[3]!;
  const token = /^Bearer (\S+)$/.exec(request.headers.authorization ?? '')?.[1];
  if (!token) return { status: 401, body: 'a bearer token is required (Authorization: Bearer <token>)\n' };
  let decision: AccessDecision;
  try {
    decision = await options.access.check(token, { namespace, verb: 'get', resource: 'pods', subresource: 'log', name: pod });
  } catch (err) {
    options.logger.warn({ err: (err as Error).message }, 'cannot ask the API server whether a log may be read');
    return { status: 503, body: 'cannot ask the API server whether you may read this log; try again\n' };
  }
  if (!decision.allowed) return { status: decision.status, body: `${decision.reason}\n` };
  options.logger.info({ user: decision.user.username, namespace, pod, container: url.searchParams.get('container') ?? undefined }, 'log read');

  const tailText = url.searchParams.get('tailLines');
  if (tailText !== null && !/^\d{1,9}$/.test(tailText)) return { status: 400, body: 'tailLines must be a whole number\n' };
  const container = url.searchParams.get('container');
  if (container !== null && !CONTAINER.test(container)) return { status: 400, body: 'container must be a container name\n' };
  const podDir = await findPodDir(options.podLogsDir, namespace, pod);
  if (!podDir) return { status: 404, body: `no log of pod ${namespace}/${pod} on node ${options.node}: it runs elsewhere, or not at all\n` };
  const containers = (await readdir(podDir, { withFileTypes: true })).filter((entry) => entry.isDirectory()).map((entry) => entry.name).sort();
  const chosen = container ?? (containers.length === 1 ? containers[0] : undefined);
  if (!chosen) return { status: 400, body: `a container name must be given for pod ${namespace}/${pod}, one of: ${containers.join(', ')}\n` };
  if (!containers.includes(chosen)) return { status: 404, body: `pod ${namespace}/${pod} has no container ${chosen} on node ${options.node}\n` };

  const dir = join(podDir, chosen);
  const files = await listLogFiles(dir);
  const runs = [...new Set(files.map((file) => file.run))];
  const run = url.searchParams.get('previous') === 'true' ? runs.at(-2) : runs.at(-1);
  if (run === undefined) return { status: 400, body: `container ${chosen} of pod ${namespace}/${pod} has no ${url.searchParams.get('previous') === 'true' ? 'previous run' : 'log'}\n` };
  const text = await readRun(dir, files.filter((file) => file.run === run), { maxBytes: options.maxBytes ?? 10 * 1024 * 1024, ...(tailText !== null ? { tailLines: Number(tailText) } : {}) });
  return { status: 200, body: text };
}

/** The pod's directory; of several pods of that name over time, the newest. */
async function findPodDir(root: string, namespace: string, pod: string): Promise<string | undefined> {
  const prefix = `${namespace}_${pod}_`;
  let newest: { dir: string; mtimeMs: number } | undefined;
  for (const name of await readdir(root)) {
    if (!name.startsWith(prefix) || name.slice(prefix.length).includes('_')) continue;
    const dir = join(root, name);
    const mtimeMs = (await stat(dir)).mtimeMs;
    if (!newest || mtimeMs > newest.mtimeMs) newest = { dir, mtimeMs };
  }
  return newest?.dir;
}

/** One run's lines, oldest first: the first `maxBytes`, or the last `tailLines` within `maxBytes`. */
async function readRun(dir: string, files: readonly LogFile[], limits: { readonly maxBytes: number; readonly tailLines?: number }): Promise<string> {
  const joiner = new LineJoiner(MAX_LINE_BYTES);
  const kept: string[] = [];
  let bytes = 0;
  let full = false;
  const onLine = (line: Buffer): void => {
    if (limits.tailLines !== undefined) {
      kept.push(line.toString('utf8'));
      bytes += line.length + 1;
      while (kept.length > limits.tailLines || (bytes > limits.maxBytes && kept.length > 1)) bytes -= Buffer.byteLength(kept.shift()!) + 1;
      return;
    }
    if (bytes + line.length + 1 > limits.maxBytes) {
      full = true;
      return;
    }
    kept.push(line.toString('utf8'));
    bytes += line.length + 1;
  };
  for (const file of files) {
    if (full) break;
    const content = file.gzip ? await readContent(dir, file) : await readWhole(join(dir, file.name));
    let start = 0;
    for (let newline = content.indexOf(10, start); newline !== -1 && !full; newline = content.indexOf(10, start)) {
      const record = parseCriRecord(content.subarray(start, newline));
      start = newline + 1;
      if (!record) continue;
      const line = joiner.push(record);
      if (line) onLine(line);
    }
  }
  return kept.length > 0 ? `${kept.join('\n')}\n` : '';
}

async function readWhole(path: string): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}
