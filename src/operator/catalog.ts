/**
 * The controllers `crowsnest operator` can run. Kept free of heavy imports so the CLI can list
 * and validate `--controllers` without loading the runtime: each entry loads its code lazily.
 */
import type { OperatorOptions } from './options.ts';
import type { ControllerContext } from './context.ts';

export interface ControllerDefinition {
  /** Name used in `--controllers`, logs and metric labels. */
  readonly name: string;
  /** One line for `--help`. */
  readonly description: string;
  /**
   * Runs the controller until `signal` aborts (leadership lost or shutdown), then drains its
   * queue and resolves. Called only on the leader when leader election is on. `options` are the
   * operator's; a capability reads its own section of them.
   */
  readonly load: () => Promise<(context: ControllerContext, options: OperatorOptions, signal: AbortSignal) => Promise<void>>;
}

/** Every controller, in start order. Capabilities add theirs here as they land. */
export const controllerCatalog: readonly ControllerDefinition[] = [
  {
    name: 'logaccess',
    description: 'a Role allowing pods/log on exactly the pods of each opted-in workload (podlogreader-affiliate: enable)',
    load: async () => {
      const { runLogAccess } = await import('../logaccess/controller.ts');
      return (context, options, signal) => runLogAccess(context, options.logaccess, signal);
    },
  },
];
