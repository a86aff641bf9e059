/**
 * May this person do that? For endpoints that serve people (guard's log API) rather than pods:
 * the caller's bearer token is reviewed as the API server would (a TokenReview without an
 * audience: tokens for the API server itself, as kubectl sends them), and the user it names is
 * asked about through a SubjectAccessReview with its username, uid, groups and extra — the same
 * decision RBAC (or any authorizer the cluster runs) would make for the user's own request.
 *
 * Decisions are cached by the token's SHA-256 and the attributes asked about for ten seconds (a
 * refusal for five), so a client paging through a log does not cost two reviews per request; a
 * RoleBinding removed takes effect within that time. Nothing is allowed when the API server
 * cannot be asked: the caller gets an error, never access.
 *
 * The endpoint's ServiceAccount needs `create` on tokenreviews and subjectaccessreviews (the
 * built-in ClusterRole system:auth-delegator).
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../clock.ts';
import type { KubeRequester } from '../objects/writes.ts';
import { TtlCache } from './ttl-cache.ts';

/** A user as the API server authenticated it. */
export interface UserInfo {
  readonly username: string;
  readonly uid?: string;
  readonly groups: readonly string[];
  readonly extra: Readonly<Record<string, readonly string[]>>;
}

/** What is asked: a resource (and subresource) verb in a namespace, on one object. */
export interface ResourceAttributes {
  readonly namespace: string;
  readonly verb: string;
  readonly group?: string;
  readonly resource: string;
  readonly subresource?: string;
  readonly name?: string;
}

export type AccessDecision =
  | { readonly allowed: true; readonly user: UserInfo }
  | { readonly allowed: false; readonly status: 401 | 403; readonly reason: string; readonly user?: UserInfo };

export interface AccessReviewerOptions {
  readonly client: KubeRequester;
  readonly clock: Clock;
  /** Default 10 s. */
  readonly allowedTtlMs?: number;
  /** Default 5 s. */
  readonly deniedTtlMs?: number;
  /** Default 10 000. */
  readonly maxEntries?: number;
  /** Per review. Default 5 s. */
  readonly timeoutMs?: number;
}

export class AccessReviewer {
  private readonly options: AccessReviewerOptions;
  private readonly cache: TtlCache<AccessDecision>;
  /** Reviews sent to the API server (TokenReviews and SubjectAccessReviews), for tests and metrics. */
  reviewsSent = 0;

  constructor(options: AccessReviewerOptions) {
    this.options = options;
    this.cache = new TtlCache(options.maxEntries ?? 10_000);
  }

  /**
   * Whether the holder of `token` may do `attributes`; 401 when the token is not valid, 403 when
   * its user may not. Rejects only when the API server cannot be asked.
   */
  async check(token: string, attributes: ResourceAttributes): Promise<AccessDecision> {
    const key = createHash('sha256').update(token).update('\0').update(JSON.stringify(attributes)).digest('hex');
    const now = this.options.clock.now();
    const cached = this.cache.get(key, now);
    if (cached) return cached;
    const decision = await this.decide(token, attributes);
    const ttl = decision.allowed ? (this.options.allowedTtlMs ?? 10_000) : (this.options.deniedTtlMs ?? 5_000);
    this.cache.set(key, decision, this.options.clock.now() + ttl, this.options.clock.now());
    return decision;
  }

  private async decide(token: string, attributes: ResourceAttributes): Promise<AccessDecision> {
    const timeoutMs = this.options.timeoutMs ?? 5_000;
    this.reviewsSent++;
    const review = await this.options.client.json<{ status?: { authenticated?: boolean; error?: string; user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> } } }>(
      '/apis/authentication.k8s.io/v1/tokenreviews',
      { method: 'POST', body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } }, timeoutMs },
    );
    const status = review.status ?? {};
    if (!status.authenticated || !status.user?.username) return { allowed: false, status: 401, reason: 'the token is not valid for this cluster' };
    const user: UserInfo = { username: status.user.username, ...(status.user.uid ? { uid: status.user.uid } : {}), groups: status.user.groups ?? [], extra: status.user.extra ?? {} };
    this.reviewsSent++;
    const access = await this.options.client.json<{ status?: { allowed?: boolean; denied?: boolean; reason?: string } }>(
      '/apis/authorization.k8s.io/v1/subjectaccessreviews',
      {
        method: 'POST',
        body: {
          apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
          spec: {
            user: user.username, ...(user.uid ? { uid: user.uid } : {}), groups: user.groups, extra: user.extra,
            resourceAttributes: { namespace: attributes.namespace, verb: attributes.verb, group: attributes.group ?? '', resource: attributes.resource, ...(attributes.subresource ? { subresource: attributes.subresource } : {}), ...(attributes.name ? { name: attributes.name } : {}) },
          },
        },
        timeoutMs,
      },
    );
    if (access.status?.allowed === true && access.status.denied !== true) return { allowed: true, user };
    const what = `${attributes.verb} ${attributes.resource}${attributes.subresource ? `/${attributes.subresource}` : ''}${attributes.name ? ` ${attributes.name}` : ''} in namespace ${attributes.namespace}`;
    return { allowed: false, status: 403, user, reason: `${user.username} may not ${what}${access.status?.reason ? ` (${access.status.reason})` : ''}` };
  }
}
