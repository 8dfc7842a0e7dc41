package keyport_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	keyport "github.com/keyport/keyport/clients/go"
	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The guard's conformance suite: each scenario runs against every adapter
// (the net/http middleware and the gRPC interceptors) in front of a live
// Keyport.

// guardEnv is a client of a Keyport, a cache subscribed to it, and a guard.
type guardEnv struct {
	client *keyport.Client
	cache  *keyport.SessionCache
	guard  *keyport.Guard
}

// newGuardEnv starts a cache and guard in front of the Keyport at addr and,
// if live, waits until the cache's event stream is live.
func newGuardEnv(t *testing.T, addr string, live bool, cfg keyport.CacheConfig, opts ...keyport.Option) *guardEnv {
	t.Helper()
	client, err := keyport.Dial(addr, append([]keyport.Option{keyport.WithInsecure()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	cache := keyport.NewSessionCache(t.Context(), client, cfg)
	t.Cleanup(func() {
		cache.Close()
		client.Close()
	})
	if live {
		waitFor(t, "the cache to go live", 10*time.Second, cache.Live)
	}
	return &guardEnv{client: client, cache: cache, guard: keyport.NewGuard(cache, keyport.GuardConfig{})}
}

// waitFor polls cond every millisecond until it holds, or fails the test
// after limit.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// credential is what a test request carries.
type credential struct {
	bearer string // sent as Authorization: Bearer
	cookie string // sent as the session cookie (HTTP only)
}

// verdict is an adapter's answer, in terms both adapters share.
type verdict struct {
	status    string // "allowed", "unauthenticated", "forbidden", "unavailable", "internal"
	reason    string // the refusal's reason
	email     string // the principal's email the handler saw, when allowed
	setCookie string // the Set-Cookie the answer carried (HTTP only)
}

// caller sends one request through an adapter.
type caller func(t *testing.T, c credential) verdict

// adapter starts an app guarded by one adapter, requiring permissions.
type adapter struct {
	name    string
	cookies bool // whether it reads the session cookie
	serve   func(t *testing.T, g *keyport.Guard, permissions ...string) caller
	// The reasons of a missing permission and of Keyport down: the HTTP
	// middleware's own, as Keyport's Rust middleware sends them; the
	// interceptors', as Keyport's own statuses and its Rust gRPC layer.
	forbidden, unavailable string
}

var adapters = []adapter{
	{name: "http", cookies: true, serve: serveHTTP, forbidden: keyport.RefusalReasonForbidden, unavailable: keyport.RefusalReasonUnavailable},
	{name: "grpc", serve: serveGRPC, forbidden: keyport.ReasonPermissionDenied, unavailable: keyport.ReasonUnavailable},
}

// forEachAdapter runs scenario as a subtest per adapter.
func forEachAdapter(t *testing.T, scenario func(t *testing.T, a adapter)) {
	for _, a := range adapters {
		t.Run(a.name, func(t *testing.T) { scenario(t, a) })
	}
}

// serveHTTP serves "me:<email>" behind Middleware (or RequirePermissions)
// on a real HTTP server on port 0.
func serveHTTP(t *testing.T, g *keyport.Guard, permissions ...string) caller {
	me := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := keyport.PrincipalFrom(r.Context())
		if !ok {
			http.Error(w, "no principal behind the guard", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "me:%s", p.User.GetEmail())
	})
	guarded := g.Middleware(me)
	if len(permissions) > 0 {
		guarded = g.RequirePermissions(permissions...)(me)
	}
	srv := httptest.NewServer(guarded)
	t.Cleanup(srv.Close)
	return func(t *testing.T, c credential) verdict {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/me", nil)
		if c.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+c.bearer)
		}
		if c.cookie != "" {
			req.Header.Set("Cookie", "theme=dark; "+keyport.SessionCookieName+"="+c.cookie)
		}
		return httpVerdict(t, srv.Client(), req)
	}
}

