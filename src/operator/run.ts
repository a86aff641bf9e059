/** Placeholder: the real operator runner replaces this file. */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { OperatorOptions } from '../cli/options.ts';

export async function runOperator(_opts: OperatorOptions, _deps: { logger: Logger; registry: Registry }): Promise<number> {
  throw new Error('not wired yet');
}
