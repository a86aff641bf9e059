/**
 * Test fixtures for the prober's operator side: NetworkProbers as the API server stores them
 * (CRD defaults applied), injected pods as the cache keeps them, and a cache view over both.
 */
import type { NetworkProber } from './api.ts';
import { NetworkProberApi } from './api.ts';
import { PROBER_ANNOTATION } from './contract.ts';
import { INJECTED_LABEL, type SlimPod } from './members.ts';
import type { ProberCacheView } from './peers.ts';

/** A NetworkProber with the CRD's defaults applied, as the informer delivers it. */
export function storedProber(name: string, namespace: string, spec: Record<string, unknown>, generation = 1): NetworkProber {
  const result = NetworkProberApi.validate({ apiVersion: 'crowsnest.dev/v1alpha1', kind: 'NetworkProber', metadata: { name, namespace, uid: `${namespace}-${name}-uid`, generation }, spec });
  if (!result.valid) throw new Error(JSON.stringify(result.errors));
  return result.value;
}

let nextIp = 0;

/** An injected, Running pod of `prober` on `node`. */
export function injectedPod(name: string, namespace: string, prober: string, options: { labels?: Record<string, string>; node?: string; ip?: string; phase?: string; port?: number; deleting?: boolean } = {}): SlimPod {
  return {
    metadata: {
      name, namespace, uid: `uid-${name}`,
      labels: { [INJECTED_LABEL]: 'true', ...(options.labels ?? { app: 'web' }) },
      annotations: { [PROBER_ANNOTATION]: prober },
      ...(options.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
    },
    spec: { nodeName: options.node ?? 'node-a', agentPort: options.port ?? 19080 },
    status: { phase: options.phase ?? 'Running', ...(options.ip === '' ? {} : { podIP: options.ip ?? `198.18.${Math.floor(nextIp / 250)}.${(nextIp++ % 250) + 1}` }) },
  };
}

/** A cache view over plain arrays, changed by the tests between calls. */
export class ArrayCache implements ProberCacheView {
  probers: NetworkProber[] = [];
  pods: SlimPod[] = [];

  prober(namespace: string, name: string): NetworkProber | undefined {
    return this.probers.find((p) => p.metadata?.namespace === namespace && p.metadata?.name === name);
  }

  pod(namespace: string, name: string): SlimPod | undefined {
    return this.pods.find((p) => p.metadata.namespace === namespace && p.metadata.name === name);
  }

  podsIn(namespace: string): readonly SlimPod[] {
    return this.pods.filter((p) => p.metadata.namespace === namespace);
  }
}
