/**
 * k8s-collector's login exchange: the keys never travel with the snapshot. The collector POSTs
 * `{"accessKey": …, "secretKey": …}` (JSON, uncompressed) to a login URL, gets
 * `{"access_token", "expires_in", "token_type"}` back (any 2xx), and sends every chunk with
 * `Authorization: Bearer <access_token>`.
 *
 * Where it logs in, as the tool did:
 * - `<endpoint>/sink/login` (the version whose `{"objects":[…]}` chunks to `<endpoint>/sink/send`
 *   we keep, commit 54c4425);
 * - `<loginEndpoint>/account/access_keys/login` when `loginEndpoint` is set (later versions,
 *   whose login service lived apart from the data endpoint).
 *
 * Unlike the tool (one login per run, `expires_in` ignored), a token is kept for as long as it
 * is valid — through every chunk, and through the kept snapshots a run re-sends before its own —
 * and renewed once when the endpoint answers 401 anyway (see `upload.ts`). It lives in memory
 * only: a bearer token is a credential, and the report directory is no place for one.
 */
import { postWithRetries, underBase, UploadError, type RequestPolicy } from './endpoint-request.ts';

/** Path of the login under `endpoint` (commit 54c4425). */
export const SINK_LOGIN_PATH = '/sink/login';
/** Path of the login under `loginEndpoint` (later versions). */
export const ACCOUNT_LOGIN_PATH = '/account/access_keys/login';

/** The login URL the tool used for this configuration. */
export function loginUrlFor(endpoint: string, loginEndpoint?: string): string {
  return loginEndpoint ? underBase(loginEndpoint, ACCOUNT_LOGIN_PATH) : underBase(endpoint, SINK_LOGIN_PATH);
}

/** The keys and the login URL of one endpoint. */
export interface LoginCredentials {
  readonly loginUrl: string;
  readonly accessKey: string;
  readonly secretKey: string;
}

/**
 * A token is renewed this long before `expires_in` runs out, so that a request never arrives
 * with one that expired on the way: a tenth of its lifetime, at most 30 s.
 */
const MAX_RENEW_EARLY_MS = 30_000;
/** Bytes of a login answer read: a token answer is small; a bigger one is not one. */
const MAX_LOGIN_ANSWER_BYTES = 64 * 1024;

interface CachedToken {
  readonly token: string;
  /** When to log in again, on the policy's clock; `undefined`: the answer said no lifetime. */
  readonly renewAtMs: number | undefined;
}

/** Logs in when needed and keeps the token; one per process and endpoint. */
export class LoginSession {
  readonly loginUrl: string;
  private readonly accessKey: string;
  private readonly secretKey: string;
  private cached: CachedToken | undefined;
  /** Logins made, for the run summary and tests. */
  logins = 0;

  constructor(credentials: LoginCredentials) {
    this.loginUrl = credentials.loginUrl;
    this.accessKey = credentials.accessKey;
    this.secretKey = credentials.secretKey;
  }

  /**
   * A valid token: the kept one while its lifetime lasts, else a new login.
   * @param chunk the chunk that needs it (for errors)
   * @throws UploadError when the login is refused, unreachable, or answers without a token
   */
  token(policy: RequestPolicy, chunk: number): Promise<string> {
    const cached = this.cached;
    if (cached && (cached.renewAtMs === undefined || policy.clock.now() < cached.renewAtMs)) return Promise.resolve(cached.token);
    return this.login(policy, chunk);
  }

  /** After the endpoint refused `stale` (401): forgets it and logs in again. */
  renew(stale: string, policy: RequestPolicy, chunk: number): Promise<string> {
    if (this.cached?.token === stale) this.cached = undefined;
    return this.token(policy, chunk);
  }

  private async login(policy: RequestPolicy, chunk: number): Promise<string> {
    this.cached = undefined;
    const host = new URL(this.loginUrl).host;
    const startedMs = policy.clock.now();
    const answer = await postWithRetries(
      {
        url: this.loginUrl,
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: Buffer.from(JSON.stringify({ accessKey: this.accessKey, secretKey: this.secretKey })),
        chunk,
        readSuccessBytes: MAX_LOGIN_ANSWER_BYTES,
        unreachable: (attempts, reason) => `login at ${host} unreachable after ${attempts} attempts: ${reason}`,
      },
      policy,
    );
    this.logins++;
    const fail = (what: string): never => {
      throw new UploadError(`login at ${host} ${what}`, { chunk, attempts: answer.attempts, status: answer.status });
    };
    if (answer.status < 200 || answer.status >= 300) {
      const hint = answer.status === 401 || answer.status === 403 ? ' (check the access and secret keys)' : answer.status === 404 ? ` (is ${this.loginUrl} the login URL? see --login-endpoint)` : '';
      fail(`refused: ${answer.reason}${hint}`);
    }
    if (answer.truncated) fail(`answered ${answer.status} with more than ${MAX_LOGIN_ANSWER_BYTES} bytes: not a token answer`);
    let body: unknown;
    try {
      body = JSON.parse(answer.text);
    } catch {
      fail(`answered ${answer.status} without JSON ({"access_token", "expires_in", "token_type"} expected)`);
    }
    const fields = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const token = fields['access_token'];
    if (typeof token !== 'string' || token === '') fail(`answered ${answer.status} without an access_token`);
    this.cached = { token: token as string, renewAtMs: renewAt(fields['expires_in'], startedMs) };
    return token as string;
  }
}

/**
 * When a token issued at `issuedMs` with `expires_in` seconds should be renewed. Its lifetime is
 * counted from when the login was sent, not answered: the server's clock started no later. An
 * absent or non-positive `expires_in` says nothing: the token is kept until the endpoint refuses it.
 */
function renewAt(expiresIn: unknown, issuedMs: number): number | undefined {
  const seconds = typeof expiresIn === 'string' ? Number(expiresIn) : expiresIn;
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0) return undefined;
  const lifetimeMs = seconds * 1000;
  return issuedMs + lifetimeMs - Math.min(MAX_RENEW_EARLY_MS, lifetimeMs / 10);
}
