/**
 * The admission.k8s.io/v1 AdmissionReview wire format, and what a handler answers: allow, deny
 * (with a message and HTTP code the client sees), or the object as it should be (the JSON Patch
 * is computed, never written by hand).
 */
import type { KubeObject } from '../objects/resources.ts';
import { createPatch } from './jsonpatch.ts';

export type AdmissionOperation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';

/** AdmissionRequest (admission.k8s.io/v1): what the API server asks about. */
export interface AdmissionRequest<T extends KubeObject = KubeObject> {
  /** Echoed in the response; identifies this call. */
  readonly uid: string;
  readonly kind: { readonly group: string; readonly version: string; readonly kind: string };
  readonly resource: { readonly group: string; readonly version: string; readonly resource: string };
  readonly subResource?: string;
  readonly requestKind?: { readonly group: string; readonly version: string; readonly kind: string };
  readonly requestResource?: { readonly group: string; readonly version: string; readonly resource: string };
  readonly name?: string;
  readonly namespace?: string;
  readonly operation: AdmissionOperation;
  readonly userInfo: { readonly username?: string; readonly uid?: string; readonly groups?: readonly string[]; readonly extra?: Readonly<Record<string, readonly string[]>> };
  /** The object as it will be stored (CREATE, UPDATE); null for DELETE. */
  readonly object?: T | null;
  /** The stored object (UPDATE, DELETE). */
  readonly oldObject?: T | null;
  /** True for a dry run: the handler must have no side effects. */
  readonly dryRun?: boolean;
  readonly options?: unknown;
}

/** AdmissionResponse (admission.k8s.io/v1). */
export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly status?: { readonly code?: number; readonly message?: string; readonly reason?: string };
  /** Base64 of a JSON Patch. */
  readonly patch?: string;
  readonly patchType?: 'JSONPatch';
  /** Shown by kubectl as "Warning: …". */
  readonly warnings?: readonly string[];
  readonly auditAnnotations?: Readonly<Record<string, string>>;
}

export interface AdmissionReview<T extends KubeObject = KubeObject> {
  readonly apiVersion: 'admission.k8s.io/v1';
  readonly kind: 'AdmissionReview';
  readonly request?: AdmissionRequest<T>;
  readonly response?: AdmissionResponse;
}

/** What a handler decides. Build with {@link allow}, {@link deny} and {@link mutate}. */
export type AdmissionResult =
  | { readonly kind: 'allow'; readonly warnings?: readonly string[] }
  | { readonly kind: 'deny'; readonly message: string; readonly code: number; readonly reason?: string; readonly warnings?: readonly string[] }
  | { readonly kind: 'mutate'; readonly object: KubeObject; readonly warnings?: readonly string[] };

/** Let the request through unchanged. */
export function allow(warnings?: readonly string[]): AdmissionResult {
  return { kind: 'allow', ...(warnings?.length ? { warnings } : {}) };
}

/**
 * Refuse the request. `message` reaches the user as the error (write what to change); `code`
 * becomes the HTTP status of their request (default 403 Forbidden; 422 for an invalid object).
 */
export function deny(message: string, options: { readonly code?: number; readonly reason?: string; readonly warnings?: readonly string[] } = {}): AdmissionResult {
  return { kind: 'deny', message, code: options.code ?? 403, ...(options.reason ? { reason: options.reason } : {}), ...(options.warnings?.length ? { warnings: options.warnings } : {}) };
}

/**
 * Let the request through as `object` (a changed copy of `request.object`): the response carries
 * the JSON Patch between the two. An unchanged object is a plain allow.
 */
export function mutate(object: KubeObject, warnings?: readonly string[]): AdmissionResult {
  return { kind: 'mutate', object, ...(warnings?.length ? { warnings } : {}) };
}

/** A request body that is not an AdmissionReview v1 with a request: answered 400. */
export class BadReviewError extends Error {
  override readonly name = 'BadReviewError';
}

/** Parses and checks an AdmissionReview request body. */
export function decodeAdmissionReview(body: string): AdmissionRequest {
  let review: unknown;
  try {
    review = JSON.parse(body);
  } catch {
    throw new BadReviewError('request body is not JSON');
  }
  const r = review as Partial<AdmissionReview> | null;
  if (!r || typeof r !== 'object' || r.apiVersion !== 'admission.k8s.io/v1' || r.kind !== 'AdmissionReview') {
    throw new BadReviewError('expected an admission.k8s.io/v1 AdmissionReview (set admissionReviewVersions: ["v1"])');
  }
  const request = r.request;
  if (!request || typeof request.uid !== 'string' || request.uid === '' || typeof request.operation !== 'string') {
    throw new BadReviewError('AdmissionReview has no request with a uid and an operation');
  }
  return request;
}

/**
 * The AdmissionReview answering `request` with `result`. A mutation becomes a JSON Patch against
 * `request.object`.
 */
export function encodeAdmissionResponse(request: Pick<AdmissionRequest, 'uid' | 'object'>, result: AdmissionResult): AdmissionReview {
  const warnings = result.warnings?.length ? { warnings: [...result.warnings] } : {};
  let response: AdmissionResponse;
  if (result.kind === 'deny') {
    response = { uid: request.uid, allowed: false, status: { code: result.code, message: result.message, ...(result.reason ? { reason: result.reason } : {}) }, ...warnings };
  } else if (result.kind === 'mutate') {
    // Serialized right here: the operations may share `result.object`'s values.
    const patch = createPatch(request.object ?? {}, result.object, { shareValues: true });
    response = patch.length
      ? { uid: request.uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64'), ...warnings }
      : { uid: request.uid, allowed: true, ...warnings };
  } else {
    response = { uid: request.uid, allowed: true, ...warnings };
  }
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response };
}
