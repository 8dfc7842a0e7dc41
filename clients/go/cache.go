package keyport

import (
	"context"
	"crypto/subtle"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// CacheConfig says how a [SessionCache] behaves. The zero value of a field
// means its default (the Rust client's CacheConfig defaults).
type CacheConfig struct {
	// MaxEntries is the most sessions kept (default 100,000).
	MaxEntries int
	// MaxTTL is the longest an answer is served, whatever Keyport's
	// cache_ttl hint says (default 60 s).
	MaxTTL time.Duration
	// HeartbeatTimeout is how long the event stream may stay silent before
	// it counts as dead (default 40 s; the server sends a heartbeat every 15 s).
	HeartbeatTimeout time.Duration
	// ReconnectDelay is the pause before subscribing again after the
	// stream ended (default 250 ms).
	ReconnectDelay time.Duration
	// RefusalTTL is how long a token Keyport refused as unknown, revoked or
	// expired is refused again without asking (default 30 s; negative: always ask).
	RefusalTTL time.Duration
	// MaxRefusals is the most refused tokens remembered (default 10,000).
	MaxRefusals int
	// LivenessInterval is how often the server the stream is on is asked
	// for its health (grpc.health.v1); a server that does not answer
	// SERVING within RequestTimeout counts as down and the cache goes dark.
	// A frozen server keeps its stream open and silent, which only the
	// heartbeat timeout would notice otherwise (default 1 s).
	LivenessInterval time.Duration
	// RequestTimeout bounds each health check and each GetSession or
	// Authorize call of a miss whose context has no deadline (default
	// [DefaultTimeout]).
	RequestTimeout time.Duration
}

// withDefaults is c with each zero field set to its default.
func (c CacheConfig) withDefaults() CacheConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = 100_000
	}
	if c.MaxRefusals <= 0 {
		c.MaxRefusals = 10_000
	}
	def(&c.MaxTTL, 60*time.Second)
	def(&c.HeartbeatTimeout, 40*time.Second)
	def(&c.ReconnectDelay, 250*time.Millisecond)
	def(&c.RefusalTTL, 30*time.Second)
	def(&c.LivenessInterval, time.Second)
	def(&c.RequestTimeout, DefaultTimeout)
	return c
}

// Principal is who is behind a request, as Keyport answered: a session and
// its user, or for an API key (which only permission checks accept) the
// key and its owner (User, or ServiceAccount). A cache hit hands out the
// same Principal to every request: treat it as read-only.
type Principal struct {
	// Session is the validated session; nil for an API key.
	Session *keyportv1.Session
	// User is the session's user (with their roles), or a user's key's owner.
	User *keyportv1.User
	// APIKey is the key checked; nil for a session.
	APIKey *keyportv1.ApiKey
	// ServiceAccount owns the key when no user does.
	ServiceAccount *keyportv1.ServiceAccount
}

// ownerID is the user (or service account) the principal's events name.
func (p *Principal) ownerID() string {
	if id := p.User.GetId(); id != "" {
		return id
	}
	return p.ServiceAccount.GetId()
}

// ClientInfo is the end user's address and user agent, forwarded to
// Keyport as x-keyport-client-ip and x-keyport-user-agent metadata (it
// believes them only from its server.trusted_proxies).
type ClientInfo struct {
	IP        string
	UserAgent string
}

// WithClientInfo returns a copy of ctx whose outgoing metadata carries
// info's non-empty fields, cleaned to what gRPC metadata can hold.
func WithClientInfo(ctx context.Context, info ClientInfo) context.Context {
	var kv []string
	if ip := metadataSafe(info.IP, 64); ip != "" {
		kv = append(kv, "x-keyport-client-ip", ip)
	}
	if ua := metadataSafe(info.UserAgent, 512); ua != "" {
		kv = append(kv, "x-keyport-user-agent", ua)
	}
	if len(kv) == 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// metadataSafe keeps the printable ASCII of s, at most max bytes: anything
// else would fail the whole call in grpc-go.
func metadataSafe(s string, max int) string {
	clean := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, s)
	if len(clean) > max {
		clean = clean[:max]
	}
	return strings.TrimSpace(clean)
}

