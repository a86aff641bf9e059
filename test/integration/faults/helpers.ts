/**
 * Fault injection for the integration suite (issue 10): `crowsnest` run as a real process (the
 * way a CronJob runs it: nothing else keeps it alive), HTTP endpoints that misbehave on purpose,
 * and a TLS-terminating proxy in front of the API server that can answer for it (a 429 with
 * Retry-After, as a gateway or the API server's priority and fairness would) and counts requests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest, type Agent as HttpsAgent } from 'node:https';
import { Agent } from 'node:https';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunSummary } from '../../../src/inventory/summary.ts';
import { repo } from '../helm.ts';
import { testbed } from '../testbed.ts';

const tempDirs: string[] = [];

/** A fresh temporary directory, removed by {@link removeTempDirs}. */
export async function tempDir(prefix = 'crowsnest-faults-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** Ends what a file's tests left: `crowsnest` processes still running, temporary directories. */
export async function removeTempDirs(): Promise<void> {
  killLeftovers();
  for (const dir of tempDirs.splice(0)) await rm(dir, { recursive: true, force: true });
}

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Whether it had to be killed because it ran longer than allowed (a hang). */
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
}

/** A run that takes longer than this hangs: it is killed (SIGKILL) and fails its test. */
const MAX_RUN_MS = 60_000;
const children = new Set<ChildProcess>();

