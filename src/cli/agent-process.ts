/**
 * How the in-pod processes run (`crowsnest agent`, `crowsnest sidecar`): their configuration comes
 * from the environment the webhook injected, a bad one ends them with a usage error naming the
 * variable, they log JSON lines without pino, and SIGTERM or SIGINT stops them cleanly (exit 0:
 * the kubelet stops a native sidecar after the app containers, and that is not a failure).
 */
import type { Logger } from '../kube/logger-type.ts';
import { EXIT_USAGE, requireGlobals, type CliIO, type RunState } from './command.ts';

export interface InPodProcess<C> {
  /** Reads the environment; throws a {@link InPodProcess.ConfigError} naming what is wrong. */
  readonly configFromEnv: (env: Readonly<Record<string, string | undefined>>) => C;
  readonly ConfigError: new (...args: never[]) => Error;
  readonly start: (config: C, logger: Logger) => Promise<{ stop(): Promise<void> }>;
}

/** Runs `process` until SIGTERM or SIGINT. */
export async function runInPod<C>(io: CliIO, state: RunState, inPod: InPodProcess<C>): Promise<void> {
  const globals = requireGlobals(state);
  let config: C;
  try {
    config = inPod.configFromEnv(io.env);
  } catch (err) {
    if (!(err instanceof inPod.ConfigError)) throw err;
    io.stderr(`error: ${err.message}\n`);
    state.exitCode = EXIT_USAGE;
    return;
  }
  const { agentLogger } = await import('../observe/json-lines-logger.ts');
  const logger = agentLogger((line) => io.stderr(line), globals.logLevel === 'debug' || globals.logLevel === 'trace' ? 'debug' : 'info');
  const running = await inPod.start(config, logger);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  logger.info({ signal }, 'stopping');
  await running.stop();
}
