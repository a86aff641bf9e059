/**
 * Leader election on a `coordination.k8s.io/v1` Lease, with the semantics of client-go's
 * `tools/leaderelection` so Crowsnest replicas behave like every other Kubernetes controller:
 *
 * - Candidates read the Lease every retry period (jittered). A Lease held by someone else counts as
 *   valid until `leaseDurationSeconds` after the moment *we* first saw its current record — our
 *   own clock, never the remote `renewTime` — so clock skew between replicas cannot make a live
 *   leader look expired.
 * - Every write is a replace carrying the `resourceVersion` that was read: when two candidates race,
 *   the API server accepts one and answers the other 409.
 * - The leader renews every retry period and steps down when no renewal succeeded for
 *   `renewDeadlineMs`. Since `renewDeadline < leaseDuration`, it stops acting as leader before any
 *   other candidate can consider the lease expired.
 * - On cancellation the leader releases the Lease (empty holder, 1-second duration) so a successor
 *   takes over at once instead of after a full lease duration.
 *
 * The decisions are pure functions in leader-record.ts ({@link observe}, {@link decide},
 * {@link validateLeaderElectionConfig}, {@link leaderHealth}) so they are tested with numbers;
 * {@link LeaderElector} only sequences them with API calls and timers.
 */
import { Gauge, type Registry } from 'prom-client';
import type { KubeClient } from '../client/client.ts';
import { realClock, sleep, type Clock } from '../clock.ts';
import { silentLogger, type Logger } from '../logger-type.ts';
import { describeError, isAlreadyExists, isConflict, isNotFound } from '../client/errors.ts';
import { managedLabels } from '../objects/labels.ts';
import {
  decide,
  DEFAULT_LEASE_DURATION_MS,
  DEFAULT_RENEW_DEADLINE_MS,
  DEFAULT_RETRY_PERIOD_MS,
  jitteredRetryDelayMs,
  type Lease,
  type LeaderElectionConfig,
  type LeaderElectionRecord,
  leaderHealth,
  leaseSpecFromRecord,
  type Observation,
  observe,
  recordFromLease,
  releasedRecord,
  validateLeaderElectionConfig,
} from './leader-record.ts';

const LEASE_API_VERSION = 'coordination.k8s.io/v1';
const LEASE_KIND = 'Lease';
const MASTER_STATUS_METRIC = 'crowsnest_leader_election_master_status';

// ---------------------------------------------------------------------------------------------
// The elector

/** Namespace and name of the Lease. */
export interface LeaseRef {
  readonly namespace: string;
  readonly name: string;
}

/**
 * The Lease calls the elector makes; {@link leaseApi} makes them with a {@link KubeClient}.
 * Failures reject with an error that errors.ts classifies (404, 409, …). Implementations
 * should stop when `signal` aborts; the elector stops waiting then either way.
 */
export interface LeaseApi {
  read(ref: LeaseRef, signal: AbortSignal): Promise<Lease>;
  create(ref: LeaseRef, body: Lease, signal: AbortSignal): Promise<Lease>;
  /** A replace conditional on `body.metadata.resourceVersion`. */
  replace(ref: LeaseRef, body: Lease, signal: AbortSignal): Promise<Lease>;
}

const LEASES_PATH = '/apis/coordination.k8s.io/v1/namespaces';

/** A {@link LeaseApi} on the coordination.k8s.io/v1 API. */
export function leaseApi(client: Pick<KubeClient, 'json'>): LeaseApi {
  const collection = (ref: LeaseRef): string => `${LEASES_PATH}/${encodeURIComponent(ref.namespace)}/leases`;
  const object = (ref: LeaseRef): string => `${collection(ref)}/${encodeURIComponent(ref.name)}`;
  // The deadline signal bounds each request; no separate client timeout.
  return {
    read: (ref, signal) => client.json<Lease>(object(ref), { signal, timeoutMs: 0 }),
    create: (ref, body, signal) => client.json<Lease>(collection(ref), { method: 'POST', body, signal, timeoutMs: 0 }),
    replace: (ref, body, signal) => client.json<Lease>(object(ref), { method: 'PUT', body, signal, timeoutMs: 0 }),
  };
}

