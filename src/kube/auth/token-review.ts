/**
 * Who is asking one of our HTTPS endpoints: a projected ServiceAccount token, checked by the API
 * server (TokenReview, with the endpoint's own audience), names the pod it was issued for
 * (`authentication.kubernetes.io/pod-name` and `pod-uid` in the user's extra). No RBAC in user
 * namespaces is involved; the operator needs only `create tokenreviews`.
 *
 * Answers are cached by the token's SHA-256 (never the token itself): an authenticated token for a
 * minute or until its `exp`, whichever is first; a refused one for five seconds, so a client
 * retrying a bad token does not turn into a TokenReview per request. Identical reviews in flight
 * are shared.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../clock.ts';
import type { KubeRequester } from '../objects/writes.ts';
import { TtlCache } from './ttl-cache.ts';

export interface PodIdentity {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly podName: string;
  readonly podUid: string;
  /** The node the pod was bound to when the token was issued (the token's node claim, Kubernetes 1.32+). */
  readonly nodeName?: string;
}

/** Why a token is refused (the endpoint answers 401 with it). */
export type Refusal = 'unauthenticated' | 'wrong_audience' | 'not_a_pod_token';

export type ReviewResult = { readonly ok: true; readonly identity: PodIdentity } | { readonly ok: false; readonly refusal: Refusal };

export interface TokenReviewerOptions {
  readonly client: KubeRequester;
  readonly clock: Clock;
  /** The audience the endpoint's tokens are issued for; a token for any other (the API server's) is refused. */
  readonly audience: string;
  /** Default 60 s. */
  readonly positiveTtlMs?: number;
  /** Default 5 s. */
  readonly negativeTtlMs?: number;
  /** Default 10 000. */
  readonly maxEntries?: number;
  /** Per review. Default 5 s. */
  readonly timeoutMs?: number;
}

interface TokenReviewStatus {
  readonly authenticated?: boolean;
  readonly audiences?: readonly string[];
  readonly error?: string;
  readonly user?: { readonly username?: string; readonly extra?: Readonly<Record<string, readonly string[]>> };
}

const POD_NAME_EXTRA = 'authentication.kubernetes.io/pod-name';
const POD_UID_EXTRA = 'authentication.kubernetes.io/pod-uid';
const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';
const SERVICE_ACCOUNT_USER = /^system:serviceaccount:([^:]+):([^:]+)$/;

export class TokenReviewer {
  private readonly options: TokenReviewerOptions;
  private readonly cache: TtlCache<ReviewResult>;
  private readonly inFlight = new Map<string, Promise<ReviewResult>>();
  /** Reviews sent to the API server (not answered from the cache), for tests and metrics. */
  reviewsSent = 0;

  constructor(options: TokenReviewerOptions) {
    this.options = options;
    this.cache = new TtlCache(options.maxEntries ?? 10_000);
  }

  /** The pod the token was issued for; rejects only when the API server cannot be asked. */
  async review(token: string): Promise<ReviewResult> {
    const key = createHash('sha256').update(token).digest('hex');
    const now = this.options.clock.now();
    const cached = this.cache.get(key, now);
    if (cached) return cached;
    const pending = this.inFlight.get(key);
    if (pending) return await pending;
    const work = this.ask(token).then((result) => {
      this.remember(key, result, token);
      return result;
    }).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, work);
    return await work;
  }

  private async ask(token: string): Promise<ReviewResult> {
    this.reviewsSent++;
    const audience = this.options.audience;
    const answer = await this.options.client.json<{ status?: TokenReviewStatus }>('/apis/authentication.k8s.io/v1/tokenreviews', {
      method: 'POST',
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [audience] } },
      timeoutMs: this.options.timeoutMs ?? 5_000,
    });
    const status = answer.status ?? {};
    if (!status.authenticated) return { ok: false, refusal: 'unauthenticated' };
    if (!(status.audiences ?? []).includes(audience)) return { ok: false, refusal: 'wrong_audience' };
    const user = SERVICE_ACCOUNT_USER.exec(status.user?.username ?? '');
    const podName = status.user?.extra?.[POD_NAME_EXTRA]?.[0];
    const podUid = status.user?.extra?.[POD_UID_EXTRA]?.[0];
    if (!user || !podName || !podUid) return { ok: false, refusal: 'not_a_pod_token' };
    const nodeName = status.user?.extra?.[NODE_NAME_EXTRA]?.[0];
    return { ok: true, identity: { namespace: user[1]!, serviceAccount: user[2]!, podName, podUid, ...(nodeName ? { nodeName } : {}) } };
  }

  private remember(key: string, result: ReviewResult, token: string): void {
    const now = this.options.clock.now();
    let ttl = result.ok ? (this.options.positiveTtlMs ?? 60_000) : (this.options.negativeTtlMs ?? 5_000);
    const expiry = result.ok ? tokenExpiryMs(token) : undefined;
    if (expiry !== undefined) ttl = Math.min(ttl, expiry - now);
    if (ttl <= 0) return;
    this.cache.set(key, result, now + ttl, now);
  }
}

/** The `exp` claim of a JWT, in milliseconds, read without verifying (the API server verified it). */
export function tokenExpiryMs(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (!payload) return undefined;
  try {
    const exp = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
