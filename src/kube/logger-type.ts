/**
 * The logging surface the runtime needs, shaped like pino's (`logger.info({ key }, 'message')`), so
 * a pino logger can be passed as is while the runtime does not depend on pino itself and tests can
 * pass a recording fake.
 */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  /** Returns a logger that adds `bindings` to every line. Optional: without it callers log through this logger. */
  child?(bindings: object): Logger;
}

/** A logger that drops everything; the default where a component was given none. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
