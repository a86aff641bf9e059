// go-pinger: the prober agent's work written in plain Go, as a reference point for the agent's
// memory and CPU in `make bench BENCH=prober`. It is not Goldpinger (whose module the Go proxy
// here does not serve): it does what our agent does — per peer, a jittered round of GET /ping on
// a kept-alive connection and a TCP connect, both with a timeout, into histograms by peer and
// method served on /metrics — with the standard library only.
//
// Usage: go-pinger -listen :19180 -peers-url http://host:port/peers?pod=NAME -period 10s -timeout 1s
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

var buckets = func() []float64 {
	b := make([]float64, 17)
	for i := range b {
		b[i] = 0.00005 * math.Pow(2, float64(i))
	}
	return b
}()

type histogram struct {
	counts []uint64
	sum    float64
	count  uint64
}

type metrics struct {
	mu     sync.Mutex
	rtt    map[[2]string]*histogram // peer, method
	errors map[[2]string]uint64
}

func (m *metrics) observe(peer, method string, seconds float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.rtt[[2]string{peer, method}]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(buckets))}
		m.rtt[[2]string{peer, method}] = h
	}
	for i, b := range buckets {
		if seconds <= b {
			h.counts[i]++
			break
		}
	}
	h.sum += seconds
	h.count++
}

func (m *metrics) fail(peer, method string) {
	m.mu.Lock()
	m.errors[[2]string{peer, method}]++
	m.mu.Unlock()
}

func (m *metrics) write(w io.Writer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([][2]string, 0, len(m.rtt))
	for k := range m.rtt {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	fmt.Fprintln(w, "# TYPE gopinger_rtt_seconds histogram")
	for _, k := range keys {
		h := m.rtt[k]
		var cumulative uint64
		for i, b := range buckets {
			cumulative += h.counts[i]
			fmt.Fprintf(w, "gopinger_rtt_seconds_bucket{dest=%q,method=%q,le=\"%g\"} %d\n", k[0], k[1], b, cumulative)
		}
		fmt.Fprintf(w, "gopinger_rtt_seconds_bucket{dest=%q,method=%q,le=\"+Inf\"} %d\n", k[0], k[1], h.count)
		fmt.Fprintf(w, "gopinger_rtt_seconds_sum{dest=%q,method=%q} %g\n", k[0], k[1], h.sum)
		fmt.Fprintf(w, "gopinger_rtt_seconds_count{dest=%q,method=%q} %d\n", k[0], k[1], h.count)
	}
	fmt.Fprintln(w, "# TYPE gopinger_errors_total counter")
	for k, v := range m.errors {
		fmt.Fprintf(w, "gopinger_errors_total{dest=%q,method=%q} %d\n", k[0], k[1], v)
	}
}

func main() {
	listen := flag.String("listen", ":19180", "address of /ping and /metrics")
	peersURL := flag.String("peers-url", "", "URL answering one 'name ip:port' line per peer")
	period := flag.Duration("period", 10*time.Second, "time between two rounds of one peer")
	timeout := flag.Duration("timeout", time.Second, "per probe")
	flag.Parse()

	m := &metrics{rtt: map[[2]string]*histogram{}, errors: map[[2]string]uint64{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "pong\n") })
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) { m.write(w) })
	go func() {
		if err := http.ListenAndServe(*listen, mux); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}()

	var peers []string
	for len(peers) == 0 {
		peers = fetchPeers(*peersURL)
		if len(peers) == 0 {
			time.Sleep(time.Second)
		}
	}
	fmt.Printf("probing %d peers every %s\n", len(peers), *period)
	for _, line := range peers {
		fields := strings.Fields(line)
		name, address := fields[0], fields[1]
		client := &http.Client{Timeout: *timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: 30 * time.Second}}
		go func() {
			time.Sleep(time.Duration(rand.Float64() * float64(*period)))
			for {
				started := time.Now()
				resp, err := client.Get("http://" + address + "/ping")
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						m.observe(name, "http", time.Since(started).Seconds())
					} else {
						m.fail(name, "http")
					}
				} else {
					m.fail(name, "http")
				}
				connectStarted := time.Now()
				conn, err := net.DialTimeout("tcp", address, *timeout)
				if err == nil {
					m.observe(name, "tcp", time.Since(connectStarted).Seconds())
					conn.Close()
				} else {
					m.fail(name, "tcp")
				}
				jittered := time.Duration(float64(*period) * (1 + 0.15*(2*rand.Float64()-1)))
				time.Sleep(time.Until(started.Add(jittered)))
			}
		}()
	}
	select {}
}

func fetchPeers(url string) []string {
	resp, err := http.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var lines []string
	scanner := bufio.NewScanner(resp.Body)
	for scanner.Scan() {
		if line := strings.TrimSpace(scanner.Text()); line != "" {
			lines = append(lines, line)
		}
	}
	return lines
}
