/**
 * The in-pod agents' logger: JSON lines on stderr in pino's shape (`level`, `time`, `msg`), without
 * loading pino (its transport machinery costs the agents memory they do not have).
 */
import type { Logger } from '../../kube/logger-type.ts';

/** JSON lines on stderr, pino's shape (`level`, `time`, `msg`), without pino. */
export function agentLogger(write: (line: string) => void = (line) => process.stderr.write(line), level: 'debug' | 'info' = 'info'): Logger {
  const levels = { debug: 20, info: 30, warn: 40, error: 50 } as const;
  const min = levels[level];
  const log = (name: keyof typeof levels) => (obj: object, msg?: string): void => {
    if (levels[name] < min) return;
    write(`${JSON.stringify({ level: levels[name], time: Date.now(), ...obj, ...(msg ? { msg } : {}) })}\n`);
  };
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}