// httpVerdict sends req and reads the answer as a verdict.
func httpVerdict(t *testing.T, client *http.Client, req *http.Request) verdict {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	v := verdict{setCookie: resp.Header.Get("Set-Cookie")}
	if resp.StatusCode == http.StatusOK {
		v.status, v.email = "allowed", strings.TrimPrefix(string(body), "me:")
		return v
	}
	var refusal struct{ Error, Message string }
	if err := json.Unmarshal(body, &refusal); err != nil {
		t.Fatalf("HTTP %d with a body that is not the refusal JSON: %q", resp.StatusCode, body)
	}
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("refusal headers: %v", resp.Header)
	}
	v.reason = refusal.Error
	v.status = map[int]string{401: "unauthenticated", 403: "forbidden", 503: "unavailable", 500: "internal"}[resp.StatusCode]
	if v.status == "" {
		t.Fatalf("unexpected HTTP status %d: %s", resp.StatusCode, body)
	}
	return v
}

// principalEmailKey is the response header through which the test's gRPC
// service shows the principal its handler saw.
const principalEmailKey = "x-principal-email"

// serveGRPC serves the grpc health service behind the interceptors on a
// real gRPC server on port 0; an interceptor after the guard's sends the
// principal's email back in a header.
func serveGRPC(t *testing.T, g *keyport.Guard, permissions ...string) caller {
	healthClient := startGuardedHealth(t, g, permissions...)
	return func(t *testing.T, c credential) verdict {
		t.Helper()
		ctx := t.Context()
		if c.bearer != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.bearer)
		}
		var header metadata.MD
		_, err := healthClient.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&header))
		return grpcVerdict(t, err, header)
	}
}

// startGuardedHealth serves the health service behind g's interceptors
// and returns a client of it.
func startGuardedHealth(t *testing.T, g *keyport.Guard, permissions ...string) healthpb.HealthClient {
	t.Helper()
	echo := func(ctx context.Context) {
		if p, ok := keyport.PrincipalFrom(ctx); ok {
			_ = grpc.SetHeader(ctx, metadata.Pairs(principalEmailKey, p.User.GetEmail()))
		}
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(g.UnaryServerInterceptor(permissions...),
			func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				echo(ctx)
				return h(ctx, req)
			}),
		grpc.ChainStreamInterceptor(g.StreamServerInterceptor(permissions...),
			func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
				echo(ss.Context())
				return h(srv, ss)
			}),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

// grpcVerdict reads a call's outcome as a verdict.
func grpcVerdict(t *testing.T, err error, header metadata.MD) verdict {
	t.Helper()
	if err == nil {
		emails := header.Get(principalEmailKey)
		if len(emails) != 1 {
			t.Fatalf("allowed without a principal in the handler's context (header %v)", header)
		}
		return verdict{status: "allowed", email: emails[0]}
	}
	info := keyport.ErrorInfo(err)
	if info == nil || info.GetDomain() != keyport.ErrorDomain {
		t.Fatalf("refusal without ErrorInfo of domain %s: %v", keyport.ErrorDomain, err)
	}
	s := map[codes.Code]string{
		codes.Unauthenticated: "unauthenticated", codes.PermissionDenied: "forbidden",
		codes.Unavailable: "unavailable", codes.Internal: "internal",
	}[status.Code(err)]
	if s == "" {
		t.Fatalf("unexpected status: %v", err)
	}
	return verdict{status: s, reason: info.GetReason()}
}

// wantVerdict checks v's status and reason (or email when allowed).
func wantVerdict(t *testing.T, what string, v verdict, status, reasonOrEmail string) {
	t.Helper()
	got := v.reason
	if status == "allowed" {
		got = v.email
	}
	if v.status != status || got != reasonOrEmail {
		t.Errorf("%s: got %s %q, want %s %q", what, v.status, got, status, reasonOrEmail)
	}
}

// sessionIDOf is the id inside a "kp_<id>.<secret>" token.
func sessionIDOf(token string) string {
	id, _, _ := strings.Cut(strings.TrimPrefix(token, "kp_"), ".")
	return id
}

// credentialsOf are the ways adapter a can carry token.
func credentialsOf(a adapter, token string) map[string]credential {
	creds := map[string]credential{"bearer": {bearer: token}}
	if a.cookies {
		creds["cookie"] = credential{cookie: token}
	}
	return creds
}

