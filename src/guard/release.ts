/**
 * Ending a quarantine by hand (`crowsnest guard release|delete <pod>`): the same writes the
 * controller makes when a quarantine's ttl ends. Release gives the pod back the labels quarantine
 * removed (its owner adopts it again, and scales one pod away if it now has one too many); delete
 * deletes it. Either way the incident's isolating NetworkPolicy goes. Only a pod guard quarantined
 * (label and readable record) is touched; the pod patch is guarded by uid and resourceVersion.
 */
import { QUARANTINE_LABEL } from './contract.ts';
import { guardPod, type GuardPod } from './pods.ts';
import { isolationPolicyName, quarantineRecordOf, releasePatch } from './quarantine.ts';
import type { KubeClient } from '../kube/client/client.ts';
import { isNotFound } from '../kube/client/errors.ts';
import { FIELD_MANAGERS, isManagedByUs } from '../kube/objects/labels.ts';
import { type KubeObject, objectPath, Resources, type ResourceType } from '../kube/objects/resources.ts';
import { deleteObject } from '../kube/objects/writes.ts';

const NETWORK_POLICIES: ResourceType = { group: 'networking.k8s.io', version: 'v1', resource: 'networkpolicies', kind: 'NetworkPolicy', namespaced: true };

export type QuarantineEnd = 'release' | 'delete';

/** A refusal a user can act on (exit 1 with the message). */
export class QuarantineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QuarantineError';
  }
}

/** Ends the quarantine of `namespace/name`; returns what was done, in one sentence. */
export async function endQuarantine(client: Pick<KubeClient, 'json'>, namespace: string, name: string, how: QuarantineEnd, signal?: AbortSignal): Promise<string> {
  let raw: KubeObject;
  try {
    raw = await client.json<KubeObject>(objectPath(Resources.pods, name, namespace), signal ? { signal } : {});
  } catch (err) {
    if (isNotFound(err)) throw new QuarantineError(`pod ${namespace}/${name} not found`);
    throw err;
  }
  const pod = guardPod(raw) as GuardPod;
  const record = quarantineRecordOf(pod);
  if (!(QUARANTINE_LABEL in (pod.metadata.labels ?? {})) || !record) {
    throw new QuarantineError(`pod ${namespace}/${name} is not quarantined by guard (no ${QUARANTINE_LABEL} label with its record)`);
  }
  let done: string;
  if (how === 'delete') {
    const deleted = await deleteObject(client, Resources.pods, { namespace, name, uid: pod.metadata.uid }, signal ? { signal } : {});
    done = deleted ? `pod ${namespace}/${name} deleted` : `pod ${namespace}/${name} was gone already`;
  } else {
    await client.json(objectPath(Resources.pods, name, namespace), {
      method: 'PATCH', contentType: 'application/json-patch+json', query: { fieldManager: FIELD_MANAGERS.guard }, body: releasePatch(pod, record), ...(signal ? { signal } : {}),
    });
    const labels = Object.entries(record.removedLabels).map(([k, v]) => `${k}=${v}`).join(', ');
    done = `pod ${namespace}/${name} released: ${labels ? `labels ${labels} restored, ` : ''}its owner adopts it again`;
  }
  try {
    const isolation = await client.json<KubeObject>(objectPath(NETWORK_POLICIES, isolationPolicyName(record.incident), namespace), signal ? { signal } : {});
    if (isManagedByUs(isolation) && isolation.metadata?.uid) {
      await deleteObject(client, NETWORK_POLICIES, { namespace, name: isolationPolicyName(record.incident), uid: isolation.metadata.uid }, signal ? { signal } : {});
      done += `; NetworkPolicy ${isolationPolicyName(record.incident)} deleted`;
    }
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  return `${done} (incident ${record.incident} of GuardPolicy ${record.policy})`;
}