/** Options of {@link LeaderElector}. Exactly one of `client` and `leaseApi`. */
export type LeaderElectorOptions = LeaderElectorCommonOptions &
  ({ readonly client: Pick<KubeClient, 'json'>; readonly leaseApi?: undefined } | { readonly leaseApi: LeaseApi; readonly client?: undefined });

export interface LeaderElectorCommonOptions {
  /** Namespace of the Lease. */
  readonly namespace: string;
  /** Name of the Lease; also the `name` label of the metric. */
  readonly name: string;
  /** This replica's identity, unique among candidates (the pod name is the usual choice). */
  readonly identity: string;
  /** See {@link LeaderElectionTiming.leaseDurationMs}. Default {@link DEFAULT_LEASE_DURATION_MS}. */
  readonly leaseDurationMs?: number;
  /** See {@link LeaderElectionTiming.renewDeadlineMs}. Default {@link DEFAULT_RENEW_DEADLINE_MS}. */
  readonly renewDeadlineMs?: number;
  /** See {@link LeaderElectionTiming.retryPeriodMs}. Default {@link DEFAULT_RETRY_PERIOD_MS}. */
  readonly retryPeriodMs?: number;
  /** Release the lease when `run`'s signal aborts while leading. Default `true`. */
  readonly releaseOnCancel?: boolean;
  /** Default {@link realClock}. */
  readonly clock?: Clock;
  /** Default: {@link silentLogger}. */
  readonly logger?: Logger;
  /** Registry for `crowsnest_leader_election_master_status`. Default: the metric is kept but not exported. */
  readonly registry?: Registry;
  /** Source of jitter in [0, 1). Default `Math.random`. */
  readonly random?: () => number;
}

/** Callbacks of {@link LeaderElector.run}. */
export interface LeaderCallbacks {
  /**
   * Called once this replica holds the lease. `leaderSignal` aborts when leadership ends for any
   * reason; stop all leader-only work then. The returned promise may run for the whole term: on
   * cancellation the elector waits for it before releasing the lease, so the successor does not
   * start while we are still writing. It waits at most until the renew deadline; work still
   * running then makes the elector leave the lease to expire instead of releasing it. If the
   * promise rejects, the elector steps down and `run` rejects with that error.
   */
  onStartedLeading(leaderSignal: AbortSignal): Promise<void> | void;
  /**
   * Called once after leading ends (lost renewal, cancellation, or failed `onStartedLeading`).
   * Not called if this replica never led. After a lost lease the process should stop its
   * controllers or exit, like client-go users do.
   */
  onStoppedLeading(): void;
  /** Called whenever a different holder is observed, including ourselves. Not called for "no holder". */
  onNewLeader?(identity: string): void;
}

/**
 * Lifecycle of one {@link LeaderElector.run}:
 * idle → candidate (acquiring) → leading → stopped, or candidate → stopped on cancellation.
 */
type ElectorState =
  | { readonly kind: 'idle' }
  | { readonly kind: 'candidate' }
  | { readonly kind: 'leading'; readonly leaderSignal: AbortSignal }
  | { readonly kind: 'stopped' };

/** Why a term ended. */
type StepDownReason = 'cancelled' | 'renew-failed' | 'lost-to-other' | 'handler-failed';

/** Outcome of one acquire-or-renew attempt. */
type AttemptResult =
  | { readonly kind: 'acquired' }
  | { readonly kind: 'renewed' }
  | { readonly kind: 'not-ours'; readonly holder: string }
  | { readonly kind: 'failed'; readonly error: unknown };

/**
 * Campaigns for a Lease and, while holding it, renews it. One elector runs one election once:
 * `run` resolves when the term ends (or when cancelled before winning); start a new elector (in
 * practice: a new process) to campaign again, because a replica that lost its lease may have
 * missed work and should restart from a clean cache.
 */
export class LeaderElector {
  private readonly api: LeaseApi;
  private readonly config: LeaderElectionConfig;
  private readonly releaseOnCancel: boolean;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly random: () => number;
  private readonly masterStatus: Gauge<'name'>;

  private state: ElectorState = { kind: 'idle' };
  /** What we know of the Lease record, and since when; drives expiry as seen by our clock. */
  private observation: Observation | undefined;
  /** The Lease as last read or written, for its resourceVersion (optimistic concurrency). */
  private lease: Lease | undefined;
  /** Start of the last successful acquire/renew request; the renew deadline counts from here. */
  private lastRenewStartMs = 0;
  /** Last holder passed to `onNewLeader`, so each change is reported once. */
  private reportedLeader = '';

