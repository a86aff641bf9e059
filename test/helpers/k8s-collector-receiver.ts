/**
 * A receiver built for k8s-collector, to test `crowsnest inventory` against: it speaks the
 * protocol exactly as the tool's client (collector/collector.go at commit 54c4425, and the later
 * login of commit c761ec8) expects it:
 *
 * - `POST <base>/sink/login` and `POST <loginBase>/account/access_keys/login`: a JSON body
 *   `{"accessKey", "secretKey"}`; right keys → 200 `{"access_token", "expires_in",
 *   "token_type": "Bearer"}`, wrong keys → 401.
 * - `POST <base>/sink/send`: `Authorization: Bearer <token>` with a token it issued that has not
 *   expired (on its clock), else 401; a JSON body `{"objects": […]}`, gzip when
 *   `Content-Encoding: gzip` says so; answered 204 (the tool's `ExpectedStatus`).
 *
 * Both bases are paths on one server: `url` (the endpoint) and `loginUrl` (a loginEndpoint).
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export interface ReceivedChunk {
  readonly headers: IncomingHttpHeaders;
  readonly token: string;
  readonly objects: Record<string, unknown>[];
  /** The body as JSON text (gunzipped). */
  readonly text: string;
}

export interface Login {
  /** `sink` = `<base>/sink/login`, `account` = `<loginBase>/account/access_keys/login`. */
  readonly at: 'sink' | 'account';
  readonly headers: IncomingHttpHeaders;
  readonly body: unknown;
  /** The status answered. */
  readonly status: number;
}

export interface ReceiverOptions {
  readonly accessKey: string;
  readonly secretKey: string;
  /** `expires_in` of the tokens it issues, in seconds. Default 3600. */
  readonly expiresInSeconds?: number;
  /** Its clock, in ms (token expiry); default Date.now. */
  readonly now?: () => number;
}

export class K8sCollectorReceiver {
  readonly logins: Login[] = [];
  readonly chunks: ReceivedChunk[] = [];
  /** Sends refused (401), for tests. */
  readonly refused: { readonly token: string | undefined }[] = [];
  /** Answer to a valid send; the tool's contract is 204. */
  sendStatus = 204;
  /** When false, every send is refused with 401, whatever its token. */
  acceptTokens = true;
  /** When false, both logins answer 503 (a login service that is down). */
  loginUp = true;
  /** Endpoint base (`--endpoint`) and login base (`--login-endpoint`). */
  url = '';
  loginUrl = '';
  private readonly tokens = new Map<string, number>();
  private readonly options: ReceiverOptions;
  private server: Server | undefined;

  constructor(options: ReceiverOptions) {
    this.options = options;
  }

  /** Forgets every token it issued: the next send with one gets 401. */
  revokeTokens(): void {
    this.tokens.clear();
  }

  async start(host = '127.0.0.1'): Promise<this> {
    const server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (part: Buffer) => parts.push(part));
      req.on('end', () => {
        const raw = Buffer.concat(parts);
        const text = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
        const path = new URL(req.url ?? '/', 'http://receiver').pathname;
        const at = req.method !== 'POST' ? undefined : path === '/collector/sink/login' ? 'sink' : path === '/auth/account/access_keys/login' ? 'account' : undefined;
        if (at) return void this.login(at, req.headers, text, res);
        if (req.method === 'POST' && path === '/collector/sink/send') return void this.send(req.headers, text, res);
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      });
    });
    server.listen(0, host);
    await once(server, 'listening');
    this.server = server;
    const base = `http://${host.includes(':') ? `[${host}]` : host}:${(server.address() as AddressInfo).port}`;
    this.url = `${base}/collector`;
    this.loginUrl = `${base}/auth`;
    return this;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  private login(at: Login['at'], headers: IncomingHttpHeaders, text: string, res: import('node:http').ServerResponse): void {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    const answer = (status: number, json: unknown): void => {
      this.logins.push({ at, headers, body, status });
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(json));
    };
    if (!this.loginUp) {
      answer(503, { error: 'login service unavailable' });
      return;
    }
    const keys = body as { accessKey?: unknown; secretKey?: unknown };
    if (keys?.accessKey !== this.options.accessKey || keys?.secretKey !== this.options.secretKey) {
      answer(401, { error: 'invalid access or secret key' });
      return;
    }
    const token = randomBytes(16).toString('hex');
    const expiresIn = this.options.expiresInSeconds ?? 3600;
    this.tokens.set(token, this.now() + expiresIn * 1000);
    answer(200, { access_token: token, expires_in: expiresIn, token_type: 'Bearer' });
  }

  private send(headers: IncomingHttpHeaders, text: string, res: import('node:http').ServerResponse): void {
    const token = /^Bearer (.+)$/.exec(headers.authorization ?? '')?.[1];
    const expiresAt = token === undefined ? undefined : this.tokens.get(token);
    if (!this.acceptTokens || token === undefined || expiresAt === undefined || this.now() >= expiresAt) {
      this.refused.push({ token });
      return void res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid or expired token"}');
    }
    const objects = (JSON.parse(text) as { objects: Record<string, unknown>[] }).objects;
    this.chunks.push({ headers, token, objects, text });
    res.writeHead(this.sendStatus).end();
  }
}
