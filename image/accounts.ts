/**
 * The users an image knows, written as /etc/passwd and /etc/group so that tools that look a uid
 * up (Node's `os.userInfo()`, `id`, `ps`) find a name, as in distroless images: root, nobody,
 * and `nonroot` with uid/gid 65532, the conventional non-root identity of minimal images.
 */
import type { LayerBuilder } from './layer.ts';

export const NONROOT_UID = 65532;
export const NONROOT_HOME = 'home/nonroot';

/** Adds etc/passwd, etc/group and the non-root user's home (owned by it, mode 0700). */
export function addAccounts(layer: LayerBuilder): void {
  layer.file('etc/passwd', [
    'root:x:0:0:root:/root:/sbin/nologin',
    'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin',
    `nonroot:x:${NONROOT_UID}:${NONROOT_UID}:nonroot:/${NONROOT_HOME}:/sbin/nologin`,
    '',
  ].join('\n'));
  layer.file('etc/group', ['root:x:0:', 'nogroup:x:65534:', `nonroot:x:${NONROOT_UID}:`, ''].join('\n'));
  layer.dir('root', 0o700);
  layer.dir(NONROOT_HOME, 0o700, { uid: NONROOT_UID, gid: NONROOT_UID });
}