  constructor(options: LeaderElectorOptions) {
    this.config = {
      namespace: options.namespace,
      name: options.name,
      identity: options.identity,
      leaseDurationMs: options.leaseDurationMs ?? DEFAULT_LEASE_DURATION_MS,
      renewDeadlineMs: options.renewDeadlineMs ?? DEFAULT_RENEW_DEADLINE_MS,
      retryPeriodMs: options.retryPeriodMs ?? DEFAULT_RETRY_PERIOD_MS,
    };
    validateLeaderElectionConfig(this.config);
    if (options.leaseApi) this.api = options.leaseApi;
    else if (options.client) this.api = leaseApi(options.client);
    else throw new Error('leader election: client or leaseApi is required');
    this.releaseOnCancel = options.releaseOnCancel ?? true;
    this.clock = options.clock ?? realClock;
    this.random = options.random ?? Math.random;
    const logger = options.logger ?? silentLogger;
    const bindings = { component: 'leader-election', lease: `${this.config.namespace}/${this.config.name}`, identity: this.config.identity };
    this.log = logger.child?.(bindings) ?? logger;
    this.masterStatus = masterStatusGauge(options.registry);
    this.masterStatus.set({ name: this.config.name }, 0);
  }

  /** Whether this replica currently leads: true from acquisition until the term ends. */
  isLeader(): boolean {
    return this.state.kind === 'leading';
  }

  /**
   * Liveness of this replica's part in the election (client-go's `Check`, served on /healthz):
   * throws when it believes it leads but has not renewed the Lease for longer than the lease
   * duration plus `toleranceMs` (see {@link leaderHealth}). Passes on a standby.
   */
  check(toleranceMs: number): void {
    const reason = leaderHealth({ leading: this.isLeader(), lastRenewMs: this.lastRenewStartMs }, this.clock.now(), this.config.leaseDurationMs, toleranceMs);
    if (reason) throw new Error(reason);
  }

  /** The holder in the last Lease record we read or wrote; `undefined` if unknown or released. */
  currentLeader(): string | undefined {
    return this.observation?.record.holderIdentity || undefined;
  }

  /**
   * Campaigns until this replica holds the lease, leads until the term ends, then resolves.
   * Resolves without calling any callback if `signal` aborts before the lease is won.
   *
   * @throws if called more than once, or the error of a rejected `onStartedLeading`.
   */
  async run(signal: AbortSignal, callbacks: LeaderCallbacks): Promise<void> {
    if (this.state.kind !== 'idle') throw new Error('LeaderElector.run may be called only once');
    this.state = { kind: 'candidate' };
    this.log.info({}, 'attempting to acquire leader lease');
    if (!(await this.acquire(signal, callbacks))) {
      this.state = { kind: 'stopped' };
      this.log.info({}, 'stopped campaigning before acquiring the lease');
      return;
    }
    if (signal.aborted) {
      // Won the lease in the same moment we were cancelled: hand it back without starting work.
      this.state = { kind: 'stopped' };
      if (this.releaseOnCancel) await this.release();
      return;
    }
    await this.lead(signal, callbacks);
  }

  /** Tries every jittered retry period until the lease is ours (true) or `signal` aborts (false). */
  private async acquire(signal: AbortSignal, callbacks: LeaderCallbacks): Promise<boolean> {
    while (!signal.aborted) {
      const startedAtMs = this.clock.now();
      // A candidate's attempt gets the renew deadline too: a hung connection must not stall the campaign.
      const result = await this.tryAcquireOrRenew('acquire', signal, this.config.renewDeadlineMs);
      this.reportNewLeader(callbacks);
      if (result.kind === 'acquired' || result.kind === 'renewed') {
        this.lastRenewStartMs = startedAtMs;
        return true;
      }
      if (result.kind === 'failed' && !signal.aborted) {
        if (isConflict(result.error) || isAlreadyExists(result.error)) {
          this.log.debug({}, 'another candidate wrote the lease first; retrying');
        } else {
          this.log.warn({ err: describeError(result.error) }, 'failed to acquire lease; retrying');
        }
      } else if (result.kind === 'not-ours') {
        this.log.debug({ holder: result.holder }, 'lease is held by another replica and has not expired');
      }
      await sleep(this.clock, jitteredRetryDelayMs(this.config.retryPeriodMs, this.random), signal);
    }
    return false;
  }

