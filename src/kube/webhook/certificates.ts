/**
 * Self-managed webhook certificates, in three parts:
 *
 * - {@link CertificateRotator} (leader only): keeps the Secret holding the CA and the serving
 *   certificate as {@link planRotation} wants it — created at first start, renewed before expiry.
 *   Writes are guarded: a create fails if someone made the Secret meanwhile, an update carries the
 *   resourceVersion read. A Secret of that name that we did not create (no managed-by label) is
 *   never changed: it is served as it is (bring your own certificate).
 * - {@link writeCertificateFiles} (every replica): the Secret's `tls.crt`, `tls.key` and `ca.crt`
 *   written into the webhook's certificate directory as they change, each file replaced
 *   atomically, so the webhook server (which watches the directory) serves a rotated certificate
 *   within a second — not after the kubelet's Secret volume sync, which can take a minute or more.
 * - {@link CaBundleInjector} (leader only): the `caBundle` of every webhook in our webhook
 *   configurations kept equal to the Secret's `ca.crt`, by a server-side apply of that one field
 *   under our own field manager (the chart owns the rest of the object and never sets caBundle,
 *   so a `helm upgrade` leaves it alone). A configuration that does not exist is not created:
 *   the chart owns its lifecycle, so `helm uninstall` removes it.
 *
 * With cert-manager none of this runs: cert-manager writes the Secret, the kubelet mounts it, and
 * cert-manager's CA injector sets the caBundle.
 */
import { rename, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep, type Clock } from '../clock.ts';
import { isAlreadyExists, isConflict, isNotFound } from '../client/errors.ts';
import { FIELD_MANAGERS, isManagedByUs, managedLabels } from '../objects/labels.ts';
import { type Logger, silentLogger } from '../logger-type.ts';
import { collectionPath, type KubeObject, objectPath, Resources } from '../objects/resources.ts';
import type { KubeRequester } from '../objects/writes.ts';
import { applyRotation, DEFAULT_ROTATION_POLICY, nextRotationDue, planRotation, readHeldCertificates, type RotationPolicy, SECRET_KEYS } from './rotation.ts';

export interface SecretObject extends KubeObject {
  type?: string;
  data?: Record<string, string>;
}

