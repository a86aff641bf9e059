// delayrelay holds every IP packet routed into a TUN device for a fixed time, then hands it back
// to the kernel through the same device: a user-space stand-in for `tc qdisc netem delay`, which
// this machine's kernel lacks. The testbed routes one destination through the device (and
// routes what comes back out of it by a policy rule), so traffic to that destination, and only
// that direction, is delayed.
//
// Precision: each packet is released by a goroutine that sleeps until 300 µs before its due
// time and spins the rest, and the testbed runs the relay with a real-time scheduling policy
// (chrt -f), so neither the timer slack nor a busy machine (measured here: sleeps overshooting by
// up to 14 ms at p99 under the testbed's load, ~0.1 ms with SCHED_FIFO) shows in the delay. Every second it prints one JSON line with the
// packets released and how late they were (`late_us` p50/p99/max), and on SIGTERM a last line.
//
// The delay can be changed while it runs: a line `delay <duration>` on standard input applies to
// the packets read from then on, and is acknowledged with a line {"delay_us": ...}.
//
// Usage: delayrelay -dev crowsnest-delay -delay 5ms
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const (
	tunSetIff = 0x400454ca
	iffTun    = 0x0001
	iffNoPi   = 0x1000
	mtu       = 65535
	spinSlack = 300 * time.Microsecond
)

type ifreq struct {
	name  [16]byte
	flags uint16
	_     [22]byte
}

type packet struct {
	data []byte
	due  time.Time
}

type stats struct {
	mu       sync.Mutex
	released int
	late     []time.Duration
}

func (s *stats) add(late time.Duration) {
	s.mu.Lock()
	s.released++
	s.late = append(s.late, late)
	s.mu.Unlock()
}

func (s *stats) line(final bool) string {
	s.mu.Lock()
	late := s.late
	s.late = nil
	released := s.released
	s.mu.Unlock()
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	q := func(p float64) int64 {
		if len(late) == 0 {
			return 0
		}
		return late[int(p*float64(len(late)-1))].Microseconds()
	}
	out, _ := json.Marshal(map[string]any{"released": released, "window": len(late), "late_us_p50": q(0.5), "late_us_p99": q(0.99), "late_us_max": q(1), "final": final})
	return string(out)
}

func main() {
	dev := flag.String("dev", "crowsnest-delay", "TUN device to create and serve")
	delay := flag.Duration("delay", 5*time.Millisecond, "time every packet is held")
	flag.Parse()

	fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "open /dev/net/tun: %v\n", err)
		os.Exit(1)
	}
	var req ifreq
	copy(req.name[:], *dev)
	req.flags = iffTun | iffNoPi
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), tunSetIff, uintptr(unsafe.Pointer(&req))); errno != 0 {
		fmt.Fprintf(os.Stderr, "TUNSETIFF %s: %v\n", *dev, errno)
		os.Exit(1)
	}
	fmt.Printf("{\"ready\":true,\"dev\":%q,\"delay_us\":%d}\n", *dev, delay.Microseconds())

	var current atomic.Int64
	current.Store(int64(*delay))
	go func() {
		lines := bufio.NewScanner(os.Stdin)
		for lines.Scan() {
			fields := strings.Fields(lines.Text())
			if len(fields) != 2 || fields[0] != "delay" {
				fmt.Fprintf(os.Stderr, "unknown command %q\n", lines.Text())
				continue
			}
			d, err := time.ParseDuration(fields[1])
			if err != nil || d < 0 {
				fmt.Fprintf(os.Stderr, "bad delay %q\n", fields[1])
				continue
			}
			current.Store(int64(d))
			fmt.Printf("{\"delay_us\":%d}\n", d.Microseconds())
		}
	}()

	queue := make(chan packet, 8192)
	var st stats
	go func() {
		for p := range queue {
			if wait := time.Until(p.due) - spinSlack; wait > 0 {
				time.Sleep(wait)
			}
			for time.Now().Before(p.due) {
			}
			st.add(time.Since(p.due))
			if _, err := syscall.Write(fd, p.data); err != nil {
				fmt.Fprintf(os.Stderr, "write: %v\n", err)
			}
		}
	}()
	go func() {
		for range time.Tick(time.Second) {
			fmt.Println(st.line(false))
		}
	}()
	go func() {
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
		<-signals
		fmt.Println(st.line(true))
		os.Exit(0)
	}()

	buf := make([]byte, mtu)
	for {
		n, err := syscall.Read(fd, buf)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			fmt.Fprintf(os.Stderr, "read: %v\n", err)
			os.Exit(1)
		}
		arrived := time.Now()
		data := make([]byte, n)
		copy(data, buf[:n])
		queue <- packet{data: data, due: arrived.Add(time.Duration(current.Load()))}
	}
}