  /** One term: start the leader work, renew until the term ends, then step down cleanly. */
  private async lead(signal: AbortSignal, callbacks: LeaderCallbacks): Promise<void> {
    const leaderAbort = new AbortController();
    const onRunAbort = (): void => leaderAbort.abort(signal.reason);
    signal.addEventListener('abort', onRunAbort, { once: true });
    this.state = { kind: 'leading', leaderSignal: leaderAbort.signal };
    this.masterStatus.set({ name: this.config.name }, 1);
    this.log.info({ leaseTransitions: this.observation?.record.leaseTransitions }, 'became leader');

    let handlerFailure: { readonly error: unknown } | undefined;
    const leaderWork = Promise.resolve()
      .then(() => callbacks.onStartedLeading(leaderAbort.signal))
      .catch((error: unknown) => {
        handlerFailure = { error };
        this.log.error({ err: describeError(error) }, 'onStartedLeading failed; stepping down');
        leaderAbort.abort(error);
      });

    const renewal = await this.renewUntilStopped(leaderAbort.signal, callbacks);
    signal.removeEventListener('abort', onRunAbort);
    const reason: StepDownReason = handlerFailure ? 'handler-failed' : renewal === 'stopped' ? 'cancelled' : renewal;

    this.state = { kind: 'stopped' };
    this.masterStatus.set({ name: this.config.name }, 0);
    leaderAbort.abort(new Error(`leadership ended: ${reason}`));
    this.log.info({ reason }, 'stopped leading');

    if (reason === 'cancelled' || reason === 'handler-failed') {
      // The lease is still ours until the renew deadline: let the leader work wind down inside
      // that window, then hand over. After a lost renewal there is nothing left to protect.
      const remainingMs = this.lastRenewStartMs + this.config.renewDeadlineMs - this.clock.now();
      const wound = await settleWithin(this.clock, leaderWork, remainingMs);
      if (!wound) {
        // Releasing now would let a successor start beside our still-running work; letting the
        // lease expire instead buys the leaseDuration − renewDeadline margin for it to finish.
        this.log.warn({}, 'leader work did not stop within the renew deadline; not releasing the lease');
      } else if (this.releaseOnCancel) {
        await this.release();
      }
    }
    try {
      callbacks.onStoppedLeading();
    } catch (err) {
      this.log.error({ err: describeError(err) }, 'onStoppedLeading threw');
    }
    if (handlerFailure) throw handlerFailure.error;
  }

  /**
   * Renews every retry period. Returns `stopped` when `leaderSignal` aborts, `renew-failed` when no
   * renewal succeeded within the renew deadline, `lost-to-other` as soon as the Lease shows another
   * holder.
   */
  private async renewUntilStopped(leaderSignal: AbortSignal, callbacks: LeaderCallbacks): Promise<'stopped' | 'renew-failed' | 'lost-to-other'> {
    for (;;) {
      await sleep(this.clock, this.config.retryPeriodMs, leaderSignal);
      if (leaderSignal.aborted) return 'stopped';
      // Retry until one renewal succeeds or the deadline passes. The deadline counts from the start
      // of the last *successful* renewal (client-go counts from the start of this retry round),
      // which bounds the time we act on a stale lease by renewDeadline whatever the retry period.
      for (;;) {
        const remainingMs = this.lastRenewStartMs + this.config.renewDeadlineMs - this.clock.now();
        if (remainingMs <= 0) {
          this.log.warn({ renewDeadlineMs: this.config.renewDeadlineMs }, 'failed to renew lease within the renew deadline');
          return 'renew-failed';
        }
        const startedAtMs = this.clock.now();
        const result = await this.tryAcquireOrRenew('renew', leaderSignal, remainingMs);
        this.reportNewLeader(callbacks);
        if (leaderSignal.aborted) return 'stopped';
        if (result.kind === 'renewed' || result.kind === 'acquired') {
          this.lastRenewStartMs = startedAtMs;
          break;
        }
        if (result.kind === 'not-ours') {
          // client-go keeps polling until the deadline here; another holder is proof we lost, so stop now.
          this.log.warn({ holder: result.holder }, 'lease is held by another replica');
          return 'lost-to-other';
        }
        this.log.warn({ err: describeError(result.error) }, 'failed to renew lease; retrying');
        const leftMs = this.lastRenewStartMs + this.config.renewDeadlineMs - this.clock.now();
        await sleep(this.clock, Math.min(this.config.retryPeriodMs, Math.max(0, leftMs)), leaderSignal);
        if (leaderSignal.aborted) return 'stopped';
      }
    }
  }