/** The Secret's data as text. */
export function decodeSecretData(secret: SecretObject | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(secret?.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
}

/** The files the webhook and peer servers read, from the Secret's data. */
export const CERTIFICATE_FILES = [SECRET_KEYS.caBundle, SECRET_KEYS.tlsKey, SECRET_KEYS.tlsCert] as const;

/**
 * Writes the Secret's `ca.crt`, `tls.key` and `tls.crt` into `dir` (in that order: clients trust a
 * new CA before a certificate it signed is served), each through a temporary file and a rename.
 * Files whose content is unchanged are not touched. Resolves to the names written.
 */
export async function writeCertificateFiles(dir: string, data: Readonly<Record<string, string>>): Promise<string[]> {
  const written: string[] = [];
  for (const name of CERTIFICATE_FILES) {
    const content = data[name];
    if (content === undefined) continue;
    const path = join(dir, name);
    const current = await readFile(path, 'utf8').catch(() => undefined);
    if (current === content) continue;
    const temporary = join(dir, `.${name}.${process.pid}.tmp`);
    await writeFile(temporary, content, { mode: name === SECRET_KEYS.tlsKey ? 0o600 : 0o644 });
    await rename(temporary, path);
    written.push(name);
  }
  return written;
}

// ---------------------------------------------------------------------------------------------
// Rotation

export interface CertificateRotatorOptions {
  readonly client: KubeRequester;
  readonly namespace: string;
  readonly secretName: string;
  /** DNS names and IPs the serving certificate must name. */
  readonly hosts: readonly string[];
  /** The Secret as the cache holds it now. */
  readonly readSecret: () => SecretObject | undefined;
  readonly clock: Clock;
  readonly policy?: RotationPolicy;
  readonly logger?: Logger;
  /** Called after each write (e.g. to record an Event). */
  readonly onRotated?: (steps: readonly string[]) => void;
}

/** Longest wait between two checks even when nothing is due (a missed cache event, a clock jump). */
const MAX_CHECK_INTERVAL_MS = 3_600_000;
/** After a failed write. */
const RETRY_MS = 5_000;

export class CertificateRotator {
  private readonly options: CertificateRotatorOptions;
  private readonly logger: Logger;
  private readonly waker = new Waker();
  private foreignWarned = false;

  constructor(options: CertificateRotatorOptions) {
    this.options = options;
    this.logger = options.logger ?? silentLogger;
  }

  /** The Secret changed in the cache: check now. */
  wake(): void {
    this.waker.wake();
  }

  /** Checks and rotates until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let waitMs: number;
      try {
        waitMs = await this.reconcile();
      } catch (err) {
        this.logger.warn({ err: String(err), secret: `${this.options.namespace}/${this.options.secretName}` }, 'webhook certificate Secret not written; retrying');
        waitMs = RETRY_MS;
      }
      await this.waker.wait(this.options.clock, waitMs, signal);
    }
  }

  /** One check: writes the Secret when the plan says so. Resolves to how long until the next check, in ms. */
  async reconcile(): Promise<number> {
    const policy = this.options.policy ?? DEFAULT_ROTATION_POLICY;
    const secret = this.options.readSecret();
    const now = this.options.clock.now();
    if (secret && !isManagedByUs(secret)) {
      if (!this.foreignWarned) this.logger.warn({ secret: `${this.options.namespace}/${this.options.secretName}` }, 'webhook certificate Secret exists and was not created by crowsnest: serving it as it is, never rotating it');
      this.foreignWarned = true;
      return MAX_CHECK_INTERVAL_MS;
    }
    const held = readHeldCertificates(decodeSecretData(secret));
    const steps = planRotation(held, this.options.hosts, now, policy);
    if (steps.length === 0) return clampWait(nextRotationDue(held, policy) - now);
    const data = applyRotation(held, steps, this.options.hosts, now, policy);
    const body: SecretObject = {
      apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls',
      metadata: {
        name: this.options.secretName, namespace: this.options.namespace,
        labels: { ...managedLabels(), 'app.kubernetes.io/component': 'webhook-certificate' },
        ...(secret?.metadata?.resourceVersion ? { resourceVersion: secret.metadata.resourceVersion } : {}),
      },
      data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    };
    try {
      if (secret) {
        await this.options.client.json(objectPath(Resources.secrets, this.options.secretName, this.options.namespace), { method: 'PUT', body, query: { fieldManager: FIELD_MANAGERS.operator } });
      } else {
        await this.options.client.json(collectionPath(Resources.secrets, this.options.namespace), { method: 'POST', body, query: { fieldManager: FIELD_MANAGERS.operator } });
      }
    } catch (err) {
      // Someone wrote it since our cache saw it: the cache event wakes us with the new state.
      if (isAlreadyExists(err) || isConflict(err) || isNotFound(err)) return RETRY_MS;
      throw err;
    }
    const reasons = steps.map((s) => `${s.kind}: ${s.reason}`);
    this.logger.info({ secret: `${this.options.namespace}/${this.options.secretName}`, steps: reasons }, 'webhook certificates rotated');
    this.options.onRotated?.(reasons);
    // Check again once the cache has the new Secret (the write's watch event wakes us sooner).
    return RETRY_MS;
  }
}

/** A sleep that {@link Waker.wake} ends early; a wake while nobody waits makes the next wait return at once. */
class Waker {
  private wakeUp: (() => void) | undefined;
  private pending = false;

  wake(): void {
    if (this.wakeUp) this.wakeUp();
    else this.pending = true;
  }

  async wait(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return;
    }
    const controller = new AbortController();
    const onAbort = (): void => controller.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    const woken = new Promise<void>((resolve) => { this.wakeUp = resolve; });
    await Promise.race([sleep(clock, ms, controller.signal), woken]);
    controller.abort();
    signal.removeEventListener('abort', onAbort);
    this.wakeUp = undefined;
  }
}

