/**
 * The pure half of leader election: the Lease record, the timing rules and the decisions over
 * them, after client-go's `tools/leaderelection` (see leader.ts for the elector that sequences
 * them with API calls and timers). No I/O, no metrics library: the CLI can validate timings with
 * {@link validateLeaderElectionConfig}, and every rule is tested with plain numbers.
 *
 * - A Lease held by someone else counts as valid until `leaseDurationSeconds` after the moment
 *   *we* first saw its current record (our clock, never the remote `renewTime`), so clock skew
 *   between replicas cannot make a live leader look expired ({@link observe}, {@link decide}).
 * - A leader is healthy while it has renewed within the lease duration plus a tolerance
 *   ({@link leaderHealth}, client-go's `HealthzAdaptor`/`Check`).
 */
import { microTime } from '../objects/microtime.ts';
import type { ObjectMeta } from '../objects/resources.ts';

/** Default lease duration (client-go's recommended 15 s). */
export const DEFAULT_LEASE_DURATION_MS = 15_000;
/** Default renew deadline (client-go's recommended 10 s). */
export const DEFAULT_RENEW_DEADLINE_MS = 10_000;
/** Default retry period (client-go's recommended 2 s). */
export const DEFAULT_RETRY_PERIOD_MS = 2_000;
/**
 * Candidates wait `retryPeriod × (1 + random × JITTER_FACTOR)` between attempts (client-go's
 * `JitterFactor`), so replicas started together do not hit the API server in lockstep.
 */
export const JITTER_FACTOR = 1.2;
/** `leaseDurationSeconds` written on release: successors treat the Lease as free one second after seeing it. */
export const RELEASED_LEASE_DURATION_SECONDS = 1;

const MS_PER_SECOND = 1000;

// ---------------------------------------------------------------------------------------------
// The Lease object

/** The election fields of a `coordination.k8s.io/v1` Lease spec; times are MicroTime strings on the wire. */
export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
  /** Fields we do not manage (strategy, preferredHolder) are carried through replaces untouched. */
  [field: string]: unknown;
}

/** A `coordination.k8s.io/v1` Lease. */
export interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: LeaseSpec;
}

// ---------------------------------------------------------------------------------------------
// Configuration

/** Timings of an election; all durations in milliseconds. */
export interface LeaderElectionTiming {
  /** How long a non-leader waits after observing a change before it may take the lease over. Whole seconds. */
  readonly leaseDurationMs: number;
  /** How long the leader keeps trying to renew before it steps down. */
  readonly renewDeadlineMs: number;
  /** Interval between attempts to acquire or renew. */
  readonly retryPeriodMs: number;
}

/** What {@link validateLeaderElectionConfig} checks. */
export interface LeaderElectionConfig extends LeaderElectionTiming {
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
}

/**
 * Throws an Error naming the violated rule when `config` cannot give a safe election; the same
 * rules as client-go's `NewLeaderElector`, plus whole-second lease durations (the Lease stores an
 * integer `leaseDurationSeconds`; rounding would silently shorten the lease the others honour).
 */
export function validateLeaderElectionConfig(config: LeaderElectionConfig): void {
  for (const field of ['namespace', 'name', 'identity'] as const) {
    if (typeof config[field] !== 'string' || config[field] === '') {
      throw new Error(`leader election: ${field} must be a non-empty string`);
    }
  }
  for (const field of ['leaseDurationMs', 'renewDeadlineMs', 'retryPeriodMs'] as const) {
    const value = config[field];
    if (!Number.isFinite(value) || value <= 0) {
      throw new Error(`leader election: ${field} must be greater than zero (got ${value})`);
    }
  }
  const { leaseDurationMs, renewDeadlineMs, retryPeriodMs } = config;
  if (leaseDurationMs % MS_PER_SECOND !== 0) {
    throw new Error(`leader election: leaseDurationMs must be a whole number of seconds (got ${leaseDurationMs})`);
  }
  if (leaseDurationMs <= renewDeadlineMs) {
    throw new Error(`leader election: leaseDurationMs (${leaseDurationMs}) must be greater than renewDeadlineMs (${renewDeadlineMs})`);
  }
  if (renewDeadlineMs <= JITTER_FACTOR * retryPeriodMs) {
    throw new Error(
      `leader election: renewDeadlineMs (${renewDeadlineMs}) must be greater than retryPeriodMs × ${JITTER_FACTOR} (${JITTER_FACTOR * retryPeriodMs})`,
    );
  }
}

