/**
 * Every API type Crowsnest defines, with the file that defines it. The chart's CRDs are generated
 * from this list (`make crds` → scripts/crds.ts), and a unit test fails when the committed CRDs
 * differ from what the definitions generate.
 */
import type { ApiDefinition } from '../kube/api/define.ts';
import { GuardPolicyApi } from '../guard/api.ts';
import { NetworkProberApi } from '../prober/api.ts';

export const apiDefinitions: ReadonlyArray<{ readonly definition: ApiDefinition; readonly source: string }> = [
  { definition: NetworkProberApi, source: 'src/prober/api.ts' },
  { definition: GuardPolicyApi, source: 'src/guard/api.ts' },
];

/** Where the chart keeps its CRDs (Helm installs `crds/` before the templates). */
export const CRD_DIR = 'deploy/helm/crowsnest/crds';

/** The CRD files the definitions generate: file name → YAML. */
export function generatedCrdFiles(): Map<string, string> {
  return new Map(apiDefinitions.map(({ definition, source }) => [`${definition.plural}.${definition.group}.yaml`, definition.crdYaml(source)]));
}