// Decision is a permission check answered by [SessionCache.Authorize].
type Decision struct {
	// Principal is who asked (shared with the cache entry).
	Principal *Principal
	// Allowed holds, per asked permission in the order asked, whether it is allowed.
	Allowed []bool
	// Refreshed says Keyport pushed the session's expiry forward: re-issue the cookie.
	Refreshed bool
}

// All reports whether every asked permission is allowed.
func (d *Decision) All() bool { return !slices.Contains(d.Allowed, false) }

// CacheStats is a snapshot of what a [SessionCache] holds and has done.
type CacheStats struct {
	Entries           int    // sessions (and keys) cached now
	Refusals          int    // refused tokens remembered now
	Live              bool   // the event stream is up, so entries are served
	Hits              uint64 // answers served from the cache
	Misses            uint64 // tokens Keyport was asked about
	RefusalHits       uint64 // refusals served without asking Keyport
	Subscriptions     uint64 // times the stream went live
	SubscribeFailures uint64 // subscriptions that failed before going live
}

// SessionCache keeps Keyport's answers about session tokens (GetSession,
// and Authorize's decisions) in memory and drops them the moment Keyport
// says they changed.
//
// It serves entries only while its WatchSessionEvents stream is live. When
// the stream ends, fails, falls silent past HeartbeatTimeout, or its server
// stops answering health checks, the cache flushes everything and asks
// Keyport about every token until it has subscribed again; after the next
// "ready" it starts empty. A missed event can therefore never leave a
// revoked session valid. An answer that was in flight while any event
// arrived is not cached, since it may predate that event.
//
// Keyport answers the stream only to peers in its server.trusted_proxies.
// A SessionCache is safe for concurrent use; Close it when done.
type SessionCache struct {
	client *Client
	cfg    CacheConfig
	health healthpb.HealthClient
	now    func() time.Time // the clock entry lifetimes are read from

	mu        sync.RWMutex
	live      bool                           // guarded by mu
	bySession map[string]*entry              // guarded by mu; key: [entryKey]
	byUser    map[string]map[string]struct{} // guarded by mu; owner id -> entry keys
	known     map[string]struct{}            // guarded by mu; permission names Keyport decided
	// epoch is bumped (under mu) by every event and every change of live:
	// an answer is kept only if the epoch is the one taken before asking.
	epoch atomic.Uint64
	// breakStream ends the current subscription; guarded by mu.
	breakStream context.CancelFunc

	refusals *refusals
	stats    struct{ hits, misses, refusalHits, subscriptions, subscribeFailures atomic.Uint64 }

	stop context.CancelFunc
	done chan struct{}
}

type entry struct {
	token      string
	principal  *Principal
	validUntil time.Time
	// granted is every permission the principal is allowed, sorted; nil
	// when the entry came from GetSession, which does not say.
	granted []string
}

// NewSessionCache starts a cache in front of client. It subscribes to
// Keyport's session events in a goroutine that runs until Close is called
// or ctx is done; until the subscription is live every check asks Keyport.
func NewSessionCache(ctx context.Context, client *Client, cfg CacheConfig) *SessionCache {
	c := newDetachedCache(client, cfg)
	ctx, c.stop = context.WithCancel(ctx)
	go c.watch(ctx)
	return c
}

// newDetachedCache is a cache that does not subscribe (for unit tests).
func newDetachedCache(client *Client, cfg CacheConfig) *SessionCache {
	cfg = cfg.withDefaults()
	c := &SessionCache{
		client:    client,
		cfg:       cfg,
		now:       time.Now,
		bySession: map[string]*entry{},
		byUser:    map[string]map[string]struct{}{},
		known:     map[string]struct{}{},
		done:      make(chan struct{}),
		stop:      func() {},
	}
	if client != nil {
		c.health = healthpb.NewHealthClient(client.Conn())
	}
	c.refusals = newRefusals(cfg.RefusalTTL, cfg.MaxRefusals, func() time.Time { return c.now() })
	return c
}

// Close stops the subscription and waits for its goroutine to end. The
// cache then asks Keyport about every token. It does not close the client.
func (c *SessionCache) Close() error {
	c.stop()
	<-c.done
	return nil
}