/** Delay before a candidate's next attempt: `retryPeriodMs` plus up to {@link JITTER_FACTOR} times it. */
export function jitteredRetryDelayMs(retryPeriodMs: number, random: () => number): number {
  return retryPeriodMs + random() * JITTER_FACTOR * retryPeriodMs;
}

// ---------------------------------------------------------------------------------------------
// The election record and the decisions over it

/** The election-relevant content of a Lease's spec; times in epoch milliseconds. */
export interface LeaderElectionRecord {
  /** Who holds the lease; `''` when nobody does (never held, or released). */
  readonly holderIdentity: string;
  readonly leaseDurationSeconds: number;
  readonly acquireTimeMs: number | undefined;
  readonly renewTimeMs: number | undefined;
  /** How many times the lease changed hands. */
  readonly leaseTransitions: number;
}

/**
 * Reads the record out of a Lease. Times arrive as the RFC 3339 strings the server sent; a `Date`
 * (what a hand-built Lease may hold) is accepted too.
 */
export function recordFromLease(lease: Lease): LeaderElectionRecord {
  const spec = lease.spec ?? {};
  return {
    holderIdentity: spec.holderIdentity ?? '',
    leaseDurationSeconds: spec.leaseDurationSeconds ?? 0,
    acquireTimeMs: timeMs(spec.acquireTime),
    renewTimeMs: timeMs(spec.renewTime),
    leaseTransitions: spec.leaseTransitions ?? 0,
  };
}

function timeMs(value: unknown): number | undefined {
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'string') {
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? undefined : ms;
  }
  return undefined;
}

/**
 * The Lease spec fields for `record`. Times are MicroTime strings because the API server parses
 * MicroTime with exactly six fractional digits and rejects the three a plain `Date` serializes to.
 */
export function leaseSpecFromRecord(record: LeaderElectionRecord): LeaseSpec {
  return {
    holderIdentity: record.holderIdentity,
    leaseDurationSeconds: record.leaseDurationSeconds,
    acquireTime: record.acquireTimeMs === undefined ? undefined : microTime(record.acquireTimeMs),
    renewTime: record.renewTimeMs === undefined ? undefined : microTime(record.renewTimeMs),
    leaseTransitions: record.leaseTransitions,
  };
}

/** A record together with the local time at which we first saw it. */
export interface Observation {
  readonly record: LeaderElectionRecord;
  /** Our clock (epoch ms) when this exact record was first read. */
  readonly observedAtMs: number;
}

function sameRecord(a: LeaderElectionRecord, b: LeaderElectionRecord): boolean {
  return (
    a.holderIdentity === b.holderIdentity &&
    a.leaseDurationSeconds === b.leaseDurationSeconds &&
    a.acquireTimeMs === b.acquireTimeMs &&
    a.renewTimeMs === b.renewTimeMs &&
    a.leaseTransitions === b.leaseTransitions
  );
}

/**
 * Folds a freshly read record into what we know: an unchanged record keeps its original
 * `observedAtMs` (the holder has not renewed since), a changed one restarts the clock at `nowMs`.
 */
export function observe(previous: Observation | undefined, record: LeaderElectionRecord, nowMs: number): Observation {
  if (previous && sameRecord(previous.record, record)) return previous;
  return { record, observedAtMs: nowMs };
}

/** Local time (epoch ms) from which the observed holder's lease counts as expired. */
export function leaseExpiresAtMs(observation: Observation): number {
  return observation.observedAtMs + observation.record.leaseDurationSeconds * MS_PER_SECOND;
}