func TestGuardBearerAndCookie(t *testing.T) {
	env := newGuardEnv(t, liveServer(t), true, keyport.CacheConfig{})
	forEachAdapter(t, func(t *testing.T, a adapter) {
		call := a.serve(t, env.guard)
		email, up := signUp(t, env.client)
		token := up.GetSession().GetToken()
		for how, cred := range credentialsOf(a, token) {
			before := env.cache.Stats()
			wantVerdict(t, how, call(t, cred), "allowed", email)
			wantVerdict(t, how+" again", call(t, cred), "allowed", email)
			if after := env.cache.Stats(); after.Hits <= before.Hits {
				t.Errorf("%s: the second request was not a cache hit: %+v -> %+v", how, before, after)
			}
		}
		wantVerdict(t, "no token", call(t, credential{}), "unauthenticated", keyport.ReasonUnauthenticated)
	})
}

func TestGuardRefusesMalformedTokens(t *testing.T) {
	env := newGuardEnv(t, liveServer(t), true, keyport.CacheConfig{})
	_, up := signUp(t, env.client)
	token := up.GetSession().GetToken()
	junk := []string{"garbage", "kp_nope.nope", "kp_.x", token + "x", "kp_" + strings.Repeat("k", 4000) + ".x", "Bearer", `kp_"a".b`}
	forEachAdapter(t, func(t *testing.T, a adapter) {
		call := a.serve(t, env.guard)
		for _, bad := range junk {
			for how, cred := range credentialsOf(a, bad) {
				v := call(t, cred)
				wantVerdict(t, fmt.Sprintf("%s %.20q", how, bad), v, "unauthenticated", keyport.ReasonUnauthenticated)
				if how == "cookie" && !strings.Contains(v.setCookie, "Max-Age=0") {
					t.Errorf("a dead session cookie %.20q is not deleted: Set-Cookie %q", bad, v.setCookie)
				}
			}
		}
	})
}