// Client is the client the cache asks.
func (c *SessionCache) Client() *Client { return c.client }

// Live reports whether the event stream is up, so that entries are served.
func (c *SessionCache) Live() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.live
}

// Stats returns a snapshot of the cache, for metrics and health pages.
func (c *SessionCache) Stats() CacheStats {
	c.mu.RLock()
	entries, live := len(c.bySession), c.live
	c.mu.RUnlock()
	return CacheStats{
		Entries:           entries,
		Refusals:          c.refusals.len(),
		Live:              live,
		Hits:              c.stats.hits.Load(),
		Misses:            c.stats.misses.Load(),
		RefusalHits:       c.stats.refusalHits.Load(),
		Subscriptions:     c.stats.subscriptions.Load(),
		SubscribeFailures: c.stats.subscribeFailures.Load(),
	}
}

// GetSession validates a session token: from the cache when possible, else
// with Keyport's GetSession (forwarding info), whose answer is cached for
// the shorter of its cache_ttl and MaxTTL. refreshed is true when this call
// pushed the session's expiry forward (re-issue the cookie). A token Keyport
// refused as unknown, revoked or expired is refused again without a call for
// RefusalTTL. Errors are Keyport's (see [ErrorReason]).
func (c *SessionCache) GetSession(ctx context.Context, token string, info ClientInfo) (p *Principal, refreshed bool, err error) {
	if p := c.Lookup(token); p != nil {
		return p, false, nil
	}
	var resp *keyportv1.GetSessionResponse
	ticket, err := c.ask(ctx, token, info, func(ctx context.Context) (err error) {
		resp, err = c.client.Sessions.GetSession(ctx, &keyportv1.GetSessionRequest{Token: token})
		return err
	})
	if err != nil {
		return nil, false, err
	}
	p = &Principal{Session: resp.GetSession(), User: resp.GetUser()}
	c.insert(token, p, resp.GetCacheTtl().AsDuration(), nil, nil, ticket)
	return p, resp.GetRefreshed(), nil
}

// Authorize decides permissions for token (a session token or an API key):
// from the cache when the principal's granted permissions are cached and
// Keyport decided each name before, else with one Authorize call, whose
// answer is cached (principal and granted permissions) as GetSession's
// is. A name outside Keyport's catalogue stays an error
// ([ReasonPermissionUnknown]), never a silent deny.
func (c *SessionCache) Authorize(ctx context.Context, token string, permissions []string, info ClientInfo) (*Decision, error) {
	if d := c.DecideCached(token, permissions); d != nil {
		return d, nil
	}
	var resp *keyportv1.AuthorizeResponse
	ticket, err := c.ask(ctx, token, info, func(ctx context.Context) (err error) {
		resp, err = c.client.Authorization.Authorize(ctx, &keyportv1.AuthorizeRequest{Token: token, Permissions: permissions})
		return err
	})
	if err != nil {
		return nil, err
	}
	p := &Principal{Session: resp.GetSession(), User: resp.GetUser(), APIKey: resp.GetApiKey(), ServiceAccount: resp.GetServiceAccount()}
	granted := slices.Clone(resp.GetGranted())
	slices.Sort(granted)
	c.insert(token, p, resp.GetCacheTtl().AsDuration(), granted, permissions, ticket)
	d := &Decision{Principal: p, Refreshed: resp.GetRefreshed(), Allowed: make([]bool, len(permissions))}
	for i, decided := range resp.GetDecisions() {
		if i < len(d.Allowed) {
			d.Allowed[i] = decided.GetAllowed()
		}
	}
	return d, nil
}

// ask makes a miss's call: the remembered refusal of token, else call's
// error, with the epoch ticket taken before asking. A final refusal is
// remembered; a server found down breaks the stream.
func (c *SessionCache) ask(ctx context.Context, token string, info ClientInfo, call func(context.Context) error) (uint64, error) {
	if err := c.refusals.get(token); err != nil {
		c.stats.refusalHits.Add(1)
		return 0, err
	}
	c.stats.misses.Add(1)
	ticket := c.epoch.Load()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.RequestTimeout)
		defer cancel()
	}
	err := call(WithClientInfo(ctx, info))
	if err != nil {
		c.refusals.remember(token, err)
		if status.Code(err) == codes.Unavailable && ErrorReason(err) == "" {
			// The transport failed: the stream's events may have stopped
			// too, without it saying so yet.
			c.goDark()
		}
	}
	return ticket, err
}

