/**
 * What every command module shares: the process surroundings, the exit codes, and the state the
 * root command hands to its subcommands. Each command lives in its own file, which `main.ts`
 * imports when the command line names that command.
 */
import type { GlobalOptions } from './flags.ts';

/** Exit codes, as in most Unix tools: 2 means "you called me wrong", 1 "I failed". */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** The process surroundings the CLI reads and writes; injected so tests can run `main` in-process. */
export interface CliIO {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Whether stderr is a terminal; picks the default log format. */
  readonly stderrIsTTY: boolean;
}

export const processIO: CliIO = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
  stderrIsTTY: process.stderr.isTTY === true,
};

/** What the command actions hand back to {@link main}. */
export interface RunState {
  /** Set by the pre-action hook before any command runs. */
  globals?: GlobalOptions;
  exitCode: number;
}

export function requireGlobals(state: RunState): GlobalOptions {
  // The preAction hook always runs first; this guards against that wiring being lost.
  if (!state.globals) throw new Error('internal error: global options not resolved');
  return state.globals;
}

/**
 * Turns SIGTERM/SIGINT into an abort of the returned signal (logging `message`), for commands that
 * must clean up before exiting (delete their pods, drop a partial file). `dispose` removes the
 * handlers again.
 */
export function abortOnTermination(logger: { warn(obj: object, msg?: string): void }, message: string): { signal: AbortSignal; dispose: () => void } {
  const shutdown = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    logger.warn({ signal }, message);
    shutdown.abort(new Error(`interrupted by ${signal}`));
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  return {
    signal: shutdown.signal,
    dispose: () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    },
  };
}

/** A KubeClient for the global `--kubeconfig`/`--context`; loads the runtime lazily (it is not needed for --help). */
export async function kubeClientFor(globals: GlobalOptions, env: Readonly<Record<string, string | undefined>>): Promise<import('../kube/client/client.ts').KubeClient> {
  const [{ loadKubeConfig }, { KubeClient }] = await Promise.all([import('../kube/client/config.ts'), import('../kube/client/client.ts')]);
  const kubeConfig = loadKubeConfig({ ...(globals.kubeconfig ? { kubeconfig: globals.kubeconfig } : {}), ...(globals.context ? { context: globals.context } : {}) }, { env });
  return new KubeClient(kubeConfig);
}