func TestGuardRevokedSessionIsRefusedNext(t *testing.T) {
	env := newGuardEnv(t, liveServer(t), true, keyport.CacheConfig{})
	forEachAdapter(t, func(t *testing.T, a adapter) {
		call := a.serve(t, env.guard)
		email, up := signUp(t, env.client)
		laptop := up.GetSession().GetToken()
		phone := signIn(t, env.client, email).GetToken()
		tablet := signIn(t, env.client, email).GetToken()
		for _, token := range []string{phone, tablet} {
			wantVerdict(t, "warm", call(t, credential{bearer: token}), "allowed", email)
			if env.cache.Lookup(token) == nil {
				t.Fatal("the session is not cached after a request")
			}
		}

		// Revoked through the guard: refused on the very next request.
		if err := env.guard.RevokeSession(t.Context(), laptop, sessionIDOf(phone)); err != nil {
			t.Fatal(err)
		}
		wantVerdict(t, "right after the guard revoked it", call(t, credential{bearer: phone}), "unauthenticated", keyport.ReasonUnauthenticated)

		// Revoked through Keyport by someone else: the event drops the entry.
		if _, err := env.client.Sessions.RevokeSession(keyport.WithToken(t.Context(), laptop),
			&keyportv1.RevokeSessionRequest{SessionId: sessionIDOf(tablet)}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the revocation event", 5*time.Second, func() bool { return env.cache.Lookup(tablet) == nil })
		if !env.cache.Live() {
			t.Error("the entry was dropped by a broken stream, not by the event")
		}
		wantVerdict(t, "after the event", call(t, credential{bearer: tablet}), "unauthenticated", keyport.ReasonUnauthenticated)
		wantVerdict(t, "the other session", call(t, credential{bearer: laptop}), "allowed", email)
	})
}

func TestGuardExpiredSession(t *testing.T) {
	// Sessions end 2 s after their last use; a use past 1 s slides them.
	srv := startOwnServer(t, "KEYPORT_SESSIONS__EXPIRES_IN_SECS=2", "KEYPORT_SESSIONS__UPDATE_AGE_SECS=1")
	env := newGuardEnv(t, srv.addr, true, keyport.CacheConfig{})
	forEachAdapter(t, func(t *testing.T, a adapter) {
		call := a.serve(t, env.guard)
		email, up := signUp(t, env.client)
		token := up.GetSession().GetToken()
		wantVerdict(t, "fresh", call(t, credential{bearer: token}), "allowed", email)
		time.Sleep(2500 * time.Millisecond)
		wantVerdict(t, "expired", call(t, credential{bearer: token}), "unauthenticated", keyport.ReasonSessionExpired)

		if !a.cookies {
			return
		}
		// Past update_age Keyport slides the expiry: the cookie is re-issued.
		second := signIn(t, env.client, email).GetToken()
		time.Sleep(1200 * time.Millisecond)
		v := call(t, credential{cookie: second})
		wantVerdict(t, "slid", v, "allowed", email)
		if !strings.HasPrefix(v.setCookie, keyport.SessionCookieName+"="+second+"; Path=/; Max-Age=") ||
			!strings.HasSuffix(v.setCookie, "; HttpOnly; Secure; SameSite=Lax") || strings.Contains(v.setCookie, "Max-Age=0") {
			t.Errorf("the slid session's cookie is not re-issued: Set-Cookie %q", v.setCookie)
		}
		if v := call(t, credential{bearer: second}); v.setCookie != "" {
			t.Errorf("a bearer request got a cookie: %q", v.setCookie)
		}
	})
	// Seconds of health checks later, the stream never went dark.
	if s := env.cache.Stats(); s.Subscriptions != 1 || !s.Live {
		t.Errorf("the stream broke while the server was fine: %+v", s)
	}
}

func TestGuardStopsServingWhenKeyportFreezes(t *testing.T) {
	k := startOwnKeyport(t)
	env := newGuardEnv(t, k.srv.addr, true, keyport.CacheConfig{RequestTimeout: 300 * time.Millisecond})
	forEachAdapter(t, func(t *testing.T, a adapter) {
		call := a.serve(t, env.guard)
		email, up := signUp(t, env.client)
		token := up.GetSession().GetToken()
		wantVerdict(t, "warm", call(t, credential{bearer: token}), "allowed", email)
		// A stopped process keeps its connections open and silent: only the
		// health checks notice.
		if err := k.srv.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer k.srv.cmd.Process.Signal(syscall.SIGCONT)
		waitFor(t, "the cache to go dark", 5*time.Second, func() bool { return !env.cache.Live() })
		wantVerdict(t, "Keyport frozen", call(t, credential{bearer: token}), "unavailable", a.unavailable)
		k.srv.cmd.Process.Signal(syscall.SIGCONT)
		waitFor(t, "the cache to go live again", 10*time.Second, env.cache.Live)
		wantVerdict(t, "Keyport back", call(t, credential{bearer: token}), "allowed", email)
	})
}

func TestGuardFailsClosedWhenKeyportIsUnreachable(t *testing.T) {
	// A port nobody listens on.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unused := lis.Addr().String()
	lis.Close()
	env := newGuardEnv(t, unused, false, keyport.CacheConfig{RequestTimeout: 500 * time.Millisecond})
	forEachAdapter(t, func(t *testing.T, a adapter) {
		call := a.serve(t, env.guard)
		token := "kp_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
		for how, cred := range credentialsOf(a, token) {
			v := call(t, cred)
			wantVerdict(t, how, v, "unavailable", a.unavailable)
			if how == "cookie" && v.setCookie != "" {
				t.Errorf("an outage deleted the cookie: %q", v.setCookie)
			}
		}
		wantVerdict(t, "no token needs no Keyport to refuse", call(t, credential{}), "unauthenticated", keyport.ReasonUnauthenticated)
	})
	if s := env.cache.Stats(); s.Refusals != 0 || s.Live {
		t.Errorf("an outage was remembered as a refusal, or the cache is live: %+v", s)
	}
}

// ownKeyport is a keyport of the test's own that it can stop and start
// again on the same address and database.
type ownKeyport struct {
	t       *testing.T
	bin     string
	dataDir string
	env     []string
	srv     *server // nil while stopped
}

func startOwnKeyport(t *testing.T, env ...string) *ownKeyport {
	t.Helper()
	bin := os.Getenv("KEYPORT_BIN")
	if bin == "" {
		t.Fatal("KEYPORT_BIN is not set; " + buildHint)
	}
	// A short grace: the cache's event stream would hold a stop for 10 s.
	env = append([]string{"KEYPORT_SERVER__SHUTDOWN_GRACE_MS=200"}, env...)
	k := &ownKeyport{t: t, bin: bin, dataDir: t.TempDir(), env: env}
	k.start("127.0.0.1:0")
	t.Cleanup(func() {
		if k.srv != nil {
			k.srv.halt()
		}
	})
	return k
}

func (k *ownKeyport) start(listen string) string {
	k.t.Helper()
	srv, err := startServerAt(k.bin, listen, k.dataDir, k.env...)
	if err != nil {
		k.t.Fatal(err)
	}
	k.srv = srv
	return srv.addr
}

func (k *ownKeyport) stop() {
	k.t.Helper()
	if err := k.srv.halt(); err != nil {
		k.t.Fatal(err)
	}
	k.srv = nil
}

func TestGuardStopsServingWhenKeyportGoesDown(t *testing.T) {
	k := startOwnKeyport(t)
	env := newGuardEnv(t, k.srv.addr, true, keyport.CacheConfig{RequestTimeout: 500 * time.Millisecond})
	forEachAdapter(t, func(t *testing.T, a adapter) {
		if k.srv == nil {
			k.start(env.client.Conn().Target())
			waitFor(t, "the cache to go live again", 10*time.Second, env.cache.Live)
		}
		call := a.serve(t, env.guard)
		email, up := signUp(t, env.client)
		token := up.GetSession().GetToken()
		wantVerdict(t, "warm", call(t, credential{bearer: token}), "allowed", email)
		if env.cache.Lookup(token) == nil {
			t.Fatal("not cached")
		}
		k.stop()
		waitFor(t, "the cache to go dark", 5*time.Second, func() bool { return !env.cache.Live() })
		wantVerdict(t, "Keyport down", call(t, credential{bearer: token}), "unavailable", a.unavailable)
	})
}

func TestGuardResynchronisesAfterABrokenStream(t *testing.T) {
	k := startOwnKeyport(t)
	addr := k.srv.addr
	env := newGuardEnv(t, addr, true, keyport.CacheConfig{ReconnectDelay: 20 * time.Millisecond})
	forEachAdapter(t, func(t *testing.T, a adapter) {
		call := a.serve(t, env.guard)
		email, up := signUp(t, env.client)
		token := up.GetSession().GetToken()
		wantVerdict(t, "warm", call(t, credential{bearer: token}), "allowed", email)
		subscriptions := env.cache.Stats().Subscriptions

		// Keyport goes away, and the session is revoked behind the cache's
		// back, by a keyport on another address over the same database: no
		// event ever reaches the cache.
		k.stop()
		aside := k.start("127.0.0.1:0")
		other, err := keyport.Dial(aside, keyport.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Sessions.SignOut(keyport.WithToken(t.Context(), token), &keyportv1.SignOutRequest{}); err != nil {
			t.Fatal(err)
		}
		other.Close()
		k.stop()
		k.start(addr)

		waitFor(t, "the cache to subscribe again", 10*time.Second, func() bool {
			return env.cache.Live() && env.cache.Stats().Subscriptions > subscriptions
		})
		if env.cache.Lookup(token) != nil {
			t.Fatal("the cache kept its entry across a broken stream")
		}
		wantVerdict(t, "after the restart", call(t, credential{bearer: token}), "unauthenticated", keyport.ReasonUnauthenticated)
	})
}

func TestGuardPermissions(t *testing.T) {
	env := newGuardEnv(t, liveServer(t), true, keyport.CacheConfig{})
	email, _ := signUp(t, env.client)
	token := signIn(t, env.client, email).GetToken()
	key, err := env.client.APIKeys.CreateApiKey(keyport.WithToken(t.Context(), token),
		&keyportv1.CreateApiKeyRequest{Name: "guard", Scopes: []string{"posts:read"}})
	if err != nil {
		t.Fatal(err)
	}
	forEachAdapter(t, func(t *testing.T, a adapter) {
		read := a.serve(t, env.guard, "posts:read")
		write := a.serve(t, env.guard, "posts:write")
		both := a.serve(t, env.guard, "posts:read", "posts:write")
		broken := a.serve(t, env.guard, "nothing:here")
		session := a.serve(t, env.guard)

		before := env.cache.Stats()
		wantVerdict(t, "read", read(t, credential{bearer: token}), "allowed", email)
		wantVerdict(t, "read again", read(t, credential{bearer: token}), "allowed", email)
		wantVerdict(t, "write", write(t, credential{bearer: token}), "forbidden", a.forbidden)
		wantVerdict(t, "read and write", both(t, credential{bearer: token}), "forbidden", a.forbidden)
		if after := env.cache.Stats(); after.Hits <= before.Hits {
			t.Errorf("no decision came from the cache: %+v -> %+v", before, after)
		}
		wantVerdict(t, "outside the catalogue", broken(t, credential{bearer: token}), "internal", keyport.ReasonPermissionUnknown)

		// An API key: for permission checks only.
		secret := key.GetSecret()
		wantVerdict(t, "key on a permission route", read(t, credential{bearer: secret}), "allowed", email)
		wantVerdict(t, "key beyond its scopes", write(t, credential{bearer: secret}), "forbidden", a.forbidden)
		wantVerdict(t, "key on a session route", session(t, credential{bearer: secret}), "unauthenticated", keyport.ReasonAPIKeyNotAccepted)
		if a.cookies {
			wantVerdict(t, "key in the cookie", read(t, credential{cookie: secret}), "unauthenticated", keyport.ReasonUnauthenticated)
		}
	})
}

func TestGuardJunkTokensCostOneCall(t *testing.T) {
	env := newGuardEnv(t, liveServer(t), true, keyport.CacheConfig{})
	forEachAdapter(t, func(t *testing.T, a adapter) {
		call := a.serve(t, env.guard)
		junk := fmt.Sprintf("kp_%s.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", strings.Repeat(a.name[:1], 22))
		before := env.cache.Stats()
		for range 5 {
			wantVerdict(t, "junk", call(t, credential{bearer: junk}), "unauthenticated", keyport.ReasonUnauthenticated)
		}
		after := env.cache.Stats()
		if after.Misses-before.Misses != 1 || after.RefusalHits-before.RefusalHits != 4 {
			t.Errorf("5 requests with one junk token: %d calls to Keyport, %d refusals from memory; want 1 and 4",
				after.Misses-before.Misses, after.RefusalHits-before.RefusalHits)
		}
	})
}

// TestGuardRevocationRacingRequests sends requests with one session from
// 16 goroutines while it is revoked: every request sent after the
// revocation returned (through the guard) or reached the cache (through
// Keyport) is refused, and no goroutine is allowed after being refused.
func TestGuardRevocationRacingRequests(t *testing.T) {
	env := newGuardEnv(t, liveServer(t), true, keyport.CacheConfig{})
	forEachAdapter(t, func(t *testing.T, a adapter) {
		call := a.serve(t, env.guard)
		for _, via := range []string{"guard", "keyport"} {
			email, up := signUp(t, env.client)
			laptop := up.GetSession().GetToken()
			phone := signIn(t, env.client, email).GetToken()
			wantVerdict(t, "warm", call(t, credential{bearer: phone}), "allowed", email)

			type sent struct {
				at      time.Time
				allowed bool
			}
			var (
				wg, ready sync.WaitGroup
				stop      = make(chan struct{})
				results   = make([][]sent, 16)
			)
			ready.Add(len(results))
			for i := range results {
				wg.Go(func() {
					defer func() {
						if len(results[i]) == 0 {
							ready.Done()
						}
					}()
					for {
						select {
						case <-stop:
							return
						default:
						}
						at := time.Now()
						v := call(t, credential{bearer: phone})
						if v.status != "allowed" && v.reason != keyport.ReasonUnauthenticated {
							t.Errorf("request refused as %s %s", v.status, v.reason)
						}
						results[i] = append(results[i], sent{at: at, allowed: v.status == "allowed"})
						if len(results[i]) == 1 {
							ready.Done()
						}
					}
				})
			}
			ready.Wait() // every goroutine has had an answer before the revocation
			time.Sleep(20 * time.Millisecond)
			if via == "guard" {
				if err := env.guard.RevokeSession(t.Context(), laptop, sessionIDOf(phone)); err != nil {
					t.Fatal(err)
				}
			} else {
				if _, err := env.client.Sessions.RevokeSession(keyport.WithToken(t.Context(), laptop),
					&keyportv1.RevokeSessionRequest{SessionId: sessionIDOf(phone)}); err != nil {
					t.Fatal(err)
				}
				waitFor(t, "the revocation event", 5*time.Second, func() bool { return env.cache.Lookup(phone) == nil })
			}
			revoked := time.Now() // the revocation is in force from here on
			time.Sleep(300 * time.Millisecond)
			close(stop)
			wg.Wait()

			total, after := 0, 0
			for i, requests := range results {
				refused := false
				for _, r := range requests {
					total++
					if r.at.After(revoked) {
						after++
						if r.allowed {
							t.Errorf("via %s: goroutine %d allowed a request sent %v after the revocation", via, i, r.at.Sub(revoked))
						}
					}
					if refused && r.allowed {
						t.Errorf("via %s: goroutine %d allowed a request after a refusal", via, i)
					}
					refused = refused || !r.allowed
				}
				if len(requests) == 0 || !requests[0].allowed {
					t.Errorf("via %s: goroutine %d never ran before the revocation", via, i)
				}
			}
			if after < 16 {
				t.Errorf("via %s: only %d of %d requests were sent after the revocation", via, after, total)
			}
		}
	})
}

func TestGuardForwardsClientAddressAndAgent(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []metadata.MD
	)
	record := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if strings.HasSuffix(method, "/GetSession") {
			md, _ := metadata.FromOutgoingContext(ctx)
			mu.Lock()
			seen = append(seen, md)
			mu.Unlock()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	env := newGuardEnv(t, liveServer(t), true, keyport.CacheConfig{},
		keyport.WithDialOptions(grpc.WithChainUnaryInterceptor(record)))
	g := keyport.NewGuard(env.cache, keyport.GuardConfig{TrustForwardedFor: true})
	email, up := signUp(t, env.client)
	srv := httptest.NewServer(g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := keyport.PrincipalFrom(r.Context())
		fmt.Fprint(w, "me:"+p.User.GetEmail())
	})))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Authorization", "Bearer "+up.GetSession().GetToken())
	req.Header.Set("User-Agent", "Mozilla/5.0 (tést)")
	req.Header.Add("X-Forwarded-For", "198.51.100.7, 203.0.113.9")
	wantVerdict(t, "forwarded", httpVerdict(t, srv.Client(), req), "allowed", email)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 {
		t.Fatalf("%d GetSession calls, want 1", len(seen))
	}
	if got := seen[0].Get("x-keyport-client-ip"); len(got) != 1 || got[0] != "203.0.113.9" {
		t.Errorf("x-keyport-client-ip = %q, want the right-most X-Forwarded-For entry", got)
	}
	if got := seen[0].Get("x-keyport-user-agent"); len(got) != 1 || got[0] != "Mozilla/5.0 (tst)" {
		t.Errorf("x-keyport-user-agent = %q, want the printable ASCII of the user agent", got)
	}
}

