/**
 * An HTTPS server for endpoints that in-cluster callers reach through the operator's Service: it
 * serves the certificate files of a directory (a mounted Secret, reloaded when they rotate, swapped
 * in with `setSecureContext`), is ready once it listens with a certificate, and answers each
 * request with the handler's status code. The prober's peer endpoint and guard's report endpoint
 * are two of them; the request/response helpers below are what their handlers share.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { type Logger, silentLogger } from '../logger-type.ts';
import { CertificateWatcher, listenWithCertificates } from './certificate.ts';

export interface HttpsEndpointOptions {
  /** In logs and the readiness check's name. */
  readonly name: string;
  /** Interface to listen on; default every interface. */
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly certFile: string;
  readonly keyFile: string;
  /** Answers one request and returns the status code it sent; a throw answers 503. */
  readonly handle: (req: IncomingMessage, res: ServerResponse) => Promise<number>;
  /** Called after each request with its status code and duration in seconds (for metrics). */
  readonly onAnswered?: (code: number, seconds: number) => void;
  readonly logger?: Logger;
  /** See CertificateWatcher. */
  readonly certificatePollIntervalMs?: number;
}

const MS_PER_SECOND = 1000;

export class HttpsEndpoint {
  private readonly options: HttpsEndpointOptions;
  private readonly logger: Logger;
  private readonly certificates: CertificateWatcher;
  private server: Server | undefined;

  constructor(options: HttpsEndpointOptions) {
    this.options = options;
    this.logger = options.logger ?? silentLogger;
    this.certificates = new CertificateWatcher({
      certFile: options.certFile,
      keyFile: options.keyFile,
      logger: this.logger,
      ...(options.certificatePollIntervalMs ? { pollIntervalMs: options.certificatePollIntervalMs } : {}),
      onChange: (certificate) => this.server?.setSecureContext({ cert: certificate.cert, key: certificate.key }),
    });
  }

  async start(): Promise<void> {
    const server = createServer({}, (req, res) => void this.serve(req, res));
    server.keepAliveTimeout = 65_000;
    this.server = server;
    try {
      await listenWithCertificates(server, this.certificates, this.options.port, this.options.host);
    } catch (err) {
      this.server = undefined;
      throw err;
    }
    this.logger.info({ port: this.port }, `${this.options.name} listening`);
  }

  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  /** Readiness: listening with a certificate. */
  readinessCheck(): { readonly name: string; check(): void } {
    return {
      name: this.options.name,
      check: () => {
        if (!this.server?.listening) throw new Error(`${this.options.name} not listening`);
        if (!this.certificates.certificate) throw new Error(`no serving certificate loaded from ${this.options.certFile}`);
      },
    };
  }

  async stop(): Promise<void> {
    this.certificates.stop();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    let code: number;
    try {
      code = await this.options.handle(req, res);
    } catch (err) {
      this.logger.error({ err: String(err) }, `${this.options.name} request failed`);
      code = sendJson(res, 503, { message: 'temporarily unavailable; try again' });
    }
    this.options.onAnswered?.(code, (performance.now() - started) / MS_PER_SECOND);
  }
}

/** Sends `body` as JSON with `status` (and extra headers); returns the status. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): number {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
  return status;
}

/** The request body as text; undefined when it exceeds `maxBytes` (a declared length over it is not read at all). */
export async function readBody(req: IncomingMessage, maxBytes: number): Promise<string | undefined> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The bearer token of the request, if it carries one. */
export function bearerToken(req: IncomingMessage): string | undefined {
  return /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
}
