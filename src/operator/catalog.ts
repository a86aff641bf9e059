/**
 * The controllers `crowsnest operator` can run. Kept free of heavy imports so the CLI can list
 * and validate `--controllers` without loading the runtime: each entry loads its code lazily.
 */
import type { ControllerContext } from './context.ts';

export interface ControllerDefinition {
  /** Name used in `--controllers`, logs and metric labels. */
  readonly name: string;
  /** One line for `--help`. */
  readonly description: string;
  /**
   * Runs the controller until `signal` aborts (leadership lost or shutdown), then drains its
   * queue and resolves. Called only on the leader when leader election is on.
   */
  readonly load: () => Promise<(context: ControllerContext, signal: AbortSignal) => Promise<void>>;
}

/** Every controller, in start order. Capabilities add theirs here as they land. */
export const controllerCatalog: readonly ControllerDefinition[] = [];
