import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KWOK_POD_CIDR, MAX_REAL_NODES, SLOT_COUNT, slotAddresses } from './network.ts';

/** `a.b.c.d/len` → [first, last] as numbers. */
function range(cidr: string): [number, number] {
  const [ip, len] = cidr.split('/') as [string, string];
  const n = ip.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
  const size = 2 ** (32 - Number(len));
  assert.equal(n % size, 0, `${cidr} is aligned`);
  return [n, n + size - 1];
}

function ipNumber(ip: string): number {
  return range(`${ip}/32`)[0];
}

function overlaps(a: string, b: string): boolean {
  const [a0, a1] = range(a);
  const [b0, b1] = range(b);
  return a0 <= b1 && b0 <= a1;
}

function inside(ip: string, cidr: string): boolean {
  const [first, last] = range(cidr);
  return ipNumber(ip) >= first && ipNumber(ip) <= last;
}

describe('slotAddresses', () => {
  it('gives slot 0 the documented addresses', () => {
    const slot = slotAddresses(0, 2);
    assert.deepEqual(
      { host: slot.hostIp, link: slot.linkCidr, cluster: slot.clusterCidr, services: slot.serviceCidr, kubernetes: slot.kubernetesServiceIp, dns: slot.dnsServiceIp, bridge: slot.bridge },
      { host: '198.18.4.1', link: '198.18.4.0/24', cluster: '198.18.0.0/22', services: '198.19.0.0/21', kubernetes: '198.19.0.1', dns: '198.19.0.10', bridge: 'crowsnest0' },
    );
    assert.deepEqual(slot.nodes.map((n) => [n.name, n.ip, n.podCidr, n.podGateway, n.netns, n.hostVeth, n.cgroupRoot]), [
      ['crowsnest-real-0', '198.18.4.2', '198.18.0.0/24', '198.18.0.1', 'crowsnest0-real-0', 'crowsnest0r0', '/crowsnest-testbed/s0/real-0'],
      ['crowsnest-real-1', '198.18.4.3', '198.18.1.0/24', '198.18.1.1', 'crowsnest0-real-1', 'crowsnest0r1', '/crowsnest-testbed/s0/real-1'],
    ]);
  });

  it('keeps every slot inside the test ranges, apart from every other slot and from kwok\'s fake pod IPs', () => {
    const slots = Array.from({ length: SLOT_COUNT }, (_, s) => slotAddresses(s, MAX_REAL_NODES));
    for (const slot of slots) {
      assert.ok(overlaps(slot.clusterCidr, '198.18.0.0/16') && overlaps(slot.serviceCidr, '198.19.0.0/16'));
      assert.ok(!overlaps(slot.clusterCidr, slot.linkCidr), 'the link is outside the cluster CIDR: host → Service traffic is masqueraded');
      assert.ok(!overlaps(slot.clusterCidr, KWOK_POD_CIDR) && !overlaps(slot.linkCidr, KWOK_POD_CIDR));
      assert.ok(inside(slot.hostIp, slot.linkCidr) && inside(slot.kubernetesServiceIp, slot.serviceCidr) && inside(slot.dnsServiceIp, slot.serviceCidr));
      for (const node of slot.nodes) {
        assert.ok(inside(node.ip, slot.linkCidr) && inside(node.podGateway, node.podCidr) && overlaps(node.podCidr, slot.clusterCidr));
        assert.ok(node.hostVeth.length <= 15 && slot.bridge.length <= 15, 'interface names fit IFNAMSIZ');
      }
      for (const other of slots) {
        if (other === slot) continue;
        for (const [a, b] of [[slot.clusterCidr, other.clusterCidr], [slot.linkCidr, other.linkCidr], [slot.serviceCidr, other.serviceCidr], [slot.clusterCidr, other.linkCidr]] as const) {
          assert.ok(!overlaps(a, b), `slot ${slot.slot} ${a} overlaps slot ${other.slot} ${b}`);
        }
      }
    }
  });

  it('refuses a slot or a node count it has no addresses for', () => {
    assert.throws(() => slotAddresses(SLOT_COUNT, 2), /slot must be/);
    assert.throws(() => slotAddresses(-1, 2), /slot must be/);
    assert.throws(() => slotAddresses(0, MAX_REAL_NODES + 1), /real nodes must be/);
  });
});