/** Kills every `crowsnest` this file started that still runs. */
export function killLeftovers(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** `bin/crowsnest <args>` as a child process; `exit` settles when it has ended (or was killed after a minute). */
export function startCrowsnest(args: readonly string[], env: Readonly<Record<string, string>> = {}): { child: ChildProcess; exit: Promise<CliResult> } {
  const started = Date.now();
  const child = spawn(join(repo, 'bin', 'crowsnest'), args, {
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/root', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, MAX_RUN_MS);
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exit = once(child, 'close').then(([code, signal]) => {
    clearTimeout(timer);
    children.delete(child);
    return { code: code as number | null, signal: signal as NodeJS.Signals | null, timedOut, stdout, stderr: timedOut ? `${stderr}\n(killed after ${MAX_RUN_MS} ms: it hung)` : stderr, durationMs: Date.now() - started };
  });
  return { child, exit };
}

/** Runs `bin/crowsnest <args>` to its end. */
export function crowsnest(args: readonly string[], env: Readonly<Record<string, string>> = {}): Promise<CliResult> {
  return startCrowsnest(args, env).exit;
}

/** Every file in `dir`, sorted, and those of them a run left behind half-written. */
export async function filesIn(dir: string): Promise<{ names: string[]; temporary: string[] }> {
  const names = (await readdir(dir).catch(() => [] as string[])).sort();
  return { names, temporary: names.filter((name) => name.endsWith('.tmp')) };
}

/** The run summaries in `dir`, oldest first. */
export async function summariesIn(dir: string): Promise<RunSummary[]> {
  const names = (await readdir(dir)).filter((name) => name.endsWith('.summary.json')).sort();
  return Promise.all(names.map(async (name) => JSON.parse(await readFile(join(dir, name), 'utf8')) as RunSummary));
}

/** How an endpoint answers one request. */
export type EndpointAnswer =
  | number
  | 'reset' // destroys the connection once the request has arrived
  | 'silent' // takes the request and never answers
  | { readonly status: number; readonly body: 'endless' | 'trickle' };

/** An HTTP endpoint on 127.0.0.1 answering request n with `answer(n)`; counts what it sent. */
export class MisbehavingEndpoint {
  readonly requests: { runId: string; chunk: string; answer: EndpointAnswer }[] = [];
  /** Body bytes written in answers. */
  bodyBytesSent = 0;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly answer: (n: number) => EndpointAnswer;
  url = '';

  private constructor(answer: (n: number) => EndpointAnswer) {
    this.answer = answer;
    this.server = createHttpServer((req, res) => this.handle(req, res));
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  static async start(answer: (n: number) => EndpointAnswer): Promise<MisbehavingEndpoint> {
    const endpoint = new MisbehavingEndpoint(answer);
    endpoint.server.listen(0, '127.0.0.1');
    await once(endpoint.server, 'listening');
    endpoint.url = `http://127.0.0.1:${(endpoint.server.address() as { port: number }).port}/v1/inventory`;
    return endpoint;
  }

  /** An endpoint URL where nothing listens (connections are refused). */
  static async refusing(): Promise<string> {
    const endpoint = await MisbehavingEndpoint.start(() => 204);
    await endpoint.stop();
    return endpoint.url;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const answer = this.answer(this.requests.length);
    this.requests.push({ runId: String(req.headers['x-crowsnest-run-id']), chunk: String(req.headers['x-crowsnest-chunk-index']), answer });
    req.resume();
    req.on('end', () => {
      if (answer === 'silent') return;
      if (answer === 'reset') return void req.socket.destroy();
      if (typeof answer === 'number') return void res.writeHead(answer).end(answer === 204 ? undefined : `scripted ${answer}`);
      res.writeHead(answer.status, { 'content-type': 'text/plain' });
      const block = Buffer.alloc(answer.body === 'endless' ? 64 * 1024 : 1, 'x');
      const pump = (): void => {
        while (!res.destroyed) {
          this.bodyBytesSent += block.length;
          if (!res.write(block)) return void res.once('drain', pump);
          if (answer.body === 'trickle') return void setTimeout(pump, 100);
        }
      };
      pump();
    });
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.server.close();
    await once(this.server, 'close').catch(() => {});
  }
}

/** What the proxy does with one request: forward it, or answer it itself. */
export type ProxyAnswer = 'forward' | { readonly status: number; readonly headers?: Readonly<Record<string, string>>; readonly body: unknown };

/**
 * A TLS-terminating proxy in front of the testbed's API server, on 127.0.0.1 with the API
 * server's own serving certificate: clients keep verifying against the cluster CA. Requests with
 * a bearer token are forwarded with it; requests without are forwarded as the testbed admin
 * (client certificates cannot be relayed through TLS termination).
 */
export class ApiServerProxy {
  readonly requests: { method: string; path: string; answeredByProxy: boolean }[] = [];
  rule: (req: { method: string; path: string }) => ProxyAnswer = () => 'forward';
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private adminAgent: HttpsAgent | undefined;
  private tokenAgent: HttpsAgent | undefined;
  port = 0;

  static async start(): Promise<ApiServerProxy> {
    const plane = await testbed();
    const proxy = new ApiServerProxy();
    const [ca, cert, key, adminCert, adminKey] = await Promise.all([
      readFile(plane.pki.caCert), readFile(plane.pki.servingCert), readFile(plane.pki.servingKey),
      readFile(plane.pki.clients.admin.cert), readFile(plane.pki.clients.admin.key),
    ]);
    proxy.adminAgent = new Agent({ ca, cert: adminCert, key: adminKey, keepAlive: true });
    proxy.tokenAgent = new Agent({ ca, keepAlive: true });
    const server = createHttpsServer({ cert, key }, (req, res) => proxy.handle(req, res, plane.host, plane.ports.apiserver));
    server.on('connection', (socket: Socket) => {
      proxy.sockets.add(socket);
      socket.on('close', () => proxy.sockets.delete(socket));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    proxy.server = server as unknown as Server;
    proxy.port = (server.address() as { port: number }).port;
    return proxy;
  }

  private handle(req: IncomingMessage, res: ServerResponse, apiserverHost: string, apiserverPort: number): void {
    const path = req.url ?? '/';
    const answer = this.rule({ method: req.method ?? 'GET', path });
    this.requests.push({ method: req.method ?? 'GET', path, answeredByProxy: answer !== 'forward' });
    if (answer !== 'forward') {
      req.resume();
      res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers }).end(JSON.stringify(answer.body));
      return;
    }
    const headers = { ...req.headers };
    delete headers.host;
    const upstream = httpsRequest({
      host: apiserverHost, port: apiserverPort, method: req.method, path, headers,
      agent: req.headers.authorization ? this.tokenAgent : this.adminAgent,
    }, (answerFromServer) => {
      res.writeHead(answerFromServer.statusCode ?? 502, answerFromServer.headers);
      answerFromServer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  }

  /** A kubeconfig in `dir` for this proxy: the cluster CA, and a bearer `token` when given. */
  async kubeconfig(dir: string, token?: string): Promise<string> {
    const plane = await testbed();
    const path = join(dir, `proxy-kubeconfig-${this.port}`);
    await writeFile(path, JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'proxy',
      clusters: [{ name: 'proxy', cluster: { server: `https://127.0.0.1:${this.port}`, 'certificate-authority-data': (await readFile(plane.pki.caCert)).toString('base64') } }],
      users: [{ name: 'u', user: token ? { token } : {} }],
      contexts: [{ name: 'proxy', context: { cluster: 'proxy', user: 'u' } }],
    }));
    return path;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.server?.close();
    this.adminAgent?.destroy();
    this.tokenAgent?.destroy();
  }
}