func TestGuardRefusesCrossSiteCookieWrites(t *testing.T) {
	env := newGuardEnv(t, liveServer(t), true, keyport.CacheConfig{})
	email, up := signUp(t, env.client)
	token := up.GetSession().GetToken()
	srv := httptest.NewServer(env.guard.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := keyport.PrincipalFrom(r.Context())
		fmt.Fprint(w, "me:"+p.User.GetEmail())
	})))
	defer srv.Close()
	post := func(origin, fetchSite string, cookie, bearer bool) verdict {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/notes", strings.NewReader("x"))
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if fetchSite != "" {
			req.Header.Set("Sec-Fetch-Site", fetchSite)
		}
		if cookie {
			req.Header.Set("Cookie", keyport.SessionCookieName+"="+token)
		}
		if bearer {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return httpVerdict(t, srv.Client(), req)
	}
	wantVerdict(t, "cookie from another site", post("https://evil.example", "", true, false), "forbidden", keyport.RefusalReasonCrossSite)
	wantVerdict(t, "cookie without an origin", post("", "", true, false), "forbidden", keyport.RefusalReasonCrossSite)
	wantVerdict(t, "cookie, browser says cross-site", post("null", "cross-site", true, false), "forbidden", keyport.RefusalReasonCrossSite)
	wantVerdict(t, "cookie from its own origin", post(srv.URL, "", true, false), "allowed", email)
	wantVerdict(t, "cookie, browser says same-origin", post("null", "same-origin", true, false), "allowed", email)
	wantVerdict(t, "bearer from another site", post("https://evil.example", "", false, true), "allowed", email)
}

