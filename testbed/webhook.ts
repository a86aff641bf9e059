/**
 * Admission webhooks served by the test process on 127.0.0.1 with the production server and codec
 * (src/kube/webhook), for behaviour that depends on what admission does to a request: a slow
 * policy engine in a create's path, a rejection, a mutation. TLS: a serving certificate for
 * 127.0.0.1/localhost issued by the testbed's CA, which the webhook configuration names as its
 * caBundle.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Registry } from 'prom-client';
import { type AdmissionResult, allow, deny, type AdmissionRequest as ProductionRequest } from '../src/kube/webhook/review.ts';
import { type FailurePolicy, WebhookServer } from '../src/kube/webhook/server.ts';
import type { ControlPlane } from './controlplane.ts';
import { eventually } from './kubelet.ts';

const run = promisify(execFile);

// ---------------------------------------------------------------------------------------------
// Certificates

/** PEM files of a CA. */
export interface CertificateAuthority {
  readonly cert: string;
  readonly key: string;
}

/** A new self-signed CA in `dir` (for tests that need one apart from the testbed's). */
export async function createCertificateAuthority(dir: string, name = 'crowsnest-test-ca'): Promise<CertificateAuthority> {
  const ca = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', ca.key, '-out', ca.cert, '-days', '1', '-subj', `/CN=${name}`]);
  return ca;
}

/**
 * Issues a serving certificate for `hosts` (IP addresses and DNS names; default 127.0.0.1 and
 * localhost) signed by `ca`, writing `<name>.crt` and `<name>.key` into `dir`. Each call makes a
 * new key, so two calls give two different certificates.
 */
