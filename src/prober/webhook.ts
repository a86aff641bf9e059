/**
 * The pod-mutating admission handler: on pod CREATE, the NetworkProbers of the pod's namespace
 * come from the informer cache (never a LIST per request, as the seed did) and
 * {@link decideInjection} decides. Served on every replica with failurePolicy Ignore: if the
 * operator is down or slow, pods are created without the agent rather than not at all.
 *
 * Pods of excluded namespaces (kube-system, kube-node-lease, the operator's own) are let through
 * here too, whatever the webhook configuration's namespaceSelector says: a wrong selector must
 * not inject into the control plane.
 */
import { readFileSync, statSync } from 'node:fs';
import { Counter, type Registry } from 'prom-client';
import { type Logger, silentLogger } from '../kube/logger-type.ts';
import { allow, mutate, type AdmissionRequest, type AdmissionResult } from '../kube/webhook/review.ts';
import type { AdmissionHandler } from '../kube/webhook/server.ts';
import type { KubeObject } from '../kube/objects/resources.ts';
import type { NetworkProber } from './api.ts';
import { decideInjection, type InjectionSettings, type PodObject } from './inject.ts';

export const WEBHOOK_NAME = 'prober-inject';
export const WEBHOOK_PATH = '/mutate-pods';
/** Never injected, whatever the configuration sends. */
export const ALWAYS_EXCLUDED_NAMESPACES = ['kube-system', 'kube-node-lease', 'kube-public'] as const;

export interface ProberWebhookOptions {
  /** The NetworkProbers of a namespace, from the cache. */
  readonly probersIn: (namespace: string) => readonly NetworkProber[];
  /** The settings, or why there are none yet (then pods are let through with a warning). */
  readonly settings: () => InjectionSettings | string;
  /** Besides {@link ALWAYS_EXCLUDED_NAMESPACES}: the operator's own namespace. */
  readonly excludedNamespaces: readonly string[];
  readonly registry?: Registry;
  readonly logger?: Logger;
}

/** Outcomes of `crowsnest_prober_admissions_total{result}`. */
export type AdmissionOutcome = 'injected' | 'not_selected' | 'already_injected' | 'container_name_taken' | 'host_network' | 'port_taken' | 'windows' | 'excluded_namespace' | 'not_ready' | 'not_a_pod_create';

export function proberWebhook(options: ProberWebhookOptions): AdmissionHandler {
  const logger = options.logger ?? silentLogger;
  const admissions = options.registry ? admissionCounter(options.registry) : undefined;
  const excluded = new Set<string>([...ALWAYS_EXCLUDED_NAMESPACES, ...options.excludedNamespaces]);
  const count = (result: AdmissionOutcome): void => admissions?.inc({ result });
  return {
    name: WEBHOOK_NAME,
    path: WEBHOOK_PATH,
    failurePolicy: 'Ignore',
    review: (request: AdmissionRequest): AdmissionResult => {
      if (request.operation !== 'CREATE' || request.resource.resource !== 'pods' || request.resource.group !== '' || request.subResource) {
        count('not_a_pod_create');
        return allow();
      }
      const namespace = request.namespace ?? request.object?.metadata?.namespace ?? '';
      if (excluded.has(namespace)) {
        count('excluded_namespace');
        return allow();
      }
      const pod = request.object as PodObject | null | undefined;
      if (!pod) return allow();
      const probers = options.probersIn(namespace);
      if (probers.length === 0) {
        count('not_selected');
        return allow();
      }
      const settings = options.settings();
      if (typeof settings === 'string') {
        count('not_ready');
        logger.warn({ namespace, reason: settings }, 'pod admitted without the prober agent');
        return allow([`crowsnest: the NetworkProber agent was not injected: ${settings}`]);
      }
      const decision = decideInjection(pod, namespace, probers, settings);
      if (decision.kind === 'skip') {
        count(decision.reason);
        return allow(decision.warnings);
      }
      count('injected');
      logger.debug({ namespace, pod: pod.metadata?.name ?? pod.metadata?.generateName, prober: decision.prober.metadata?.name }, 'injecting the prober agent');
      return mutate(decision.pod as KubeObject, decision.warnings);
    },
  };
}

function admissionCounter(registry: Registry): Counter<'result'> {
  const existing = registry.getSingleMetric('crowsnest_prober_admissions_total');
  if (existing) return existing as Counter<'result'>;
  return new Counter({
    name: 'crowsnest_prober_admissions_total',
    help: 'Pod creations the prober webhook decided on, by result: injected, or why not (not_selected, already_injected, port_taken, ...).',
    labelNames: ['result'], registers: [registry],
  });
}

/**
 * A PEM file read again when it changes (checked by its size and mtime at most once a second),
 * for the CA bundle the webhook hands to agents: `ca.crt` beside the serving certificate.
 */
export class WatchedPemFile {
  private readonly path: string;
  private lastCheckMs: number | undefined;
  private stamp = '';
  private content: string | undefined;

  constructor(path: string) {
    this.path = path;
  }

  /** The file's content, or undefined when it is missing or holds no certificate. */
  read(nowMs = Date.now()): string | undefined {
    if (this.lastCheckMs !== undefined && nowMs - this.lastCheckMs < 1000) return this.content;
    this.lastCheckMs = nowMs;
    try {
      const stat = statSync(this.path);
      const stamp = `${stat.size}/${stat.mtimeMs}/${stat.ino}`;
      if (stamp !== this.stamp) {
        const text = readFileSync(this.path, 'utf8');
        this.content = text.includes('-----BEGIN CERTIFICATE-----') ? text : undefined;
        this.stamp = stamp;
      }
    } catch {
      this.content = undefined;
      this.stamp = '';
    }
    return this.content;
  }
}