func TestGuardOptionalMiddleware(t *testing.T) {
	seeWho := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := keyport.PrincipalFrom(r.Context()); ok {
			fmt.Fprint(w, "me:"+p.User.GetEmail())
			return
		}
		fmt.Fprint(w, "me:anonymous")
	})
	get := func(t *testing.T, url string, cookie string) verdict {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if cookie != "" {
			req.Header.Set("Cookie", keyport.SessionCookieName+"="+cookie)
		}
		return httpVerdict(t, http.DefaultClient, req)
	}
	t.Run("live", func(t *testing.T) {
		env := newGuardEnv(t, liveServer(t), true, keyport.CacheConfig{})
		srv := httptest.NewServer(env.guard.OptionalMiddleware(seeWho))
		defer srv.Close()
		email, up := signUp(t, env.client)
		wantVerdict(t, "signed in", get(t, srv.URL, up.GetSession().GetToken()), "allowed", email)
		wantVerdict(t, "nobody", get(t, srv.URL, ""), "allowed", "anonymous")
		dead := get(t, srv.URL, "kp_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB")
		wantVerdict(t, "dead cookie", dead, "allowed", "anonymous")
		if !strings.Contains(dead.setCookie, "Max-Age=0") {
			t.Errorf("the dead cookie is not deleted: %q", dead.setCookie)
		}
	})
	t.Run("keyport down", func(t *testing.T) {
		env := newGuardEnv(t, "127.0.0.1:1", false, keyport.CacheConfig{RequestTimeout: 300 * time.Millisecond})
		srv := httptest.NewServer(env.guard.OptionalMiddleware(seeWho))
		defer srv.Close()
		wantVerdict(t, "signed out while down", get(t, srv.URL, "kp_AAAAAAAAAAAAAAAAAAAAAA.BBBB"), "allowed", "anonymous")
	})
}

