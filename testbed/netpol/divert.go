package main

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	coreinformers "k8s.io/client-go/informers/core/v1"
	networkinginformers "k8s.io/client-go/informers/networking/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// divertChain is the iptables chain (mangle table, the node's namespace) sending packets to the queue.
const divertChain = "CROWSNEST-NETPOL"

// divert keeps upstream's rules (controller.go, syncNFTablesRules) in iptables form: in
// POSTROUTING, after DNAT, so Service traffic is judged by its pod destination, every new
// connection from or to a pod of this node that some NetworkPolicy selects goes to the queue;
// answers and later packets of an accepted connection pass, and so does the node's own root
// traffic (kubelet probes). The queue is bypassed while nothing reads it (fail open).
type divert struct {
	node     string
	queue    int
	pods     corelisters.PodLister
	policies networkinglisters.NetworkPolicyLister
	synced   []cache.InformerSynced
	changed  chan struct{}
	applied  string
}

func newDivert(node string, queue int, pods coreinformers.PodInformer, policies networkinginformers.NetworkPolicyInformer) *divert {
	d := &divert{
		node: node, queue: queue,
		pods: pods.Lister(), policies: policies.Lister(),
		synced:  []cache.InformerSynced{pods.Informer().HasSynced, policies.Informer().HasSynced},
		changed: make(chan struct{}, 1),
	}
	poke := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { d.poke() },
		UpdateFunc: func(any, any) { d.poke() },
		DeleteFunc: func(any) { d.poke() },
	}
	_, _ = pods.Informer().AddEventHandler(poke)
	_, _ = policies.Informer().AddEventHandler(poke)
	return d
}

func (d *divert) poke() {
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

// install creates the chain, with no pod in it yet, and the jump to it.
func (d *divert) install(ctx context.Context) error {
	if err := d.apply(ctx, nil); err != nil {
		return err
	}
	if iptables(ctx, "-C", "POSTROUTING", "-j", divertChain) == nil {
		return nil
	}
	return iptables(ctx, "-A", "POSTROUTING", "-j", divertChain)
}

// run rewrites the chain whenever the local pods selected by a policy change, until ctx ends.
func (d *divert) run(ctx context.Context) {
	logger := klog.FromContext(ctx).WithName("divert")
	if !cache.WaitForCacheSync(ctx.Done(), d.synced...) {
		return
	}
	d.poke()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.changed:
		}
		ips, err := d.selectedPodIPs()
		if err == nil {
			err = d.apply(ctx, ips)
		}
		if err != nil {
			logger.Error(err, "updating the divert rules; retrying in a second")
			time.AfterFunc(time.Second, d.poke)
		}
	}
}

// remove deletes the jump and the chain (the namespace's end removes them too).
func (d *divert) remove(ctx context.Context) error {
	if err := iptables(ctx, "-D", "POSTROUTING", "-j", divertChain); err != nil {
		return err
	}
	if err := iptables(ctx, "-F", divertChain); err != nil {
		return err
	}
	return iptables(ctx, "-X", divertChain)
}

// selectedPodIPs are the IPv4 addresses of this node's pods that a NetworkPolicy selects (upstream's
// getLocalPodsForNetworkPolicy over every policy), sorted.
func (d *divert) selectedPodIPs() ([]string, error) {
	policies, err := d.policies.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	set := map[string]struct{}{}
	for _, policy := range policies {
		for _, ip := range d.selectedBy(policy) {
			set[ip] = struct{}{}
		}
	}
	ips := make([]string, 0, len(set))
	for ip := range set {
		ips = append(ips, ip)
	}
	slices.Sort(ips)
	return ips, nil
}

func (d *divert) selectedBy(policy *networkingv1.NetworkPolicy) []string {
	selector, err := metav1.LabelSelectorAsSelector(&policy.Spec.PodSelector)
	if err != nil {
		return nil
	}
	pods, err := d.pods.Pods(policy.Namespace).List(selector)
	if err != nil {
		return nil
	}
	var ips []string
	for _, pod := range pods {
		// A host-network pod has the node's address: its traffic is the node's, which upstream's
		// pod index does not judge either.
		if pod.Spec.NodeName != d.node || pod.Spec.HostNetwork {
			continue
		}
		for _, ip := range pod.Status.PodIPs {
			if parsed := net.ParseIP(ip.IP); parsed != nil && parsed.To4() != nil {
				ips = append(ips, ip.IP)
			}
		}
	}
	return ips
}

// apply replaces the chain's rules in one iptables-restore transaction (a declared chain is
// flushed first, even with --noflush, which keeps everything else: kube-proxy's chains).
func (d *divert) apply(ctx context.Context, ips []string) error {
	rules := divertRules(d.queue, ips)
	if rules == d.applied {
		return nil
	}
	cmd := exec.CommandContext(ctx, "iptables-restore", "-w", "--noflush")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables-restore: %v: %s", err, out)
	}
	d.applied = rules
	klog.FromContext(ctx).Info("divert rules updated", "chain", divertChain, "pods", len(ips))
	return nil
}

// divertRules is the iptables-restore input for the chain with `ips` diverted to `queue`.
func divertRules(queue int, ips []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*mangle\n:%s - [0:0]\n", divertChain)
	// Upstream's `meta skuid 0 accept` and `ct state established,related accept`.
	fmt.Fprintf(&b, "-A %s -m owner --uid-owner 0 -j RETURN\n", divertChain)
	fmt.Fprintf(&b, "-A %s -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN\n", divertChain)
	for _, ip := range ips {
		fmt.Fprintf(&b, "-A %s -s %s/32 -j NFQUEUE --queue-num %d --queue-bypass\n", divertChain, ip, queue)
		fmt.Fprintf(&b, "-A %s -d %s/32 -j NFQUEUE --queue-num %d --queue-bypass\n", divertChain, ip, queue)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

func iptables(ctx context.Context, args ...string) error {
	argv := append([]string{"-w", "-t", "mangle"}, args...)
	if out, err := exec.CommandContext(ctx, "iptables", argv...).CombinedOutput(); err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(argv, " "), err, out)
	}
	return nil
}
