/**
 * The process's Prometheus registry. Never prom-client's global registry: a registry passed in
 * explicitly keeps tests isolated and makes every metric's owner visible at its construction.
 */
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { buildInfo as currentBuildInfo, type BuildInfo } from '../version.ts';

export interface RegistryOptions {
  /** Labels for `crowsnest_build_info`. Default: this process's {@link currentBuildInfo}. */
  readonly buildInfo?: Pick<BuildInfo, 'version' | 'nodeVersion'>;
}

/**
 * Creates a registry holding the Node.js process metrics (`process_*`, `nodejs_*`) and
 * `crowsnest_build_info{version,node_version} 1`, the kube-state-metrics style info metric that
 * lets dashboards join any series with the version that produced it.
 */
export function createRegistry(options: RegistryOptions = {}): Registry {
  const register = new Registry();
  collectDefaultMetrics({ register });

  const info = options.buildInfo ?? currentBuildInfo();
  const build = new Gauge({
    name: 'crowsnest_build_info',
    help: 'A metric with a constant 1 value labeled by the crowsnest version and the Node.js version running it.',
    labelNames: ['version', 'node_version'] as const,
    registers: [register],
  });
  build.set({ version: info.version, node_version: info.nodeVersion }, 1);
  return register;
}
