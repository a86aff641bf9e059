/**
 * The webhook server's certificate, registered once for the whole operator (it was the prober's
 * while the prober had the only webhook): every capability with a webhook names its webhook
 * configurations (`webhookConfigurations` of its catalog entry), and in `self` mode the
 * leader keeps one CA and serving certificate in a Secret and the caBundle of each of those
 * configurations equal to it; every replica writes the Secret's files into the certificate
 * directory the webhook server (and the endpoints that share its certificate) read. In
 * `cert-manager` mode there is nothing to register: cert-manager keeps the Secret and its CA
 * injector the caBundles.
 */
import { type Clock, realClock } from '../kube/clock.ts';
import { Resources } from '../kube/objects/resources.ts';
import type { Manager } from '../kube/runtime/manager.ts';
import { type SecretObject, WebhookCertificates } from '../kube/webhook/certificates.ts';
import type { WebhookCertificateOptions } from './options.ts';

export interface WebhookCertificateRegistration extends WebhookCertificateOptions {
  /** The webhook server's certificate directory (`--webhook-cert-dir`). */
  readonly certDir: string;
  /** The MutatingWebhookConfigurations whose caBundle the leader keeps (every capability's). */
  readonly configurations: readonly string[];
}

/** Registers the self-managed certificate (self mode, when some capability has a webhook configuration); returns whether it did. */
export function registerWebhookCertificates(manager: Manager, options: WebhookCertificateRegistration, clock: Clock = realClock): boolean {
  if (options.mode !== 'self' || options.configurations.length === 0) return false;
  const logger = manager.logger.child?.({ component: 'webhook-certificate' }) ?? manager.logger;
  const secrets = manager.informer<SecretObject>({ type: Resources.secrets, namespace: options.namespace, fieldSelector: `metadata.name=${options.secret}` });
  const certificates = new WebhookCertificates({
    client: manager.client, secrets, namespace: options.namespace, secretName: options.secret, hosts: options.hosts, certDir: options.certDir,
    configurations: [...new Set(options.configurations)].map((name) => ({ kind: 'MutatingWebhookConfiguration' as const, name })), clock, logger,
  });
  manager.addRunnable({ name: 'webhook-certificate-files', needLeaderElection: false, start: (signal) => certificates.serve(signal) });
  manager.addRunnable({ name: 'webhook-certificate-rotation', needLeaderElection: true, start: (signal) => certificates.lead(signal) });
  return true;
}
