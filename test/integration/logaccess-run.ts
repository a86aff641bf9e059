/**
 * Runs the logaccess capability in the test process the way `crowsnest operator --controllers
 * logaccess --leader-elect=false` runs it: registered with a {@link Manager}, which starts its
 * informers, waits for their caches and runs its controller.
 */
import type { Registry } from 'prom-client';
import type { KubeClient } from '../../src/kube/client/client.ts';
import type { EventRecorder } from '../../src/kube/objects/events.ts';
import { silentLogger, type Logger } from '../../src/kube/logger-type.ts';
import { Manager } from '../../src/kube/runtime/manager.ts';
import { registerLogAccess } from '../../src/logaccess/controller.ts';
import type { LogAccessOptions } from '../../src/logaccess/desired.ts';

export interface LogAccessRunDeps {
  readonly client: KubeClient;
  readonly registry: Registry;
  readonly recorder: EventRecorder;
  readonly logger?: Logger;
  /** Default 2. */
  readonly workers?: number;
  /** Sees the manager before it runs (its readiness checks, say). */
  readonly onManager?: (manager: Manager) => void;
}

/** Runs logaccess until `signal` aborts; resolves once it drained. Rejects if it fails on its own. */
export async function runLogAccess(deps: LogAccessRunDeps, options: LogAccessOptions, signal: AbortSignal): Promise<void> {
  const manager = new Manager({
    client: deps.client, registry: deps.registry, recorder: deps.recorder, logger: deps.logger ?? silentLogger, workers: deps.workers ?? 2,
  });
  registerLogAccess(manager, options);
  deps.onManager?.(manager);
  await manager.run(signal);
}
