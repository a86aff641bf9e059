/**
 * What `crowsnest operator` runs with, as resolved and validated values. The operator owns this
 * type; the CLI fills it from flags, environment and defaults (./flags.ts), and each
 * capability reads its own section (e.g. {@link LogAccessOptions}, defined beside the capability).
 */
import type { GuardOptions } from '../guard/options.ts';
import type { LogAccessOptions } from '../logaccess/desired.ts';
import type { ProberOptions } from '../prober/options.ts';

/** Everything `crowsnest operator` needs to run, validated. Durations in milliseconds. */
export interface OperatorOptions {
  /** Explicit kubeconfig path, from the global `--kubeconfig`. */
  readonly kubeconfig?: string;
  /** kubeconfig context, from the global `--context`. */
  readonly context?: string;
  /** Controllers to run, in the catalog's order. Default: all. */
  readonly controllers: readonly string[];
  /** `host:port` or `:port` for /metrics; `"0"` or `""` disables. Default `:8080`. */
  readonly metricsBindAddress: string;
  /** `host:port` or `:port` for /healthz and /readyz; `"0"` or `""` disables. Default `:8081`. */
  readonly healthProbeBindAddress: string;
  /**
   * TCP port of the admission webhook server (every replica, leader or not). Served only when a
   * selected capability registers a webhook. Default 9443 (controller-runtime's).
   */
  readonly webhookPort: number;
  /**
   * Directory holding the webhook's serving certificate as `tls.crt` and `tls.key` (a mounted
   * Secret); reloaded when they change. Default `/tmp/k8s-webhook-server/serving-certs`.
   */
  readonly webhookCertDir: string;
  /**
   * Whether to run controllers only while holding the Lease. Default: `true` in a pod
   * (`KUBERNETES_SERVICE_HOST` set) or when the Lease namespace is given, else `false`.
   */
  readonly leaderElect: boolean;
  /** Namespace of the Lease. Default `$POD_NAMESPACE`, else `crowsnest-system`. */
  readonly leaderElectionNamespace: string;
  /** Name of the Lease. Default `crowsnest-operator`. */
  readonly leaderElectionId: string;
  /** Lease duration. Default 15 000 ms. Always > {@link renewDeadlineMs}. */
  readonly leaseDurationMs: number;
  /** Renew deadline. Default 10 000 ms. Always > 1.2 × {@link retryPeriodMs}. */
  readonly renewDeadlineMs: number;
  /** Retry period. Default 2 000 ms. */
  readonly retryPeriodMs: number;
  /** Concurrent reconciles per controller. Default 2. */
  readonly workers: number;
  /**
   * Grace period for in-flight work on shutdown without leader election; 0 stops at once. With
   * leader election the renew deadline bounds the drain instead. Default 30 000 ms.
   */
  readonly shutdownTimeoutMs: number;
  /** Holder identity in the Lease. Default `<hostname>_<random uuid>`. */
  readonly identity: string;
  /** Settings of the logaccess controller. */
  readonly logaccess: LogAccessOptions;
  /** The webhook server's certificate, for every capability's webhook. */
  readonly webhookCertificate: WebhookCertificateOptions;
  /** Settings of the prober. */
  readonly prober: ProberOptions;
  /** Settings of guard. */
  readonly guard: GuardOptions;
}

/** Where the webhook's serving certificate comes from. */
export type WebhookCertMode = 'self' | 'cert-manager';
export const WEBHOOK_CERT_MODES: readonly WebhookCertMode[] = ['self', 'cert-manager'];

/** The webhook certificate settings `crowsnest operator` resolves (`--webhook-cert-*`). */
export interface WebhookCertificateOptions {
  /**
   * `self`: the leader keeps a CA and a serving certificate in {@link secret} and the caBundle
   * of every capability's webhook configuration; every replica writes the Secret's files into the
   * certificate directory. `cert-manager`: the directory is cert-manager's Secret, mounted.
   */
  readonly mode: WebhookCertMode;
  /** The operator's namespace: home of the Secret, named in the certificate's Service names. */
  readonly namespace: string;
  /** Name of the certificate Secret in the operator's namespace (self mode). */
  readonly secret: string;
  /** DNS names and IPs the serving certificate is for: the Service's names, then any extra. */
  readonly hosts: readonly string[];
}

/** The names a Service's certificate must carry, short to fully qualified. */
export function serviceHosts(service: string, namespace: string, clusterDomain = 'cluster.local'): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.${clusterDomain}`];
}