/**
 * What to do about the Lease:
 * - `create`: there is none; create it holding it ourselves;
 * - `acquire`: it is free (released, or the holder's lease expired); take it over with `record`;
 * - `renew`: we hold it; write `record` with a fresh renew time;
 * - `wait`: someone else holds a lease that is valid until `expiresAtMs` (our clock).
 */
export type Decision =
  | { readonly action: 'create'; readonly record: LeaderElectionRecord }
  | { readonly action: 'acquire'; readonly record: LeaderElectionRecord; readonly previousHolder: string }
  | { readonly action: 'renew'; readonly record: LeaderElectionRecord }
  | { readonly action: 'wait'; readonly holder: string; readonly expiresAtMs: number };

/**
 * Decides, from what we observed of the Lease (`undefined`: it does not exist), what `identity`
 * should do at `nowMs`. Mirrors client-go's `tryAcquireOrRenew`: renewing keeps `acquireTime` and
 * `leaseTransitions`; taking over counts a transition and stamps a new `acquireTime`.
 */
export function decide(
  observation: Observation | undefined,
  nowMs: number,
  identity: string,
  config: Pick<LeaderElectionTiming, 'leaseDurationMs'>,
): Decision {
  const leaseDurationSeconds = config.leaseDurationMs / MS_PER_SECOND;
  if (!observation) {
    return {
      action: 'create',
      record: { holderIdentity: identity, leaseDurationSeconds, acquireTimeMs: nowMs, renewTimeMs: nowMs, leaseTransitions: 0 },
    };
  }
  const current = observation.record;
  if (current.holderIdentity === identity) {
    return { action: 'renew', record: { ...current, leaseDurationSeconds, renewTimeMs: nowMs } };
  }
  const expiresAtMs = leaseExpiresAtMs(observation);
  if (current.holderIdentity !== '' && nowMs < expiresAtMs) {
    return { action: 'wait', holder: current.holderIdentity, expiresAtMs };
  }
  return {
    action: 'acquire',
    previousHolder: current.holderIdentity,
    record: {
      holderIdentity: identity,
      leaseDurationSeconds,
      acquireTimeMs: nowMs,
      renewTimeMs: nowMs,
      leaseTransitions: current.leaseTransitions + 1,
    },
  };
}

/** The record a leader writes to give the lease up (client-go's `release`). */
export function releasedRecord(current: LeaderElectionRecord, nowMs: number): LeaderElectionRecord {
  return {
    holderIdentity: '',
    leaseDurationSeconds: RELEASED_LEASE_DURATION_SECONDS,
    acquireTimeMs: nowMs,
    renewTimeMs: nowMs,
    leaseTransitions: current.leaseTransitions,
  };
}

// ---------------------------------------------------------------------------------------------
// Health of a leader

/** What {@link leaderHealth} needs to know about this replica's term. */
export interface LeaderTerm {
  /** Whether this replica believes it leads. */
  readonly leading: boolean;
  /** Our clock (epoch ms) at the start of the last renewal the API server accepted. */
  readonly lastRenewMs: number;
}

/**
 * client-go's leader election health check (`LeaderElector.Check`): a replica that believes it
 * leads but has not renewed for longer than the lease duration plus `toleranceMs` is unhealthy.
 * By then every other candidate may have taken the Lease, so a replica stuck in that state (a
 * hung renewal, a wedged event loop that came back) must be restarted rather than go on acting
 * as leader. Not leading is always healthy: a standby has nothing to renew.
 *
 * @returns undefined when healthy, else the reason.
 */
export function leaderHealth(term: LeaderTerm, nowMs: number, leaseDurationMs: number, toleranceMs: number): string | undefined {
  if (!term.leading) return undefined;
  const silentMs = nowMs - term.lastRenewMs;
  if (silentMs <= leaseDurationMs + toleranceMs) return undefined;
  return `leading but the lease was last renewed ${Math.round(silentMs)} ms ago (lease duration ${leaseDurationMs} ms + tolerance ${toleranceMs} ms)`;
}