// Lookup returns the cached principal of token, if the stream is live and
// the entry has not expired; nil otherwise. It never calls Keyport.
func (c *SessionCache) Lookup(token string) *Principal {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e := c.hit(token); e != nil {
		return e.principal
	}
	return nil
}

// DecideCached is the decision of permissions for token from the cache
// alone, or nil: it needs the stream live, the principal's granted
// permissions cached, and every name one Keyport decided before.
func (c *SessionCache) DecideCached(token string, permissions []string) *Decision {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, p := range permissions {
		if _, ok := c.known[p]; !ok {
			return nil
		}
	}
	e := c.hit(token)
	if e == nil || e.granted == nil {
		return nil
	}
	allowed := make([]bool, len(permissions))
	for i, p := range permissions {
		_, allowed[i] = slices.BinarySearch(e.granted, p)
	}
	return &Decision{Principal: e.principal, Allowed: allowed}
}

// hit is token's live, unexpired entry; c.mu must be held.
func (c *SessionCache) hit(token string) *entry {
	if !c.live {
		return nil
	}
	key, ok := entryKey(token)
	if !ok {
		return nil
	}
	e := c.bySession[key]
	if e == nil || subtle.ConstantTimeCompare([]byte(e.token), []byte(token)) != 1 || !c.now().Before(e.validUntil) {
		return nil
	}
	c.stats.hits.Add(1)
	return e
}

// insert caches p for token under ticket, for min(ttl, MaxTTL), with the
// permissions it is granted (nil: unknown) and decided as names Keyport knows.
func (c *SessionCache) insert(token string, p *Principal, ttl time.Duration, granted, decided []string, ticket uint64) {
	ttl = min(ttl, c.cfg.MaxTTL)
	key, ok := entryKey(token)
	if ttl <= 0 || !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Checked under the lock that events take too: an event between the
	// call and here means the answer may already be stale.
	if !c.live || c.epoch.Load() != ticket {
		return
	}
	for _, name := range decided {
		c.known[name] = struct{}{}
	}
	now := c.now()
	if _, replacing := c.bySession[key]; !replacing && len(c.bySession) >= c.cfg.MaxEntries {
		c.evict(now)
	}
	c.removeLocked(key)
	c.bySession[key] = &entry{token: token, principal: p, validUntil: now.Add(ttl), granted: granted}
	owner := p.ownerID()
	if c.byUser[owner] == nil {
		c.byUser[owner] = map[string]struct{}{}
	}
	c.byUser[owner][key] = struct{}{}
}

// evict makes room: the expired entries, or else an arbitrary one; c.mu held.
func (c *SessionCache) evict(now time.Time) {
	evicted := false
	for key, e := range c.bySession {
		if !now.Before(e.validUntil) {
			c.removeLocked(key)
			evicted = true
		}
	}
	if !evicted {
		for key := range c.bySession {
			c.removeLocked(key)
			break
		}
	}
}

// ForgetSession drops a session at once, e.g. right after this app revoked it.
func (c *SessionCache) ForgetSession(sessionID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	c.removeLocked(sessionID)
}

// ForgetUser drops every cached session (and key) of a user at once.
func (c *SessionCache) ForgetUser(userID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	c.removeUserLocked(userID)
}

func (c *SessionCache) removeLocked(key string) {
	e := c.bySession[key]
	if e == nil {
		return
	}
	delete(c.bySession, key)
	owner := e.principal.ownerID()
	if keys := c.byUser[owner]; keys != nil {
		delete(keys, key)
		if len(keys) == 0 {
			delete(c.byUser, owner)
		}
	}
}

func (c *SessionCache) removeUserLocked(userID string) {
	for key := range c.byUser[userID] {
		delete(c.bySession, key)
	}
	delete(c.byUser, userID)
}

