/**
 * The images real nodes start with. TEMPORARY (until the loopback registry lands): OCI archives
 * from $CROWSNEST_TESTBED_IMAGES (pause.tar, test.tar), imported into each node's containerd.
 */
import { join } from 'node:path';
import type { RealNodeImages } from './realnode.ts';

export const PAUSE_IMAGE = 'localhost/crowsnest/pause:dev';
export const TEST_IMAGE = 'localhost/crowsnest/test:dev';

export async function testbedImages(_dir?: string): Promise<RealNodeImages> {
  const from = process.env['CROWSNEST_TESTBED_IMAGES'];
  if (!from) throw new Error('set CROWSNEST_TESTBED_IMAGES to a dir with pause.tar and test.tar');
  return { pause: PAUSE_IMAGE, archives: [join(from, 'pause.tar'), join(from, 'test.tar')] };
}
