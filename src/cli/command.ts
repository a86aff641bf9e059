/**
 * What every command module shares: the process surroundings, the exit codes, and the state the
 * root command hands to its subcommands. Each command lives in its own file and registers itself
 * on the root `Command` in `main.ts`.
 */
import type { GlobalOptions } from './options.ts';

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