  /**
   * One round of client-go's `tryAcquireOrRenew`, bounded by `timeoutMs`. In `renew` mode a Lease
   * that is free or expired is *not* taken: a leader that finds its lease no longer names it has
   * lost it at some point, and must step down rather than carry on as if nothing happened.
   */
  private async tryAcquireOrRenew(mode: 'acquire' | 'renew', signal: AbortSignal, timeoutMs: number): Promise<AttemptResult> {
    const deadline = deadlineSignal(this.clock, timeoutMs, signal);
    try {
      // Fast path (as client-go): while leading, write over the Lease our last write returned;
      // only if that fails (someone else wrote, or the request failed) read it again.
      if (mode === 'renew' && this.lease && this.observation?.record.holderIdentity === this.config.identity) {
        const decision = decide(this.observation, this.clock.now(), this.config.identity, this.config);
        if (decision.action === 'renew') {
          try {
            await this.replaceLease(this.lease, decision.record, deadline.signal);
            return { kind: 'renewed' };
          } catch (err) {
            if (deadline.signal.aborted) return { kind: 'failed', error: err };
            this.log.debug({ err: describeError(err) }, 'optimistic renewal failed; re-reading the lease');
          }
        }
      }

      let lease: Lease | undefined;
      try {
        lease = await abortable(this.api.read(this.leaseRef(), deadline.signal), deadline.signal);
      } catch (err) {
        if (!isNotFound(err)) return { kind: 'failed', error: err };
      }
      if (lease) {
        this.lease = lease;
        this.observation = observe(this.observation, recordFromLease(lease), this.clock.now());
      } else {
        this.observation = undefined;
      }

      const decision = decide(this.observation, this.clock.now(), this.config.identity, this.config);
      switch (decision.action) {
        case 'wait':
          return { kind: 'not-ours', holder: decision.holder };
        case 'create':
          await this.createLease(decision.record, deadline.signal);
          return { kind: 'acquired' };
        case 'renew':
          await this.replaceLease(lease as Lease, decision.record, deadline.signal);
          return { kind: 'renewed' };
        case 'acquire':
          if (mode === 'renew') return { kind: 'not-ours', holder: decision.previousHolder };
          await this.replaceLease(lease as Lease, decision.record, deadline.signal);
          this.log.info({ previousHolder: decision.previousHolder || undefined }, 'took over the lease');
          return { kind: 'acquired' };
      }
    } catch (err) {
      // A 409 here means another candidate wrote between our read and our write: it won this round.
      return { kind: 'failed', error: err };
    } finally {
      deadline.dispose();
    }
  }

  private async createLease(record: LeaderElectionRecord, signal: AbortSignal): Promise<void> {
    const body: Lease = {
      apiVersion: LEASE_API_VERSION,
      kind: LEASE_KIND,
      metadata: { name: this.config.name, namespace: this.config.namespace, labels: managedLabels() },
      spec: leaseSpecFromRecord(record),
    };
    const created = await abortable(this.api.create(this.leaseRef(), body, signal), signal);
    this.remember(created, record);
  }

  /** Replaces the Lease's spec; `current.metadata.resourceVersion` makes it conditional. */
  private async replaceLease(current: Lease, record: LeaderElectionRecord, signal: AbortSignal): Promise<void> {
    // Keep spec fields we do not manage (strategy, preferredHolder of coordinated election).
    const body: Lease = { ...current, spec: { ...current.spec, ...leaseSpecFromRecord(record) } };
    const replaced = await abortable(this.api.replace(this.leaseRef(), body, signal), signal);
    this.remember(replaced, record);
  }

