/**
 * A {@link Logger} writing pino's line shape (`level`, `time`, `msg`, then the fields) without
 * pino, for the in-pod processes whose memory counts (the prober's agent, guard's log agent):
 * loading pino costs them more than they log.
 */
import type { Logger } from '../kube/logger-type.ts';

/** JSON lines on stderr (or `write`), at `level` and above. */
export function agentLogger(write: (line: string) => void = (line) => process.stderr.write(line), level: 'debug' | 'info' = 'info'): Logger {
  const levels = { debug: 20, info: 30, warn: 40, error: 50 } as const;
  const min = levels[level];
  const log = (name: keyof typeof levels) => (obj: object, msg?: string): void => {
    if (levels[name] < min) return;
    write(`${JSON.stringify({ level: levels[name], time: Date.now(), ...obj, ...(msg ? { msg } : {}) })}\n`);
  };
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}
