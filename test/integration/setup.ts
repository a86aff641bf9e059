// Global setup/teardown for `node --test`: one control plane for the whole integration run.
export { globalSetup, globalTeardown } from './testbed.ts';