  /** After our own successful write: that record is what everyone now sees, as of now. */
  private remember(lease: Lease, record: LeaderElectionRecord): void {
    this.lease = lease;
    this.observation = { record, observedAtMs: this.clock.now() };
  }

  /**
   * Gives the lease up so a successor need not wait a full lease duration. Best effort, and
   * conditional on resourceVersion like every write. A 409 is re-checked once: a renewal we
   * abandoned on cancellation may have landed after all, leaving our cached resourceVersion stale
   * while the Lease still names us; anyone else's write means there is nothing left to release.
   */
  private async release(): Promise<void> {
    if (!this.lease || this.observation?.record.holderIdentity !== this.config.identity) return;
    const neverAborted = new AbortController().signal;
    const deadline = deadlineSignal(this.clock, this.config.renewDeadlineMs, neverAborted);
    try {
      try {
        await this.replaceLease(this.lease, releasedRecord(this.observation.record, this.clock.now()), deadline.signal);
      } catch (err) {
        if (!isConflict(err)) throw err;
        const fresh = await abortable(this.api.read(this.leaseRef(), deadline.signal), deadline.signal);
        const record = recordFromLease(fresh);
        if (record.holderIdentity !== this.config.identity) {
          this.log.info({ holder: record.holderIdentity || undefined }, 'lease already changed hands; nothing to release');
          return;
        }
        await this.replaceLease(fresh, releasedRecord(record, this.clock.now()), deadline.signal);
      }
      this.log.info({}, 'released the lease');
    } catch (err) {
      this.log.warn({ err: describeError(err) }, 'failed to release the lease; successors will wait for it to expire');
    } finally {
      deadline.dispose();
    }
  }

  private reportNewLeader(callbacks: LeaderCallbacks): void {
    const holder = this.observation?.record.holderIdentity ?? '';
    if (holder === '' || holder === this.reportedLeader) return;
    this.reportedLeader = holder;
    this.log.info({ leader: holder }, 'new leader observed');
    try {
      callbacks.onNewLeader?.(holder);
    } catch (err) {
      this.log.error({ err: describeError(err) }, 'onNewLeader threw');
    }
  }

  private leaseRef(): LeaseRef {
    return { name: this.config.name, namespace: this.config.namespace };
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

function masterStatusGauge(registry: Registry | undefined): Gauge<'name'> {
  const existing = registry?.getSingleMetric(MASTER_STATUS_METRIC);
  if (existing) return existing as Gauge<'name'>;
  return new Gauge({
    name: MASTER_STATUS_METRIC,
    help: 'Whether this replica is the leader of the lease called name: 1 leading, 0 standby (client-go leader_election_master_status).',
    labelNames: ['name'],
    registers: registry ? [registry] : [],
  });
}


/**
 * Waits for `promise` (which must not reject) but no longer than `timeoutMs` on `clock`.
 * Resolves `true` if it settled in time.
 */
async function settleWithin(clock: Clock, promise: Promise<void>, timeoutMs: number): Promise<boolean> {
  let settled = false;
  const tracked = promise.then(() => {
    settled = true;
  });
  if (timeoutMs > 0) {
    const gaveUp = new AbortController();
    await Promise.race([tracked, sleep(clock, timeoutMs, gaveUp.signal)]);
    gaveUp.abort();
  }
  // One more turn so a promise that settled in the same tick as the timer counts as settled.
  await Promise.resolve();
  return settled;
}

/** A signal that aborts when `parent` does or after `timeoutMs` on `clock` (with a `TimeoutError`). */
function deadlineSignal(clock: Clock, timeoutMs: number, parent: AbortSignal): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onParentAbort = (): void => controller.abort(parent.reason);
  if (parent.aborted) controller.abort(parent.reason);
  else parent.addEventListener('abort', onParentAbort, { once: true });
  const timer = clock.setTimer(
    () => controller.abort(new DOMException(`lease request timed out after ${timeoutMs} ms`, 'TimeoutError')),
    timeoutMs,
  );
  return {
    signal: controller.signal,
    dispose() {
      clock.clearTimer(timer);
      parent.removeEventListener('abort', onParentAbort);
    },
  };
}

/**
 * Rejects with the abort reason as soon as `signal` aborts, whether or not the underlying call
 * honours the signal — our deadlines must hold even for a client stuck before its request is sent.
 */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
