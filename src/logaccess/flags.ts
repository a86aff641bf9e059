/**
 * The logaccess controller's flags (`crowsnest operator --logaccess-*`, and podlogreader's
 * `--create-sa-and-rolebinding`), resolved into its {@link LogAccessOptions}.
 */
import { flag, type FlagResolver } from '../flags.ts';
import { asString, parseBool } from '../flag-values.ts';
import { DEFAULT_LOGACCESS_OPTIONS, type LogAccessOptions } from './desired.ts';

/** A prefix that keeps `<prefix><workload name>` a valid object name. */
function parseNamePrefix(value: string | boolean): string {
  const text = asString(value);
  if (!/^[a-z0-9]([-a-z0-9.]*)?$/.test(text) || text.length > 63) throw new Error('must be lower-case letters, digits, dots and dashes, starting with a letter or digit');
  return text;
}

export const logAccessFlags = {
  namePrefix: flag({
    name: 'logaccess-name-prefix',
    valueName: '<prefix>',
    description: 'logaccess: name prefix of the Role, ServiceAccount and RoleBinding kept per opted-in workload',
    // podlogreader's naming, so Roles users already reference keep their names.
    default: DEFAULT_LOGACCESS_OPTIONS.namePrefix,
    parse: parseNamePrefix,
  }),
  allowPodList: flag({
    name: 'logaccess-allow-pod-list',
    valueName: '[bool]',
    description: `logaccess: also grant 'list pods' in the namespace, as podlogreader did (it exposes the specs of every pod there, env values included)`,
    default: DEFAULT_LOGACCESS_OPTIONS.allowPodList,
    parse: parseBool,
    negatable: true,
  }),
  createServiceAccountAndRoleBinding: flag({
    name: 'create-sa-and-rolebinding',
    valueName: '[bool]',
    description: 'logaccess: also keep a ServiceAccount and a RoleBinding of the same name (podlogreader flag); existing ones we did not create are left alone',
    default: DEFAULT_LOGACCESS_OPTIONS.createServiceAccountAndRoleBinding,
    parse: parseBool,
    negatable: true,
  }),
  adoptPodlogreader: flag({
    name: 'logaccess-adopt-podlogreader',
    valueName: '[bool]',
    description: 'logaccess: take over the Role, ServiceAccount and RoleBinding podlogreader made for a Deployment (podlogreader-<name>, its exact rules, nothing added), with an Event; anything else of that name is left alone',
    default: DEFAULT_LOGACCESS_OPTIONS.adoptPodlogreader,
    parse: parseBool,
    negatable: true,
  }),
};

/** @throws OptionError naming the offending flag. */
export function resolveLogAccessOptions(flags: FlagResolver): LogAccessOptions {
  return {
    namePrefix: flags.get(logAccessFlags.namePrefix),
    allowPodList: flags.get(logAccessFlags.allowPodList),
    createServiceAccountAndRoleBinding: flags.get(logAccessFlags.createServiceAccountAndRoleBinding),
    adoptPodlogreader: flags.get(logAccessFlags.adoptPodlogreader),
  };
}
