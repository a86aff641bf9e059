/**
 * An in-pod agent's HTTPS client for one of the operator's endpoints (the prober's peer endpoint,
 * guard's health endpoint): JSON POSTs on a kept-alive connection, trusting only the CA bundle the
 * webhook injected, authenticated with the pod's projected ServiceAccount token — read from its
 * file on every request, since the kubelet rotates it.
 *
 * It never throws: a request ends in an answer (any status) or in a {@link EndpointFailure} that
 * says whether the operator could not be reached, could not be trusted, or the token could not be
 * read. What a status means is the caller's business.
 */
import { readFile } from 'node:fs/promises';
import { type ClientResponse, HttpConnection, openSocket } from './http.ts';

export interface OperatorEndpointOptions {
  /** `https://host:port` of the endpoint. */
  readonly url: string;
  /** PEM bundle trusted for it. */
  readonly ca: string;
  /** The projected ServiceAccount token's file. */
  readonly tokenFile: string;
  /** Per request, connecting included, in milliseconds. Default 5 000. */
  readonly requestTimeoutMs?: number;
}

/** Why a request got no answer. */
export interface EndpointFailure {
  readonly ok: false;
  /** `untrusted`: TLS said the server is not one the CA vouches for; `unavailable`: no answer; `token`: the token file could not be read. */
  readonly failure: 'untrusted' | 'unavailable' | 'token';
  readonly message: string;
}

export interface EndpointAnswer {
  readonly ok: true;
  readonly response: ClientResponse;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;

/** TLS errors that mean "this is not the server the CA we were given vouches for". */
const UNTRUSTED_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_SIGNATURE_FAILURE', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);

export class OperatorEndpoint {
  private readonly options: OperatorEndpointOptions;
  private readonly target: { readonly host: string; readonly port: number; readonly hostHeader: string };
  private connection: HttpConnection | undefined;

  constructor(options: OperatorEndpointOptions) {
    const url = new URL(options.url);
    if (url.protocol !== 'https:') throw new Error(`the operator's endpoint must be https: ${options.url}`);
    this.options = options;
    this.target = { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || 443), hostHeader: url.host };
  }

  /** POSTs `body` as JSON to `path`; never throws. */
  async post(path: string, body: unknown): Promise<EndpointAnswer | EndpointFailure> {
    let token: string;
    try {
      token = (await readFile(this.options.tokenFile, 'utf8')).trim();
    } catch (err) {
      return { ok: false, failure: 'token', message: `cannot read the ServiceAccount token at ${this.options.tokenFile}: ${(err as Error).message}` };
    }
    try {
      const connection = await this.connected();
      const response = await connection.request({
        method: 'POST', path, host: this.target.hostHeader,
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(body),
      }, performance.now() + this.timeoutMs);
      return { ok: true, response };
    } catch (err) {
      this.disconnect();
      const code = (err as { code?: string }).code ?? '';
      if (UNTRUSTED_CODES.has(code)) {
        return {
          ok: false, failure: 'untrusted',
          message: `the operator's endpoint presented a certificate the CA this pod was given does not vouch for (${code}); if the operator's CA was rotated, restart this pod to get the current one`,
        };
      }
      return { ok: false, failure: 'unavailable', message: `the operator's endpoint is unreachable: ${(err as Error).message}` };
    }
  }

  /** Closes the kept-alive connection: the next request opens a new one (and may reach another replica). */
  disconnect(): void {
    this.connection?.close();
    this.connection = undefined;
  }

  private async connected(): Promise<HttpConnection> {
    if (this.connection?.usable) return this.connection;
    this.connection?.close();
    const socket = await openSocket({ host: this.target.host, port: this.target.port, tls: { ca: this.options.ca } }, performance.now() + this.timeoutMs);
    this.connection = new HttpConnection(socket);
    return this.connection;
  }

  private get timeoutMs(): number {
    return this.options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  }
}