export async function issueServingCertificate(
  ca: CertificateAuthority,
  dir: string,
  options: { readonly name?: string; readonly hosts?: readonly string[]; readonly days?: number } = {},
): Promise<{ readonly certFile: string; readonly keyFile: string }> {
  const name = options.name ?? 'webhook';
  const hosts = options.hosts ?? ['127.0.0.1', 'localhost'];
  const san = hosts.map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
  const [certFile, keyFile, csr, ext] = ['crt', 'key', 'csr', 'ext'].map((suffix) => join(dir, `${name}.${suffix}`)) as [string, string, string, string];
  await writeFile(ext, `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n`);
  await run('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/CN=${hosts[0]}`]);
  await run('openssl', ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', certFile, '-days', String(options.days ?? 1), '-extfile', ext]);
  await Promise.all([rm(csr), rm(ext)]);
  return { certFile, keyFile };
}

// ---------------------------------------------------------------------------------------------
// Webhooks on the testbed

/** The parts of an AdmissionReview request a test decides on. */
export type AdmissionRequest = ProductionRequest;

export interface AdmissionAnswer {
  readonly allowed: boolean;
  /** Shown to the client when not allowed. */
  readonly message?: string;
}

/** Resources and operations sent to a webhook, e.g. pods on CREATE. */
export interface WebhookRule {
  readonly apiGroups: readonly string[];
  readonly apiVersions: readonly string[];
  readonly resources: readonly string[];
  readonly operations: readonly string[];
}

export interface AdmissionWebhookOptions {
  /** Name of the webhook configuration; unique per test. */
  readonly name: string;
  readonly type: 'Validating' | 'Mutating';
  /** Only requests for objects in this namespace are sent to the webhook. */
  readonly namespace: string;
  readonly rule: WebhookRule;
  /** Default Fail. */
  readonly failurePolicy?: FailurePolicy;
  /** The configuration's timeoutSeconds. Default 10. */
  readonly timeoutSeconds?: number;
  /** The server's handler deadline. Default: 90 % of timeoutSeconds. */
  readonly handlerDeadlineMs?: number;
  readonly registry?: Registry;
  readonly review: (request: AdmissionRequest, signal: AbortSignal) => AdmissionResult | Promise<AdmissionResult>;
}

/** A webhook served and registered on the testbed. */
export interface AdmissionWebhook {
  /** Every request the webhook was asked about, dry runs included, in arrival order (probes excluded). */
  readonly requests: readonly AdmissionRequest[];
  readonly server: WebhookServer;
  /** The serving certificate's files: overwrite them to rotate. */
  readonly certFile: string;
  readonly keyFile: string;
  /** Deletes the configuration, stops serving and removes the certificate files. */
  stop(): Promise<void>;
}

/** A dry-run request that matches the rule, sent until the API server calls the webhook. */
export interface WebhookProbe {
  readonly path: string;
  readonly object: { metadata?: Record<string, unknown> } & Record<string, unknown>;
}

/** Probe object names: requests for them are allowed at once and not recorded. */
const PROBE_NAME_PREFIX = 'webhook-probe-';
const DEFAULT_TIMEOUT_SECONDS = 10;
const DEADLINE_SHARE = 0.9;

/**
 * Serves a webhook with the production server, registers it, and resolves once the API server
 * calls it: a configuration takes effect only after the API server's admission plugin has seen it
 * (eventually consistent), so a dry-run probe is sent until it arrives.
 */
export async function serveAdmissionWebhook(plane: ControlPlane, options: AdmissionWebhookOptions, probe: WebhookProbe): Promise<AdmissionWebhook> {
  const dir = await mkdtemp(join(tmpdir(), 'crowsnest-webhook-'));
  const { certFile, keyFile } = await issueServingCertificate({ cert: plane.pki.caCert, key: plane.pki.caKey }, dir);
  const ca = await readFile(plane.pki.caCert);
  const requests: AdmissionRequest[] = [];
  let probesSeen = 0;
  const timeoutSeconds = options.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
  const failurePolicy = options.failurePolicy ?? 'Fail';
  const path = `/${options.type.toLowerCase()}`;
  const server = new WebhookServer({
    host: '127.0.0.1',
    port: 0,
    certFile,
    keyFile,
    handlerDeadlineMs: options.handlerDeadlineMs ?? timeoutSeconds * 1000 * DEADLINE_SHARE,
    certificatePollIntervalMs: 1_000,
    ...(options.registry ? { registry: options.registry } : {}),
    handlers: [{
      name: options.name,
      path,
      failurePolicy,
      review: (request, signal) => {
        const name = request.name ?? request.object?.metadata?.name ?? '';
        if (name.startsWith(PROBE_NAME_PREFIX)) {
          probesSeen++;
          return allow();
        }
        requests.push(request);
        return options.review(request, signal);
      },
    }],
  });
  await server.start();

  const configurations = `/apis/admissionregistration.k8s.io/v1/${options.type.toLowerCase()}webhookconfigurations`;
  const created = await plane.request('POST', configurations, {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: `${options.type}WebhookConfiguration`,
    metadata: { name: options.name },
    webhooks: [{
      name: `${options.name}.testbed.crowsnest.dev`,
      clientConfig: { url: `https://127.0.0.1:${server.port}${path}`, caBundle: ca.toString('base64') },
      rules: [{ ...options.rule, scope: 'Namespaced' }],
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': options.namespace } },
      sideEffects: 'None',
      admissionReviewVersions: ['v1'],
      failurePolicy,
      timeoutSeconds,
      ...(options.type === 'Mutating' ? { reinvocationPolicy: 'IfNeeded' } : {}),
    }],
  });
  const stop = async (): Promise<void> => {
    await plane.request('DELETE', `${configurations}/${options.name}`);
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  };
  if (created.status !== 201) {
    await stop();
    throw new Error(`creating ${options.type}WebhookConfiguration ${options.name}: ${created.status} ${created.body}`);
  }

  try {
    let probes = 0;
    await eventually(`the API server to call webhook ${options.name}`, async () => {
      const body = { ...probe.object, metadata: { ...probe.object.metadata, name: `${PROBE_NAME_PREFIX}${probes++}` } };
      await plane.request('POST', `${probe.path}?dryRun=All`, body);
      return probesSeen > 0;
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { requests, server, certFile, keyFile, stop };
}

// ---------------------------------------------------------------------------------------------
// The validating webhook the older tests use

export interface ValidatingWebhookOptions {
  /** Name of the ValidatingWebhookConfiguration; unique per test. */
  readonly name: string;
  /** Only requests for objects in this namespace are sent to the webhook. */
  readonly namespace: string;
  readonly rule: WebhookRule;
  /** Decides a request; may take its time, as a slow webhook would (the configuration allows 10 s). */
  readonly review: (request: AdmissionRequest) => AdmissionAnswer | Promise<AdmissionAnswer>;
}

export interface ValidatingWebhook {
  /** Every request the webhook was asked about, dry runs included, in arrival order. */
  readonly requests: readonly AdmissionRequest[];
  /** Deletes the configuration and stops serving. */
  stop(): Promise<void>;
}

/** A validating webhook (failurePolicy Fail, 10 s timeout) that allows or denies with a message. */
export async function serveValidatingWebhook(plane: ControlPlane, options: ValidatingWebhookOptions, probe: WebhookProbe): Promise<ValidatingWebhook> {
  const webhook = await serveAdmissionWebhook(plane, {
    name: options.name,
    type: 'Validating',
    namespace: options.namespace,
    rule: options.rule,
    review: async (request) => {
      const answer = await options.review(request);
      return answer.allowed ? allow() : deny(answer.message ?? 'denied by the test webhook');
    },
  }, probe);
  return { requests: webhook.requests, stop: () => webhook.stop() };
}
