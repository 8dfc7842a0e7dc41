package keyport

import (
	"fmt"
	"sync"
	"testing"
	"time"

	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// manualClock is a clock the test moves.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// liveCache is a live cache nobody feeds events, on a clock the test moves.
func liveCache(cfg CacheConfig) (*SessionCache, *manualClock) {
	clock := &manualClock{t: time.Unix(1_700_000_000, 0)}
	c := newDetachedCache(nil, cfg)
	c.now = clock.now
	c.setLive(true)
	return c, clock
}

func principalOf(userID string) *Principal {
	return &Principal{User: &keyportv1.User{Id: userID}, Session: &keyportv1.Session{UserId: userID}}
}

func TestCacheEntriesLiveForTheShorterOfHintAndMaxTTL(t *testing.T) {
	c, clock := liveCache(CacheConfig{MaxTTL: 60 * time.Second})
	ticket := c.epoch.Load()
	c.insert("kp_short.x", principalOf("u1"), 5*time.Second, nil, nil, ticket)
	c.insert("kp_long.x", principalOf("u1"), 600*time.Second, nil, nil, ticket)
	c.insert("kp_zero.x", principalOf("u1"), 0, nil, nil, ticket)
	if c.Lookup("kp_short.x") == nil || c.Lookup("kp_long.x") == nil {
		t.Fatal("not cached")
	}
	if c.Lookup("kp_zero.x") != nil {
		t.Error("an answer with no cache_ttl was cached")
	}
	clock.advance(5*time.Second - time.Millisecond)
	if c.Lookup("kp_short.x") == nil {
		t.Error("gone before its 5 s hint")
	}
	clock.advance(time.Millisecond)
	if c.Lookup("kp_short.x") != nil {
		t.Error("served past its hint")
	}
	clock.advance(55*time.Second - time.Millisecond)
	if c.Lookup("kp_long.x") == nil {
		t.Error("gone before max_ttl")
	}
	clock.advance(time.Millisecond)
	if c.Lookup("kp_long.x") != nil {
		t.Error("a 600 s hint was not capped at max_ttl")
	}
	if c.Lookup("kp_short.y") != nil {
		t.Error("another token of the session hit")
	}
}

func TestCacheServesAndKeepsNothingWhileDarkOrRaced(t *testing.T) {
	c, _ := liveCache(CacheConfig{})
	c.insert("kp_a.x", principalOf("u1"), time.Minute, nil, nil, c.epoch.Load())
	c.setLive(false)
	if c.Lookup("kp_a.x") != nil {
		t.Error("served while dark")
	}
	c.insert("kp_b.x", principalOf("u1"), time.Minute, nil, nil, c.epoch.Load())
	if c.setLive(true); c.Lookup("kp_a.x") != nil || c.Lookup("kp_b.x") != nil {
		t.Error("did not start empty after going live again")
	}
	// An answer whose call overlapped an event is not kept.
	ticket := c.epoch.Load()
	c.apply(&keyportv1.WatchSessionEventsResponse{Event: &keyportv1.WatchSessionEventsResponse_SessionRevoked{
		SessionRevoked: &keyportv1.SessionRevoked{SessionId: "someone-else"}}})
	c.insert("kp_c.x", principalOf("u1"), time.Minute, nil, nil, ticket)
	if c.Lookup("kp_c.x") != nil {
		t.Error("an answer that raced an event was kept")
	}
	ticket = c.epoch.Load()
	c.ForgetUser("nobody")
	c.insert("kp_c.x", principalOf("u1"), time.Minute, nil, nil, ticket)
	if c.Lookup("kp_c.x") != nil {
		t.Error("an answer that raced ForgetUser was kept")
	}
}

func TestCacheAppliesEvents(t *testing.T) {
	c, _ := liveCache(CacheConfig{})
	put := func(token, owner string, granted ...string) {
		c.insert(token, principalOf(owner), time.Minute, granted, []string{"posts:read", "posts:write"}, c.epoch.Load())
	}
	event := func(ev any) {
		msg := &keyportv1.WatchSessionEventsResponse{}
		switch ev := ev.(type) {
		case *keyportv1.SessionRevoked:
			msg.Event = &keyportv1.WatchSessionEventsResponse_SessionRevoked{SessionRevoked: ev}
		case *keyportv1.UserChanged:
			msg.Event = &keyportv1.WatchSessionEventsResponse_UserChanged{UserChanged: ev}
		case *keyportv1.RolesChanged:
			msg.Event = &keyportv1.WatchSessionEventsResponse_RolesChanged{RolesChanged: ev}
		case *keyportv1.ApiKeysChanged:
			msg.Event = &keyportv1.WatchSessionEventsResponse_ApiKeysChanged{ApiKeysChanged: ev}
		}
		c.apply(msg)
	}
	cached := func(tokens ...string) (got []bool) {
		for _, token := range tokens {
			got = append(got, c.Lookup(token) != nil)
		}
		return got
	}
	put("kp_a1.x", "ann", "posts:read")
	put("kp_a2.x", "ann", "posts:read")
	put("kp_b1.x", "bob", "posts:read")
	put("kpa_k1.x", "ann", "posts:read")
	put("kpa_k2.x", "ann", "posts:read")
	put("kpa_k3.x", "svc", "posts:read")

	event(&keyportv1.SessionRevoked{SessionId: "a1", UserId: "ann"})
	if got := fmt.Sprint(cached("kp_a1.x", "kp_a2.x", "kp_b1.x")); got != "[false true true]" {
		t.Errorf("after revoking a1: %s", got)
	}
	if d := c.DecideCached("kp_b1.x", []string{"posts:read", "posts:write"}); d == nil || fmt.Sprint(d.Allowed) != "[true false]" {
		t.Errorf("bob's cached decision: %+v", d)
	}
	if c.DecideCached("kp_b1.x", []string{"billing:read"}) != nil {
		t.Error("decided a name Keyport never decided")
	}
	event(&keyportv1.RolesChanged{})
	if c.DecideCached("kp_b1.x", []string{"posts:read"}) != nil || c.Lookup("kp_b1.x") == nil {
		t.Error("a change of the roles must drop decisions and keep sessions")
	}
	event(&keyportv1.ApiKeysChanged{OwnerId: "ann", ApiKeyId: "k1"})
	if got := fmt.Sprint(cached("kpa_k1.x", "kpa_k2.x", "kp_a2.x")); got != "[false true true]" {
		t.Errorf("after revoking key k1: %s", got)
	}
	event(&keyportv1.ApiKeysChanged{OwnerId: "svc"})
	if got := fmt.Sprint(cached("kpa_k3.x", "kpa_k2.x")); got != "[false true]" {
		t.Errorf("after every key of svc changed: %s", got)
	}
	event(&keyportv1.UserChanged{UserId: "ann"})
	if got := fmt.Sprint(cached("kp_a2.x", "kpa_k2.x", "kp_b1.x")); got != "[false false true]" {
		t.Errorf("after ann changed: %s", got)
	}
}

func TestCacheStaysWithinItsBound(t *testing.T) {
	c, clock := liveCache(CacheConfig{MaxEntries: 3})
	for i := range 10 {
		c.insert(fmt.Sprintf("kp_%d.x", i), principalOf("u"), time.Minute, nil, nil, c.epoch.Load())
		if n := c.Stats().Entries; n > 3 {
			t.Fatalf("%d entries, want at most 3", n)
		}
		clock.advance(time.Second)
	}
	if c.Lookup("kp_9.x") == nil {
		t.Error("the newest entry was evicted")
	}
}

func TestRefusalsRememberFinalRefusalsOnlyAndExpire(t *testing.T) {
	clock := &manualClock{t: time.Unix(1_700_000_000, 0)}
	r := newRefusals(30*time.Second, 3, clock.now)
	unauthenticated := WrapError(keyportStatus(codes.Unauthenticated, ReasonUnauthenticated))
	r.remember("kp_a.x", unauthenticated)
	r.remember("kp_b.x", status.Error(codes.Unavailable, "connection refused"))
	r.remember("kp_c.x", WrapError(keyportStatus(codes.InvalidArgument, ReasonInvalidArgument)))
	r.remember("kp_d.x", WrapError(keyportStatus(codes.Unauthenticated, ReasonSessionExpired)))
	if r.get("kp_a.x") == nil || r.get("kp_d.x") == nil {
		t.Error("a final refusal was not remembered")
	}
	if r.get("kp_b.x") != nil || r.get("kp_c.x") != nil {
		t.Error("an outage or a malformed request was remembered")
	}
	clock.advance(30 * time.Second)
	if r.get("kp_a.x") != nil {
		t.Error("served past its 30 s")
	}
	for i := range 10 {
		r.remember(fmt.Sprintf("kp_%d.x", i), unauthenticated)
		if r.len() > 3 {
			t.Fatalf("%d refusals kept, want at most 3", r.len())
		}
	}
	if r.get("kp_9.x") == nil {
		t.Error("the newest refusal was dropped")
	}
}

func keyportStatus(code codes.Code, reason string) error {
	st, _ := status.New(code, "refused").WithDetails(&errdetails.ErrorInfo{Domain: ErrorDomain, Reason: reason})
	return st.Err()
}

func TestEntryKeys(t *testing.T) {
	for token, want := range map[string]string{
		"kp_abc.def": "abc", "kpa_abc.def": "kpa_abc", "abc.def": "", "kp_abc": "", "kpa_abc": "", "kp_.x": "", "kpa_.x": "",
	} {
		got, ok := entryKey(token)
		if got != want && ok || ok != (want != "") {
			t.Errorf("entryKey(%q) = %q, %v; want %q", token, got, ok, want)
		}
	}
}