func TestGuardStreamInterceptor(t *testing.T) {
	env := newGuardEnv(t, liveServer(t), true, keyport.CacheConfig{})
	email, up := signUp(t, env.client)
	client := startGuardedHealth(t, env.guard, "posts:read")
	watch := func(token string) (metadata.MD, error) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return nil, err
		}
		if _, err := stream.Recv(); err != nil {
			return nil, err
		}
		return stream.Header()
	}
	header, err := watch(up.GetSession().GetToken())
	wantVerdict(t, "a stream with a session", grpcVerdict(t, err, header), "allowed", email)
	_, err = watch("")
	wantVerdict(t, "a stream without a token", grpcVerdict(t, err, nil), "unauthenticated", keyport.ReasonUnauthenticated)
	_, err = watch("kp_nope.nope")
	wantVerdict(t, "a stream with a bad token", grpcVerdict(t, err, nil), "unauthenticated", keyport.ReasonUnauthenticated)
}

func TestCacheNeverGoesLiveForAnUntrustedPeer(t *testing.T) {
	srv := startOwnServer(t, "KEYPORT_SERVER__TRUSTED_PROXIES=[]")
	env := newGuardEnv(t, srv.addr, false, keyport.CacheConfig{ReconnectDelay: 20 * time.Millisecond})
	waitFor(t, "two refused subscriptions", 10*time.Second, func() bool { return env.cache.Stats().SubscribeFailures >= 2 })
	email, up := signUp(t, env.client)
	call := serveHTTP(t, env.guard)
	for range 3 {
		wantVerdict(t, "uncached", call(t, credential{bearer: up.GetSession().GetToken()}), "allowed", email)
	}
	if s := env.cache.Stats(); s.Live || s.Hits != 0 || s.Misses != 3 || s.Entries != 0 {
		t.Errorf("a cache that never went live served or kept something: %+v", s)
	}
	stream, err := env.client.Sessions.WatchSessionEvents(t.Context(), &keyportv1.WatchSessionEventsRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if !errors.Is(err, keyport.ErrPermissionDenied) {
		t.Errorf("WatchSessionEvents from an untrusted peer: %v, want PERMISSION_DENIED", err)
	}
}

func TestGuardSignOut(t *testing.T) {
	env := newGuardEnv(t, liveServer(t), true, keyport.CacheConfig{})
	call := serveHTTP(t, env.guard)
	email, up := signUp(t, env.client)
	token := up.GetSession().GetToken()
	wantVerdict(t, "warm", call(t, credential{cookie: token}), "allowed", email)
	clear, err := env.guard.SignOut(t.Context(), token)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(clear, keyport.SessionCookieName+"=; ") || !strings.Contains(clear, "Max-Age=0;") {
		t.Errorf("SignOut's Set-Cookie %q does not delete the session cookie", clear)
	}
	wantVerdict(t, "right after signing out", call(t, credential{cookie: token}), "unauthenticated", keyport.ReasonUnauthenticated)
	if _, err := env.guard.SignOut(t.Context(), token); err != nil {
		t.Errorf("signing out a session already gone: %v", err)
	}
}
