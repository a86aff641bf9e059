import type { Registry } from 'prom-client';
import type { KubeClient } from '../kube/client.ts';
import type { EventRecorder } from '../kube/events.ts';
import type { Logger } from '../kube/logger-type.ts';
import type { HealthCheck } from '../observe/http.ts';

/** What the operator hands each controller it starts. */
export interface ControllerContext {
  /** Pooled API client shared by all controllers (informers, writes). */
  readonly client: KubeClient;
  /** Logger already bound to `controller: <name>`. */
  readonly logger: Logger;
  readonly registry: Registry;
  readonly recorder: EventRecorder;
  /** Concurrent reconciles (`--workers`). */
  readonly workers: number;
  /** Registers a readiness check (e.g. "informers synced"); the operator is ready when all pass. */
  readonly addReadinessCheck: (check: HealthCheck) => void;
}
