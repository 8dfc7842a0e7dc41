package keyport_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	keyport "github.com/keyport/keyport/clients/go"
	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
)

// Benchmarks of the guard's in-process cost on a cache hit, against the
// live server of TestMain; they run only with -bench:
//
//	KEYPORT_BIN=... go test -run '^$' -bench . -benchmem
//
// (bench/ measures throughput over real connections.)

// benchGuard is a guard whose cache is live, and a bearer request of a
// session it has cached.
func benchGuard(b *testing.B) (*keyport.Guard, keyport.Request) {
	b.Helper()
	if serverErr != nil {
		b.Fatal(serverErr)
	}
	client, err := keyport.Dial(serverAddr, keyport.WithInsecure())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { client.Close() })
	cache := keyport.NewSessionCache(b.Context(), client, keyport.CacheConfig{})
	b.Cleanup(func() { cache.Close() })
	for deadline := time.Now().Add(10 * time.Second); !cache.Live(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the cache never went live")
		}
	}
	up, err := client.Users.SignUp(b.Context(), &keyportv1.SignUpRequest{Email: uniqueEmail(), Password: password})
	if err != nil {
		b.Fatal(err)
	}
	guard := keyport.NewGuard(cache, keyport.GuardConfig{})
	req := keyport.Request{Authorization: "Bearer " + up.GetSession().GetToken(), ClientIP: "127.0.0.1", UserAgent: "bench"}
	if out := guard.Authenticate(b.Context(), req); out.Principal == nil {
		b.Fatalf("refused: %v", out.Refusal)
	}
	return guard, req
}

// The guard's check alone, on a hit.
func BenchmarkGuardAuthenticateCacheHit(b *testing.B) {
	guard, req := benchGuard(b)
	ctx := b.Context()
	for b.Loop() {
		if out := guard.Authenticate(ctx, req); out.Principal == nil {
			b.Fatal("refused")
		}
	}
}

// The guard's check on a hit from every core at once (the lock's cost).
func BenchmarkGuardAuthenticateCacheHitParallel(b *testing.B) {
	guard, req := benchGuard(b)
	ctx := b.Context()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if out := guard.Authenticate(ctx, req); out.Principal == nil {
				b.Error("refused")
				return
			}
		}
	})
}

// A hello-world handler called in process, bare and behind the middleware
// on a hit: the difference is what the middleware adds to a request.
func BenchmarkMiddleware(b *testing.B) {
	guard, req := benchGuard(b)
	hello := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("hello")) })
	for name, h := range map[string]http.Handler{"bare": hello, "cache hit": guard.Middleware(hello)} {
		b.Run(name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Authorization", req.Authorization)
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("HTTP %d", w.Code)
				}
			}
		})
	}
}