// setLive goes live or dark; either way it starts from an empty cache.
func (c *SessionCache) setLive(live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	c.live = live
	c.bySession = map[string]*entry{}
	c.byUser = map[string]map[string]struct{}{}
	c.known = map[string]struct{}{}
}

// goDark stops serving at once and ends the current subscription (the
// watcher subscribes again after ReconnectDelay).
func (c *SessionCache) goDark() {
	c.setLive(false)
	c.mu.RLock()
	breakStream := c.breakStream
	c.mu.RUnlock()
	if breakStream != nil {
		breakStream()
	}
}

// apply updates the cache for one event.
func (c *SessionCache) apply(msg *keyportv1.WatchSessionEventsResponse) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	switch ev := msg.GetEvent().(type) {
	case *keyportv1.WatchSessionEventsResponse_SessionRevoked:
		c.removeLocked(ev.SessionRevoked.GetSessionId())
	case *keyportv1.WatchSessionEventsResponse_UserChanged:
		c.removeUserLocked(ev.UserChanged.GetUserId())
	case *keyportv1.WatchSessionEventsResponse_RolesChanged:
		// Every decision may be stale; the sessions themselves are still valid.
		for _, e := range c.bySession {
			e.granted = nil
		}
	case *keyportv1.WatchSessionEventsResponse_ApiKeysChanged:
		if id := ev.ApiKeysChanged.GetApiKeyId(); id != "" {
			c.removeLocked(apiKeyPrefix + id)
		} else {
			c.removeUserLocked(ev.ApiKeysChanged.GetOwnerId())
		}
	}
}

// watch keeps the cache subscribed until ctx is done.
func (c *SessionCache) watch(ctx context.Context) {
	defer close(c.done)
	for {
		c.subscribe(ctx)
		c.setLive(false)
		select {
		case <-ctx.Done():
			return
		case <-time.After(c.cfg.ReconnectDelay):
		}
	}
}

// subscribe runs one subscription until it ends, fails, falls silent, or
// its server stops answering health checks.
func (c *SessionCache) subscribe(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	c.mu.Lock()
	c.breakStream = cancel
	c.mu.Unlock()

	stream, err := c.client.Sessions.WatchSessionEvents(ctx, &keyportv1.WatchSessionEventsRequest{})
	if err != nil {
		c.stats.subscribeFailures.Add(1)
		return
	}
	silence := time.AfterFunc(c.cfg.HeartbeatTimeout, cancel)
	defer silence.Stop()
	go c.checkLiveness(ctx, cancel)
	ready := false
	for {
		msg, err := stream.Recv()
		if err != nil {
			if !ready {
				// Refused (not a trusted proxy) or unreachable.
				c.stats.subscribeFailures.Add(1)
			}
			return
		}
		silence.Reset(c.cfg.HeartbeatTimeout)
		switch msg.GetEvent().(type) {
		case *keyportv1.WatchSessionEventsResponse_Ready:
			ready = true
			c.stats.subscriptions.Add(1)
			c.setLive(true)
		case *keyportv1.WatchSessionEventsResponse_Heartbeat, nil:
		default:
			c.apply(msg)
		}
	}
}

// checkLiveness asks the server for its health every LivenessInterval
// while ctx lives, and calls down once it does not answer SERVING.
func (c *SessionCache) checkLiveness(ctx context.Context, down context.CancelFunc) {
	tick := time.NewTicker(c.cfg.LivenessInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		checkCtx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		resp, err := c.health.Check(checkCtx, &healthpb.HealthCheckRequest{})
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			down()
			return
		}
	}
}

// apiKeyPrefix starts every API key ("kpa_<id>.<secret>").
const apiKeyPrefix = "kpa_"

// entryKey is what token's entry is filed under: the session id of
// "kp_<id>.<secret>", or "kpa_<id>" for an API key (never equal to a
// session id, which has no such prefix).
func entryKey(token string) (string, bool) {
	if strings.HasPrefix(token, apiKeyPrefix) {
		id, _, ok := strings.Cut(token, ".")
		return id, ok && len(id) > len(apiKeyPrefix)
	}
	rest, ok := strings.CutPrefix(token, "kp_")
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, ".")
	return id, ok && id != ""
}
