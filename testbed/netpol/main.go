// The testbed's NetworkPolicy enforcer: kube-network-policies' controller (its packet verdicts,
// policy evaluation and informers, unchanged), run once per real node inside that node's network
// namespace. Its own command reads only in-cluster credentials and stops on SIGINT alone; the
// testbed's nodes are processes on the host with a kubeconfig and are stopped with SIGTERM, so this
// main takes a kubeconfig and both signals. Everything else mirrors the module's cmd/main.go.
//
// The kernel of the testbed's machine has no nft_queue (CONFIG_NFT_QUEUE unset, no loadable
// modules), so the controller's own nftables table (`queue num N`) is refused as a whole. This
// main keeps the equivalent rules with the xt NFQUEUE target instead (divert.go), which the
// controller reads from nfnetlink_queue just as it would read its own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/kube-network-policies/pkg/networkpolicy"
)

func main() { os.Exit(run()) }

func run() int {
	var (
		kubeconfig     = flag.String("kubeconfig", "", "kubeconfig of the cluster (required)")
		nodeName       = flag.String("hostname-override", "", "name of the Node whose pods this enforcer serves (required)")
		queueID        = flag.Int("nfqueue-id", 100, "netfilter queue the node's new connections are diverted to")
		failOpen       = flag.Bool("fail-open", false, "accept a packet the controller cannot parse (the divert rule decides what happens while it is not running)")
		metricsAddress = flag.String("metrics-bind-address", "127.0.0.1:9080", "host:port of the Prometheus metrics endpoint")
	)
	klog.InitFlags(nil)
	flag.Usage = func() {
		fmt.Fprint(os.Stderr, "Usage: netpol --kubeconfig FILE --hostname-override NODE [options]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *kubeconfig == "" || *nodeName == "" {
		flag.Usage()
		return 2
	}
	if _, _, err := net.SplitHostPort(*metricsAddress); err != nil {
		fmt.Fprintf(os.Stderr, "--metrics-bind-address %q: %v\n", *metricsAddress, err)
		return 2
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	logger := klog.FromContext(ctx)

	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		logger.Error(err, "reading the kubeconfig", "path", *kubeconfig)
		return 1
	}
	config.UserAgent = "kube-network-policies/" + *nodeName
	config.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	config.ContentType = "application/vnd.kubernetes.protobuf"
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		logger.Error(err, "creating the client")
		return 1
	}
	factory := informers.NewSharedInformerFactory(clientset, 0)

	controller, err := networkpolicy.NewController(
		clientset,
		factory.Networking().V1().NetworkPolicies(),
		factory.Core().V1().Namespaces(),
		factory.Core().V1().Pods(),
		nil, nil, nil, nil, // AdminNetworkPolicy and BaselineAdminNetworkPolicy stay off (alpha)
		networkpolicy.Config{
			FailOpen:    *failOpen,
			QueueID:     *queueID,
			NodeName:    *nodeName,
			// NRI stays on although containerd 1.6 has none (its connection fails once at start,
			// so pod IPs come from the API server): with NRIdisabled, v0.8.0 dereferences its nil
			// NRI plugin on the first packet from an address that is no pod's (a node, the host).
			NRIdisabled: false,
			// The DNS race it works around was fixed in kernel 6.12; its rules need nft_queue too.
			NetfilterBug1766Fix: false,
		},
	)
	if err != nil {
		logger.Error(err, "creating the network policy controller")
		return 1
	}

	metrics := &http.Server{Addr: *metricsAddress, Handler: promhttp.Handler()}
	go func() {
		if err := metrics.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error(err, "serving metrics", "address", *metricsAddress)
		}
	}()

	divert := newDivert(*nodeName, *queueID, factory.Core().V1().Pods(), factory.Networking().V1().NetworkPolicies())
	if err := divert.install(ctx); err != nil {
		logger.Error(err, "installing the divert rules")
		return 1
	}
	diverting := make(chan struct{})
	go func() { divert.run(ctx); close(diverting) }()

	done := make(chan error, 1)
	go func() { done <- controller.Run(ctx) }()
	factory.Start(ctx.Done())
	logger.Info("enforcing NetworkPolicy", "node", *nodeName, "queue", *queueID)

	// Run returns when ctx ends (after removing its nftables table) or when it cannot open the queue.
	err = <-done
	signalled := ctx.Err() != nil
	cancel()
	<-diverting
	cleanupCtx, cleanupCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cleanupCancel()
	if err := divert.remove(cleanupCtx); err != nil {
		logger.Error(err, "removing the divert rules")
	}
	_ = metrics.Close()
	factory.Shutdown()
	if err != nil && !signalled {
		logger.Error(err, "network policy controller stopped")
		return 1
	}
	return 0
}