function clampWait(ms: number): number {
  return Math.min(Math.max(ms, 1_000), MAX_CHECK_INTERVAL_MS);
}

// ---------------------------------------------------------------------------------------------
// caBundle

export interface WebhookConfigurationRef {
  readonly kind: 'MutatingWebhookConfiguration' | 'ValidatingWebhookConfiguration';
  readonly name: string;
}

export interface CaBundleInjectorOptions {
  readonly client: KubeRequester;
  readonly configurations: readonly WebhookConfigurationRef[];
  /** The PEM bundle to trust, or undefined while there is none. */
  readonly bundle: () => string | undefined;
  readonly clock: Clock;
  readonly logger?: Logger;
  /** Between checks (a configuration re-created by `helm upgrade --force`, say). Default 30 s. */
  readonly intervalMs?: number;
}

interface WebhookConfiguration extends KubeObject {
  webhooks?: Array<{ name: string; clientConfig?: { caBundle?: string } }>;
}

/** First wait before looking again for a configuration that was not there, in milliseconds. */
const MISSING_FIRST_RETRY_MS = 1_000;

export class CaBundleInjector {
  private readonly options: CaBundleInjectorOptions;
  private readonly logger: Logger;
  private readonly missing = new Set<string>();
  private readonly waker = new Waker();

  constructor(options: CaBundleInjectorOptions) {
    this.options = options;
    this.logger = options.logger ?? silentLogger;
  }

  /** The bundle changed: apply it now. */
  wake(): void {
    this.waker.wake();
  }

  async run(signal: AbortSignal): Promise<void> {
    const intervalMs = this.options.intervalMs ?? 30_000;
    let missingWaitMs = MISSING_FIRST_RETRY_MS;
    while (!signal.aborted) {
      try {
        await this.reconcile();
      } catch (err) {
        this.logger.warn({ err: String(err) }, 'webhook caBundle not updated; retrying');
      }
      // A configuration the chart creates beside the operator may appear a moment after it
      // starts: look again soon (doubling up to the interval) rather than leave the webhook
      // without a caBundle — every call failing, pods admitted without sidecars — for 30 s.
      let waitMs = intervalMs;
      if (this.missing.size > 0) {
        waitMs = Math.min(intervalMs, missingWaitMs);
        missingWaitMs = Math.min(intervalMs, missingWaitMs * 2);
      } else {
        missingWaitMs = MISSING_FIRST_RETRY_MS;
      }
      await this.waker.wait(this.options.clock, waitMs, signal);
    }
  }

  /** Applies the bundle to every configured webhook configuration whose webhooks differ. Resolves to the names changed. */
  async reconcile(): Promise<string[]> {
    const bundle = this.options.bundle();
    if (!bundle) return [];
    const caBundle = Buffer.from(bundle).toString('base64');
    const changed: string[] = [];
    for (const ref of this.options.configurations) {
      const path = `/apis/admissionregistration.k8s.io/v1/${ref.kind.toLowerCase()}s/${encodeURIComponent(ref.name)}`;
      let current: WebhookConfiguration;
      try {
        current = await this.options.client.json<WebhookConfiguration>(path);
      } catch (err) {
        if (!isNotFound(err)) throw err;
        if (!this.missing.has(ref.name)) this.logger.warn({ configuration: ref.name }, `${ref.kind} not found; its caBundle is set once it exists (the Helm chart creates it)`);
        this.missing.add(ref.name);
        continue;
      }
      this.missing.delete(ref.name);
      const webhooks = current.webhooks ?? [];
      if (webhooks.every((w) => w.clientConfig?.caBundle === caBundle)) continue;
      await this.options.client.json(path, {
        method: 'PATCH',
        query: { fieldManager: FIELD_MANAGERS.operator, force: true },
        contentType: 'application/apply-patch+yaml',
        body: {
          apiVersion: 'admissionregistration.k8s.io/v1', kind: ref.kind,
          metadata: { name: ref.name, ...(current.metadata?.uid ? { uid: current.metadata.uid } : {}) },
          webhooks: webhooks.map((w) => ({ name: w.name, clientConfig: { caBundle } })),
        },
      });
      this.logger.info({ configuration: ref.name, webhooks: webhooks.length }, 'webhook caBundle updated');
      changed.push(ref.name);
    }
    return changed;
  }
}

