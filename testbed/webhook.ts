/**
 * A validating admission webhook served by the test process on 127.0.0.1, for behaviour that
 * depends on what admission does to a request: a slow policy engine in a create's path, a
 * rejection. TLS comes from the testbed's own PKI: the API server's serving certificate is valid
 * for 127.0.0.1 and signed by the CA the webhook configuration names as its caBundle.
 */
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { ControlPlane } from './controlplane.ts';
import { eventually } from './kubelet.ts';

/** The parts of an AdmissionReview request a test decides on. */
export interface AdmissionRequest {
  readonly uid: string;
  readonly operation: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly dryRun?: boolean;
  readonly object?: { metadata?: { name?: string; generateName?: string; labels?: Record<string, string> } };
}

export interface AdmissionAnswer {
  readonly allowed: boolean;
  /** Shown to the client when not allowed. */
  readonly message?: string;
}

export interface ValidatingWebhookOptions {
  /** Name of the ValidatingWebhookConfiguration; unique per test. */
  readonly name: string;
  /** Only requests for objects in this namespace are sent to the webhook. */
  readonly namespace: string;
  /** Resources and operations sent to the webhook, e.g. pods on CREATE. */
  readonly rule: { readonly apiGroups: readonly string[]; readonly apiVersions: readonly string[]; readonly resources: readonly string[]; readonly operations: readonly string[] };
  /** Decides a request; may take its time, as a slow webhook would (the configuration allows 10 s). */
  readonly review: (request: AdmissionRequest) => AdmissionAnswer | Promise<AdmissionAnswer>;
}

export interface ValidatingWebhook {
  /** Every request the webhook was asked about, dry runs included, in arrival order. */
  readonly requests: readonly AdmissionRequest[];
  /** Deletes the configuration and stops serving. */
  stop(): Promise<void>;
}

/** Probe object names: requests for them are allowed at once and not recorded. */
const PROBE_NAME_PREFIX = 'webhook-probe-';

/**
 * Serves a webhook, registers it, and resolves once the API server calls it: a configuration
 * takes effect only after the API server's admission plugin has seen it (eventually consistent),
 * so a dry-run probe is sent until it arrives.
 *
 * @param probe a dry-run request that matches the rule, e.g. creating a ConfigMap or pod; it is
 *   sent with its name set to a probe name.
 */
export async function serveValidatingWebhook(
  plane: ControlPlane,
  options: ValidatingWebhookOptions,
  probe: { readonly path: string; readonly object: { metadata?: Record<string, unknown> } & Record<string, unknown> },
): Promise<ValidatingWebhook> {
  const [cert, key, ca] = await Promise.all([readFile(plane.pki.servingCert), readFile(plane.pki.servingKey), readFile(plane.pki.caCert)]);
  const requests: AdmissionRequest[] = [];
  let probesSeen = 0;
  const server = createServer({ cert, key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      void (async () => {
        const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { request: AdmissionRequest };
        const request = review.request;
        const isProbe = (request.name ?? request.object?.metadata?.name ?? '').startsWith(PROBE_NAME_PREFIX);
        let answer: AdmissionAnswer = { allowed: true };
        if (isProbe) probesSeen++;
        else {
          requests.push(request);
          answer = await options.review(request);
        }
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          response: { uid: request.uid, allowed: answer.allowed, ...(answer.message ? { status: { code: 403, message: answer.message } } : {}) },
        }));
      })().catch((err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;

  const configurations = '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations';
  const created = await plane.request('POST', configurations, {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name: options.name },
    webhooks: [{
      name: `${options.name}.testbed.crowsnest.io`,
      clientConfig: { url: `https://127.0.0.1:${port}/validate`, caBundle: ca.toString('base64') },
      rules: [{ ...options.rule, scope: 'Namespaced' }],
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': options.namespace } },
      sideEffects: 'None',
      admissionReviewVersions: ['v1'],
      failurePolicy: 'Fail',
      timeoutSeconds: 10,
    }],
  });
  if (created.status !== 201) {
    server.close();
    throw new Error(`creating ValidatingWebhookConfiguration ${options.name}: ${created.status} ${created.body}`);
  }
  const stop = async (): Promise<void> => {
    await plane.request('DELETE', `${configurations}/${options.name}`);
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };

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
  return { requests, stop };
}
