// Command bench measures what the Go SDK's guard costs, side by side in one
// run against a live Keyport on the same machine:
//
//   - requests/s of a net/http hello-world route, bare, behind the guard on
//     a cache hit, and behind the guard with the cache off (every request
//     asks Keyport);
//   - the cache-hit cost of the guard alone, in process;
//   - revocation-to-refusal latency: a session revoked through Keyport by
//     another client, until the guard refuses it (p50, p99, max);
//   - JWT access-token verifications per second on one core, against the
//     cached session check (when the keyport issues access tokens).
//
// It starts the keyport binary in $KEYPORT_BIN itself:
//
//	KEYPORT_BIN=/path/to/keyport go run ./bench -duration 5s -concurrency 32
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	keyport "github.com/keyport/keyport/clients/go"
	"github.com/keyport/keyport/clients/go/accesstoken"
	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
)

func main() {
	duration := flag.Duration("duration", 5*time.Second, "load per route")
	concurrency := flag.Int("concurrency", 32, "requests in flight")
	revocations := flag.Int("revocations", 50, "revocations timed")
	rounds := flag.Int("rounds", 3, "rounds of the three routes, interleaved (the median counts)")
	flag.Parse()
	if err := run(*duration, *concurrency, *revocations, *rounds); err != nil {
		log.Fatal(err)
	}
}

func run(duration time.Duration, concurrency, revocations, rounds int) error {
	bin := os.Getenv("KEYPORT_BIN")
	if bin == "" {
		return errors.New("KEYPORT_BIN is not set")
	}
	kp, err := startKeyport(bin)
	if err != nil {
		return err
	}
	defer kp.stop()

	client, err := keyport.Dial(kp.addr, keyport.WithInsecure())
	if err != nil {
		return err
	}
	defer client.Close()
	ctx := context.Background()
	cache := keyport.NewSessionCache(ctx, client, keyport.CacheConfig{})
	defer cache.Close()
	for !cache.Live() {
		time.Sleep(time.Millisecond)
	}
	// A cache whose context is already done never subscribes, so it never
	// serves an entry: every request through it asks Keyport.
	done, cancel := context.WithCancel(ctx)
	cancel()
	uncached := keyport.NewSessionCache(done, client, keyport.CacheConfig{})
	defer uncached.Close()

	token, err := signUp(ctx, client, "bench@example.com")
	if err != nil {
		return err
	}

	hello := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") })
	routes := []struct {
		name    string
		handler http.Handler
	}{
		{"bare", hello},
		{"guard, cache hit", keyport.NewGuard(cache, keyport.GuardConfig{}).Middleware(hello)},
		{"guard, cache off", keyport.NewGuard(uncached, keyport.GuardConfig{}).Middleware(hello)},
	}
	fmt.Printf("Go %s, GOMAXPROCS %d, %d in flight, %d rounds of %v per route; load average before: %s\n",
		runtime.Version(), runtime.GOMAXPROCS(0), concurrency, rounds, duration, loadAverage())
	// Interleaved rounds, so that a burst of load from elsewhere on the
	// machine hits every route alike; each route's median round counts.
	rates := make([][]float64, len(routes))
	failures := make([]int64, len(routes))
	for range rounds {
		for i, route := range routes {
			rps, failed, err := load(route.handler, token, duration, concurrency)
			if err != nil {
				return err
			}
			rates[i] = append(rates[i], rps)
			failures[i] += failed
		}
	}
	bare := median(rates[0])
	for i, route := range routes {
		rps := median(rates[i])
		fmt.Printf("%-18s %9.0f req/s  %5.1f%% of bare  (rounds %s; %d failed)\n",
			route.name, rps, 100*rps/bare, formatRates(rates[i]), failures[i])
	}

	guard := keyport.NewGuard(cache, keyport.GuardConfig{})
	req := keyport.Request{Authorization: "Bearer " + token, ClientIP: "127.0.0.1", UserAgent: "bench"}
	hit := testing.Benchmark(func(b *testing.B) {
		for b.Loop() {
			if out := guard.Authenticate(ctx, req); out.Principal == nil {
				b.Fatal("refused")
			}
		}
	})
	fmt.Printf("guard.Authenticate on a cache hit: %.3f us/op, %d B/op, %d allocs/op\n",
		float64(hit.NsPerOp())/1000, hit.AllocedBytesPerOp(), hit.AllocsPerOp())

	latencies, err := revocationLatencies(ctx, client, guard, cache, revocations)
	if err != nil {
		return err
	}
	fmt.Printf("revocation to refusal (%d): p50 %v, p99 %v, max %v\n", len(latencies),
		percentile(latencies, 50), percentile(latencies, 99), percentile(latencies, 100))
	fmt.Printf("load average after: %s\n", loadAverage())

	if err := benchAccessTokens(ctx, client, token, hit); err != nil {
		fmt.Printf("JWT verification: skipped (%v)\n", err)
	}
	return nil
}

