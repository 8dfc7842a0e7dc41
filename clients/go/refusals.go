package keyport

import (
	"hash/maphash"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// refusals remembers, briefly, the tokens Keyport refused as unknown,
// revoked or expired, so that junk or stale cookies replayed on every
// request do not each cost a call. Such a token can never become valid
// again, so serving the refusal is right, stream or no stream. The map holds
// keyed hashes, not tokens: its memory is bounded by the entry count
// whatever an attacker sends.
type refusals struct {
	ttl  time.Duration
	max  int
	now  func() time.Time
	seed maphash.Seed // per process: nobody outside can aim at a collision

	mu      sync.Mutex
	entries map[uint64]refusal
}

type refusal struct {
	err   error
	until time.Time
}

func newRefusals(ttl time.Duration, max int, now func() time.Time) *refusals {
	return &refusals{ttl: ttl, max: max, now: now, seed: maphash.MakeSeed(), entries: map[uint64]refusal{}}
}

// get is the remembered refusal of token, if still fresh.
func (r *refusals) get(token string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.entries) == 0 {
		return nil
	}
	got, ok := r.entries[maphash.String(r.seed, token)]
	if !ok || !r.now().Before(got.until) {
		return nil
	}
	return got.err
}

// remember keeps err for token if it is a refusal that cannot change.
func (r *refusals) remember(token string, err error) {
	if r.ttl <= 0 || !isFinalRefusal(err) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if len(r.entries) >= r.max {
		for key, e := range r.entries {
			if !now.Before(e.until) {
				delete(r.entries, key)
			}
		}
		// Still full of fresh refusals (a flood of distinct junk): start
		// over rather than grow; each costs one more call at worst.
		if len(r.entries) >= r.max {
			clear(r.entries)
		}
	}
	r.entries[maphash.String(r.seed, token)] = refusal{err: err, until: now.Add(r.ttl)}
}

func (r *refusals) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

// isFinalRefusal: unknown, revoked or expired; the token is dead for good.
// An outage or a malformed request says nothing about the token.
func isFinalRefusal(err error) bool {
	if status.Code(err) != codes.Unauthenticated {
		return false
	}
	switch ErrorReason(err) {
	case ReasonUnauthenticated, ReasonSessionExpired:
		return true
	}
	return false
}
