// Command pause does what Kubernetes' pause container (build/pause/linux/pause.c) does: it sleeps
// holding the pod's namespaces, reaps the zombies of processes it inherits as PID 1 (a pod that
// shares its process namespace reparents orphans to it), and exits 0 on SIGINT or SIGTERM, so
// the kubelet's StopPodSandbox ends it at once instead of waiting for SIGKILL.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set by testbed/build.sh (-X main.version=...).
var version = "dev"

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-v" || os.Args[1] == "--version") {
		fmt.Printf("crowsnest pause %s\n", version)
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			reapChildren()
			continue
		}
		fmt.Fprintf(os.Stderr, "Shutting down, got signal: %v\n", sig)
		os.Exit(0)
	}
}

// reapChildren collects every exited child; one SIGCHLD may stand for several exits.
func reapChildren() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