// benchAccessTokens compares verifying an access token (one goroutine, so
// one core) with the guard's cached session check.
func benchAccessTokens(ctx context.Context, client *keyport.Client, session string, hit testing.BenchmarkResult) error {
	resp, err := client.Sessions.IssueAccessToken(ctx, &keyportv1.IssueAccessTokenRequest{Token: session})
	if err != nil {
		return err
	}
	v, err := accesstoken.NewVerifier(accesstoken.Config{Fetch: accesstoken.FromClient(client), Issuer: accessIssuer, Audience: "bench"})
	if err != nil {
		return err
	}
	verified := testing.Benchmark(func(b *testing.B) {
		for b.Loop() {
			if _, err := v.Verify(ctx, resp.GetAccessToken()); err != nil {
				b.Fatal(err)
			}
		}
	})
	perSecond := func(r testing.BenchmarkResult) float64 { return 1e9 / float64(r.NsPerOp()) }
	fmt.Printf("JWT (EdDSA) verifications on one core: %.0f/s (%.1f us each); cached session checks: %.0f/s (%.2fx)\n",
		perSecond(verified), float64(verified.NsPerOp())/1000, perSecond(hit), perSecond(hit)/perSecond(verified))
	return nil
}

// accessIssuer is the issuer of the benchmark keyport's access tokens.
const accessIssuer = "https://keyport.bench"

// load sends GETs with token to handler from concurrency goroutines for d,
// over keep-alive connections, and returns the rate of 200 answers.
func load(handler http.Handler, token string, d time.Duration, concurrency int) (rps float64, failed int64, err error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	srv := &http.Server{Handler: handler}
	go srv.Serve(lis)
	defer srv.Close()
	url := "http://" + lis.Addr().String() + "/"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency}}
	defer client.CloseIdleConnections()

	var ok, bad atomic.Int64
	send := func() {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			bad.Add(1)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			ok.Add(1)
		} else {
			bad.Add(1)
		}
	}
	// Warm up the connections (and the cache).
	for range concurrency {
		send()
	}
	ok.Store(0)
	bad.Store(0)
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(d)
	for range concurrency {
		wg.Go(func() {
			for time.Now().Before(stop) {
				send()
			}
		})
	}
	wg.Wait()
	return float64(ok.Load()) / time.Since(start).Seconds(), bad.Load(), nil
}

// revocationLatencies revokes n warm sessions through Keyport (as another
// app would) and times, from the moment RevokeSession returns, until the
// guard refuses the session.
func revocationLatencies(ctx context.Context, client *keyport.Client, guard *keyport.Guard, cache *keyport.SessionCache, n int) ([]time.Duration, error) {
	owner, err := signUp(ctx, client, "revoker@example.com")
	if err != nil {
		return nil, err
	}
	var latencies []time.Duration
	for range n {
		resp, err := client.Sessions.SignIn(ctx, &keyportv1.SignInRequest{Email: "revoker@example.com", Password: password})
		if err != nil {
			return nil, err
		}
		token := resp.GetSession().GetToken()
		req := keyport.Request{Authorization: "Bearer " + token}
		if out := guard.Authenticate(ctx, req); out.Principal == nil || cache.Lookup(token) == nil {
			return nil, fmt.Errorf("the session was not cached: %v", out.Refusal)
		}
		id := resp.GetSession().GetSession().GetId()
		if _, err := client.Sessions.RevokeSession(keyport.WithToken(ctx, owner), &keyportv1.RevokeSessionRequest{SessionId: id}); err != nil {
			return nil, err
		}
		revoked := time.Now()
		for cache.Lookup(token) != nil {
			if time.Since(revoked) > 5*time.Second {
				return nil, errors.New("the revocation never reached the cache")
			}
			runtime.Gosched()
		}
		latency := time.Since(revoked)
		if out := guard.Authenticate(ctx, req); out.Refusal == nil {
			return nil, errors.New("the guard allowed a revoked session")
		}
		latencies = append(latencies, latency)
	}
	return latencies, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func formatRates(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, " ")
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	s := slices.Clone(sorted)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(min(i, len(s))-1, 0)].Round(time.Microsecond)
}

const password = "correct horse battery staple"

func signUp(ctx context.Context, client *keyport.Client, email string) (string, error) {
	resp, err := client.Users.SignUp(ctx, &keyportv1.SignUpRequest{Email: email, Password: password, Name: "Bench"})
	if err != nil {
		return "", fmt.Errorf("SignUp: %w", err)
	}
	return resp.GetSession().GetToken(), nil
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// keyportProcess is the keyport the benchmark runs against.
type keyportProcess struct {
	cmd     *exec.Cmd
	addr    string
	dataDir string
}

// startKeyport runs `keyport serve` on a free port with a fresh data
// directory and cheap password hashing, and waits until it logs its address.
func startKeyport(bin string) (*keyportProcess, error) {
	dataDir, err := os.MkdirTemp("", "keyport-go-bench-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-format", "json")
	cmd.Env = append(os.Environ(), "KEYPORT_HASHING__MEMORY_KIB=1024", "KEYPORT_HASHING__ITERATIONS=1",
		"KEYPORT_SERVER__SHUTDOWN_GRACE_MS=200",
		"KEYPORT_ACCESS_TOKENS__ISSUER="+accessIssuer, `KEYPORT_ACCESS_TOKENS__AUDIENCES=["bench"]`)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	k := &keyportProcess{cmd: cmd, dataDir: dataDir}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var line struct {
				Message, Address string
				Fields           struct{ Message, Address string }
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil {
				if line.Message == "keyport serving gRPC" && line.Address != "" {
					found <- line.Address
				} else if line.Fields.Message == "keyport serving gRPC" && line.Fields.Address != "" {
					found <- line.Fields.Address
				}
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case k.addr = <-found:
		return k, nil
	case <-time.After(30 * time.Second):
		k.stop()
		return nil, errors.New("keyport did not start within 30 s")
	}
}

func (k *keyportProcess) stop() {
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	_ = k.cmd.Wait()
	os.RemoveAll(k.dataDir)
}