// ---------------------------------------------------------------------------------------------
// All three together

/** The Secret's cache (one Secret: the informer selects it by name). */
export interface SecretSource {
  readonly store: { getByName(namespace: string | undefined, name: string): SecretObject | undefined };
  addEventHandler(handler: { onAdd?(obj: SecretObject): void; onUpdate?(old: SecretObject, obj: SecretObject): void; onDelete?(obj: SecretObject): void }): () => void;
}

export interface WebhookCertificatesOptions {
  readonly client: KubeRequester;
  readonly secrets: SecretSource;
  readonly namespace: string;
  readonly secretName: string;
  readonly hosts: readonly string[];
  /** Where the servers read `tls.crt`, `tls.key` and `ca.crt`. */
  readonly certDir: string;
  /** Webhook configurations whose caBundle the leader keeps. */
  readonly configurations: readonly WebhookConfigurationRef[];
  readonly clock: Clock;
  readonly policy?: RotationPolicy;
  readonly logger?: Logger;
  readonly onRotated?: (steps: readonly string[]) => void;
}

/**
 * Self-managed certificates: {@link WebhookCertificates.serve} on every replica (the Secret's
 * files into the certificate directory), {@link WebhookCertificates.lead} on the leader (rotation
 * and caBundle).
 */
export class WebhookCertificates {
  private readonly options: WebhookCertificatesOptions;
  private readonly logger: Logger;

  constructor(options: WebhookCertificatesOptions) {
    this.options = options;
    this.logger = options.logger ?? silentLogger;
  }

  private secret(): SecretObject | undefined {
    return this.options.secrets.store.getByName(this.options.namespace, this.options.secretName);
  }

  /** Every replica: writes the Secret's files as they change, until `signal` aborts. */
  async serve(signal: AbortSignal): Promise<void> {
    let writing = Promise.resolve();
    const write = (secret: SecretObject): void => {
      if (secret.metadata?.name !== this.options.secretName) return;
      writing = writing.then(async () => {
        const written = await writeCertificateFiles(this.options.certDir, decodeSecretData(secret));
        if (written.length) this.logger.info({ files: written, dir: this.options.certDir }, 'webhook certificate files updated from the Secret');
      }).catch((err: unknown) => this.logger.error({ err: String(err), dir: this.options.certDir }, 'cannot write the webhook certificate files'));
    };
    const detach = this.options.secrets.addEventHandler({ onAdd: write, onUpdate: (_old, secret) => write(secret) });
    await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
    detach();
    await writing;
  }

  /** Leader: keeps the Secret rotated and the caBundle current, until `signal` aborts. */
  async lead(signal: AbortSignal): Promise<void> {
    const rotator = new CertificateRotator({
      client: this.options.client, namespace: this.options.namespace, secretName: this.options.secretName, hosts: this.options.hosts,
      readSecret: () => this.secret(), clock: this.options.clock, logger: this.logger,
      ...(this.options.policy ? { policy: this.options.policy } : {}),
      ...(this.options.onRotated ? { onRotated: this.options.onRotated } : {}),
    });
    const injector = new CaBundleInjector({
      client: this.options.client, configurations: this.options.configurations, clock: this.options.clock, logger: this.logger,
      bundle: () => decodeSecretData(this.secret())[SECRET_KEYS.caBundle],
    });
    const wake = (): void => {
      rotator.wake();
      injector.wake();
    };
    const detach = this.options.secrets.addEventHandler({ onAdd: wake, onUpdate: wake, onDelete: wake });
    try {
      await Promise.all([rotator.run(signal), injector.run(signal)]);
    } finally {
      detach();
    }
  }
}
