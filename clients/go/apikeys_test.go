package keyport_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	keyport "github.com/keyport/keyport/clients/go"
	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ApiKeyService, API keys in Authorize and as the bearer of admin calls,
// and the service accounts of AdminService, each test on a keyport of its
// own whose user role grants posts:read and posts:write (so that a key
// scoped to posts:read is narrower than its owner) and whose auditor role
// grants users:read and posts:read ([apiKeysRoles]), with an admin made by
// its command line.

// apiKeysRoles are the roles of the API key tests' servers.
const apiKeysRoles = `KEYPORT_AUTHORIZATION__ROLES={user = ["posts:read","posts:write"], auditor = ["users:read","posts:read"], admin = ["*"]}`

var (
	// keyShape is an API key: kpa_, a 16-byte id and a 32-byte secret,
	// base64url without padding.
	keyShape = regexp.MustCompile(`^kpa_[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$`)
	// unknownKeyID is a well-formed key id that no key has.
	unknownKeyID = strings.Repeat("A", 22)
)

// unknownAccountID is a well-formed service account id (a UUIDv7) that no
// service account has.
const unknownAccountID = "01890a5d-ac96-7b4b-bcce-b302099a8057"

// keysServer is a running keyport with [apiKeysRoles], a client of it and
// its admin.
type keysServer struct {
	srv   *server
	c     *keyport.Client
	admin anAdmin
}

func startKeysServer(t *testing.T) keysServer {
	t.Helper()
	srv := startOwnServer(t, apiKeysRoles)
	c, err := keyport.Dial(srv.addr, keyport.WithInsecure())
	if err != nil {
		t.Fatalf("Dial(%q): %v", srv.addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return keysServer{srv: srv, c: c, admin: newAdminOn(t, srv, c)}
}

// keyOwner is a user signed up and freshly signed in (a new key needs a
// recent sign-in), with ctx carrying the session.
type keyOwner struct {
	id, email, token string
	ctx              context.Context
}

func (k keysServer) owner(t *testing.T) keyOwner {
	t.Helper()
	email, up := signUp(t, k.c)
	grant := signIn(t, k.c, email)
	return keyOwner{id: up.GetUser().GetId(), email: email, token: grant.GetToken(), ctx: keyport.WithToken(t.Context(), grant.GetToken())}
}

// key creates a key of the owner on ctx for scopes, failing the test on an error.
func (k keysServer) key(t *testing.T, ctx context.Context, name string, scopes ...string) *keyportv1.CreateApiKeyResponse {
	t.Helper()
	resp, err := k.c.APIKeys.CreateApiKey(ctx, &keyportv1.CreateApiKeyRequest{Name: name, Scopes: scopes})
	if err != nil {
		t.Fatalf("CreateApiKey(%s, %v): %v (reason %q)", name, scopes, err, keyport.ErrorReason(err))
	}
	return resp
}

func (k keysServer) authorize(t *testing.T, token string, permissions ...string) (*keyportv1.AuthorizeResponse, error) {
	return k.c.Authorization.Authorize(t.Context(), &keyportv1.AuthorizeRequest{Token: token, Permissions: permissions})
}

// allowed authorizes token for permissions and returns the answer, failing the test on an error.
func (k keysServer) allowed(t *testing.T, token string, permissions ...string) *keyportv1.AuthorizeResponse {
	t.Helper()
	resp, err := k.authorize(t, token, permissions...)
	if err != nil {
		t.Fatalf("Authorize(%v): %v (reason %q)", permissions, err, keyport.ErrorReason(err))
	}
	return resp
}

// listed returns the ids ListApiKeys answers on ctx (of a service account when given).
func (k keysServer) listed(t *testing.T, ctx context.Context, serviceAccountID string) []string {
	t.Helper()
	resp, err := k.c.APIKeys.ListApiKeys(ctx, &keyportv1.ListApiKeysRequest{ServiceAccountId: serviceAccountID})
	if err != nil {
		t.Fatalf("ListApiKeys: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	ids := []string{}
	for _, key := range resp.GetApiKeys() {
		ids = append(ids, key.GetId())
	}
	return ids
}

// violatedFields returns the fields of err's BadRequest violations.
func violatedFields(err error) []string {
	var fields []string
	for _, v := range keyport.FieldViolations(err) {
		fields = append(fields, v.GetField())
	}
	return fields
}

func TestAPIKeyShowsItsSecretOnce(t *testing.T) {
	k := startKeysServer(t)
	o := k.owner(t)
	resp := k.key(t, o.ctx, "deploy bot", "posts:read")
	key, secret := resp.GetApiKey(), resp.GetSecret()
	if !keyShape.MatchString(secret) || !strings.HasPrefix(secret, keyport.APIKeyPrefix+key.GetId()+".") {
		t.Errorf("secret %q is not kpa_<id>.<secret> of key %q", secret, key.GetId())
	}
	if !keyport.IsAPIKey(secret) || keyport.IsAPIKey(o.token) {
		t.Errorf("IsAPIKey: key %v, session %v", keyport.IsAPIKey(secret), keyport.IsAPIKey(o.token))
	}
	if key.GetName() != "deploy bot" || key.GetOwnerUserId() != o.id || key.GetServiceAccountId() != "" ||
		!slices.Equal(key.GetScopes(), []string{"posts:read"}) || key.GetLastUsedAt() != nil || key.GetRateLimitPerMinute() != 0 {
		t.Errorf("CreateApiKey answered %v", key)
	}
	if lifetime := key.GetExpiresAt().AsTime().Sub(key.GetCreatedAt().AsTime()); (lifetime - 90*24*time.Hour).Abs() > time.Minute {
		t.Errorf("lifetime %v, want api_keys.default_lifetime_days (90)", lifetime)
	}
	if d := time.Since(key.GetCreatedAt().AsTime()).Abs(); d > time.Minute {
		t.Errorf("created_at %v is not about now", key.GetCreatedAt().AsTime())
	}

	list, err := k.c.APIKeys.ListApiKeys(o.ctx, &keyportv1.ListApiKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetApiKeys()) != 1 || list.GetApiKeys()[0].GetId() != key.GetId() {
		t.Fatalf("ListApiKeys: %v, want the one key", list.GetApiKeys())
	}
	fields := (&keyportv1.ApiKey{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if strings.Contains(string(fields.Get(i).Name()), "secret") {
			t.Errorf("ApiKey has a field %s", fields.Get(i).Name())
		}
	}
	secretPart := []byte(secret[strings.IndexByte(secret, '.')+1:])
	wire, err := proto.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(wire, secretPart) {
		t.Error("the listing's bytes hold the secret")
	}
	// The server's data directory (its SQLite database and log) holds the
	// key's id, never its secret.
	files := 0
	err = filepath.WalkDir(k.srv.dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		content, err := os.ReadFile(path)
		if err == nil && bytes.Contains(content, secretPart) {
			t.Errorf("the secret is in %s", d.Name())
		}
		return err
	})
	if err != nil || files == 0 {
		t.Errorf("walking the data directory: %d files, %v", files, err)
	}

	if other := k.owner(t); len(k.listed(t, other.ctx, "")) != 0 {
		t.Error("another user lists the owner's key")
	}
}

func TestAPIKeyAuthorize(t *testing.T) {
	k := startKeysServer(t)
	o := k.owner(t)
	created := k.key(t, o.ctx, "ci", "posts:read")
	if bySession := k.allowed(t, o.token, "posts:read", "posts:write"); !bySession.GetAllowed() {
		t.Fatalf("the user's roles grant both: %v", decisions(bySession))
	}

	resp := k.allowed(t, created.GetSecret(), "posts:read", "posts:write", "users:read")
	if got, want := decisions(resp), []string{"posts:read=true", "posts:write=false", "users:read=false"}; !slices.Equal(got, want) || resp.GetAllowed() {
		t.Errorf("decisions %v (allowed %v), want %v", got, resp.GetAllowed(), want)
	}
	if got := resp.GetGranted(); !slices.Equal(got, []string{"posts:read"}) {
		t.Errorf("granted %v, want the scopes within the owner's roles", got)
	}
	if resp.GetApiKey().GetId() != created.GetApiKey().GetId() || !slices.Equal(resp.GetApiKey().GetScopes(), []string{"posts:read"}) {
		t.Errorf("api_key %v", resp.GetApiKey())
	}
	if resp.GetUser().GetId() != o.id || !slices.Equal(resp.GetUser().GetRoles(), []string{"user"}) {
		t.Errorf("user %v, want the owner", resp.GetUser())
	}
	if resp.GetSession() != nil || resp.GetServiceAccount() != nil {
		t.Errorf("a user's key has no session (%v) and no service account (%v)", resp.GetSession(), resp.GetServiceAccount())
	}
	if resp.GetCacheTtl() == nil {
		t.Error("no cache_ttl")
	}
	if !k.allowed(t, created.GetSecret(), "posts:read").GetAllowed() {
		t.Error("posts:read is in the key's scopes")
	}
	list, err := k.c.APIKeys.ListApiKeys(o.ctx, &keyportv1.ListApiKeysRequest{})
	if err != nil || list.GetApiKeys()[0].GetLastUsedAt() == nil {
		t.Errorf("the check is the key's first use: %v, %v", list.GetApiKeys(), err)
	}
	_, err = k.authorize(t, created.GetSecret(), "posts:delete")
	wantError(t, "a name outside the catalogue", err, codes.InvalidArgument, keyport.ReasonPermissionUnknown)
}

func TestAPIKeyNotAccepted(t *testing.T) {
	k := startKeysServer(t)
	o := k.owner(t)
	secret := k.key(t, o.ctx, "ci", "posts:read").GetSecret()
	byKey := keyport.WithToken(t.Context(), secret)
	for what, call := range map[string]func() error{
		"GetSession": func() error {
			_, err := k.c.Sessions.GetSession(t.Context(), &keyportv1.GetSessionRequest{Token: secret})
			return err
		},
		"ListSessions": func() error {
			_, err := k.c.Sessions.ListSessions(byKey, &keyportv1.ListSessionsRequest{})
			return err
		},
		"GetCurrentUser": func() error {
			_, err := k.c.Users.GetCurrentUser(byKey, &keyportv1.GetCurrentUserRequest{})
			return err
		},
		"CreateApiKey": func() error {
			_, err := k.c.APIKeys.CreateApiKey(byKey, &keyportv1.CreateApiKeyRequest{Name: "by key", Scopes: []string{"posts:read"}})
			return err
		},
		"ListApiKeys": func() error {
			_, err := k.c.APIKeys.ListApiKeys(byKey, &keyportv1.ListApiKeysRequest{})
			return err
		},
	} {
		wantError(t, what, call(), codes.Unauthenticated, keyport.ReasonAPIKeyNotAccepted)
	}
	if n := len(k.listed(t, o.ctx, "")); n != 1 {
		t.Errorf("%d keys, want the one: the key created none", n)
	}
}

func TestAPIKeyRevoke(t *testing.T) {
	k := startKeysServer(t)
	o := k.owner(t)
	kept := k.key(t, o.ctx, "kept", "posts:read")
	revoked := k.key(t, o.ctx, "revoked", "posts:read")
	k.allowed(t, revoked.GetSecret(), "posts:read") // cached before the revocation

	// Loopback is in the default server.trusted_proxies.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	stream, err := k.c.Sessions.WatchSessionEvents(ctx, &keyportv1.WatchSessionEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := stream.Recv(); err != nil || first.GetReady() == nil {
		t.Fatalf("first event %v, %v; want ready", first, err)
	}
	if _, err := k.c.APIKeys.RevokeApiKey(o.ctx, &keyportv1.RevokeApiKeyRequest{ApiKeyId: revoked.GetApiKey().GetId()}); err != nil {
		t.Fatalf("RevokeApiKey: %v", err)
	}
	for {
		event, err := stream.Recv()
		if err != nil {
			t.Fatalf("the stream ended before the revocation: %v", err)
		}
		if changed := event.GetApiKeysChanged(); changed != nil && changed.GetApiKeyId() == revoked.GetApiKey().GetId() {
			if changed.GetOwnerId() != o.id {
				t.Errorf("ApiKeysChanged owner %q, want %q", changed.GetOwnerId(), o.id)
			}
			break
		}
	}
	cancel()

	_, err = k.authorize(t, revoked.GetSecret(), "posts:read")
	wantError(t, "the revoked key", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
	k.allowed(t, kept.GetSecret(), "posts:read") // the owner's other key
	if got := k.listed(t, o.ctx, ""); !slices.Equal(got, []string{kept.GetApiKey().GetId()}) {
		t.Errorf("listed %v, want the kept key", got)
	}
	_, err = k.c.APIKeys.RevokeApiKey(o.ctx, &keyportv1.RevokeApiKeyRequest{ApiKeyId: revoked.GetApiKey().GetId()})
	wantError(t, "revoked twice", err, codes.NotFound, keyport.ReasonAPIKeyNotFound)
}

func TestAPIKeyRotate(t *testing.T) {
	k := startKeysServer(t)
	o := k.owner(t)
	rotate := func(id string, grace *durationpb.Duration) (*keyportv1.RotateApiKeyResponse, error) {
		return k.c.APIKeys.RotateApiKey(o.ctx, &keyportv1.RotateApiKeyRequest{ApiKeyId: id, Grace: grace})
	}
	first := k.key(t, o.ctx, "rotated", "posts:read")

	now, err := rotate(first.GetApiKey().GetId(), nil)
	if err != nil {
		t.Fatalf("RotateApiKey: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	if nk := now.GetApiKey(); !keyShape.MatchString(now.GetSecret()) || !strings.HasPrefix(now.GetSecret(), "kpa_"+nk.GetId()+".") ||
		nk.GetId() == first.GetApiKey().GetId() || now.GetReplaced().GetId() != first.GetApiKey().GetId() ||
		nk.GetName() != "rotated" || !slices.Equal(nk.GetScopes(), []string{"posts:read"}) || nk.GetOwnerUserId() != o.id {
		t.Errorf("RotateApiKey answered %v (replaced %v)", nk, now.GetReplaced())
	}
	_, err = k.authorize(t, first.GetSecret(), "posts:read")
	wantError(t, "the old key, no grace", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
	if got := k.allowed(t, now.GetSecret(), "posts:read").GetApiKey().GetId(); got != now.GetApiKey().GetId() {
		t.Errorf("the new key authorizes as %q", got)
	}

	graceful, err := rotate(now.GetApiKey().GetId(), durationpb.New(time.Hour))
	if err != nil {
		t.Fatalf("RotateApiKey(grace 1h): %v", err)
	}
	if graceful.GetReplaced().GetId() != now.GetApiKey().GetId() {
		t.Errorf("replaced %v", graceful.GetReplaced())
	}
	if left := time.Until(graceful.GetReplaced().GetExpiresAt().AsTime()); left < 58*time.Minute || left > 61*time.Minute {
		t.Errorf("the old key ends in %v, want with the grace (1h)", left)
	}
	if got := k.allowed(t, now.GetSecret(), "posts:read").GetApiKey().GetId(); got != now.GetApiKey().GetId() {
		t.Errorf("the old key, within its grace, authorizes as %q", got)
	}
	if got := k.allowed(t, graceful.GetSecret(), "posts:read").GetApiKey().GetId(); got != graceful.GetApiKey().GetId() {
		t.Errorf("the new key authorizes as %q", got)
	}
	if got, want := k.listed(t, o.ctx, ""), []string{graceful.GetApiKey().GetId(), now.GetApiKey().GetId()}; !slices.Equal(got, want) {
		t.Errorf("listed %v, want both, newest first: %v", got, want)
	}
	if by := graceful.GetReplaced().GetReplacedById(); by != graceful.GetApiKey().GetId() || graceful.GetApiKey().GetReplacedById() != "" {
		t.Errorf("replaced_by_id: the old key's %q, the new key's %q; want the new key's id, and none", by, graceful.GetApiKey().GetReplacedById())
	}
	// A key is rotated once: rotate its replacement.
	_, err = rotate(now.GetApiKey().GetId(), durationpb.New(time.Minute))
	wantError(t, "the old key rotated again", err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
	if got := violatedFields(err); !slices.Equal(got, []string{"api_key_id"}) {
		t.Errorf("violations %v, want api_key_id", got)
	}
	if got := k.allowed(t, now.GetSecret(), "posts:read").GetApiKey().GetId(); got != now.GetApiKey().GetId() {
		t.Errorf("the old key, still within its grace, authorizes as %q", got)
	}

	// A grace that runs out: the old key then answers API_KEY_EXPIRED.
	brief := k.key(t, o.ctx, "brief", "posts:read")
	next, err := rotate(brief.GetApiKey().GetId(), durationpb.New(time.Second))
	if err != nil {
		t.Fatalf("RotateApiKey(grace 1s): %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = k.authorize(t, brief.GetSecret(), "posts:read")
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	wantError(t, "the old key past its grace", err, codes.Unauthenticated, keyport.ReasonAPIKeyExpired)
	k.allowed(t, next.GetSecret(), "posts:read")

	_, err = rotate(graceful.GetApiKey().GetId(), durationpb.New(8*24*time.Hour))
	wantError(t, "a grace over 7 days", err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
	if got := violatedFields(err); !slices.Equal(got, []string{"grace"}) {
		t.Errorf("violations %v, want grace", got)
	}
	k.allowed(t, graceful.GetSecret(), "posts:read") // a refused rotation changes nothing
}

func TestAPIKeyNotFound(t *testing.T) {
	k := startKeysServer(t)
	o, other := k.owner(t), k.owner(t)
	created := k.key(t, o.ctx, "ci", "posts:read")
	for _, tc := range []struct {
		what, id string
		ctx      context.Context
	}{
		{"an unknown id", unknownKeyID, o.ctx},
		{"another user's key", created.GetApiKey().GetId(), other.ctx},
	} {
		_, err := k.c.APIKeys.RevokeApiKey(tc.ctx, &keyportv1.RevokeApiKeyRequest{ApiKeyId: tc.id})
		wantError(t, "revoke "+tc.what, err, codes.NotFound, keyport.ReasonAPIKeyNotFound)
		_, err = k.c.APIKeys.RotateApiKey(tc.ctx, &keyportv1.RotateApiKeyRequest{ApiKeyId: tc.id})
		wantError(t, "rotate "+tc.what, err, codes.NotFound, keyport.ReasonAPIKeyNotFound)
	}
	k.allowed(t, created.GetSecret(), "posts:read") // the other user's tries left it alone
	for _, malformed := range []string{"", "nope", created.GetSecret()} {
		_, err := k.c.APIKeys.RevokeApiKey(o.ctx, &keyportv1.RevokeApiKeyRequest{ApiKeyId: malformed})
		wantError(t, fmt.Sprintf("revoke %q", malformed), err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
		if got := violatedFields(err); !slices.Equal(got, []string{"api_key_id"}) {
			t.Errorf("revoke %q: violations %v, want api_key_id", malformed, got)
		}
	}
	_, err := k.c.APIKeys.RevokeApiKey(t.Context(), &keyportv1.RevokeApiKeyRequest{ApiKeyId: created.GetApiKey().GetId()})
	wantError(t, "no session", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
}

func TestAPIKeyBadInput(t *testing.T) {
	k := startKeysServer(t)
	o := k.owner(t)
	for _, tc := range []struct {
		what  string
		req   *keyportv1.CreateApiKeyRequest
		field string
	}{
		{"an empty name", &keyportv1.CreateApiKeyRequest{Scopes: []string{"posts:read"}}, "name"},
		{"a name over 64 characters", &keyportv1.CreateApiKeyRequest{Name: strings.Repeat("n", 65), Scopes: []string{"posts:read"}}, "name"},
		{"no scope", &keyportv1.CreateApiKeyRequest{Name: "x"}, "scopes"},
		{"33 scopes", &keyportv1.CreateApiKeyRequest{Name: "x", Scopes: slices.Repeat([]string{"posts:read"}, 33)}, "scopes"},
		{"a scope the owner's roles lack", &keyportv1.CreateApiKeyRequest{Name: "x", Scopes: []string{"users:read"}}, "scopes"},
		{"a lifetime under a minute", &keyportv1.CreateApiKeyRequest{Name: "x", Scopes: []string{"posts:read"}, ExpiresIn: durationpb.New(30 * time.Second)}, "expires_in"},
	} {
		_, err := k.c.APIKeys.CreateApiKey(o.ctx, tc.req)
		wantError(t, tc.what, err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
		if got := violatedFields(err); !slices.Equal(got, []string{tc.field}) {
			t.Errorf("%s: violations %v, want %s", tc.what, got, tc.field)
		}
	}
	for _, scope := range []string{"posts:delete", "Posts:read", "posts"} {
		_, err := k.c.APIKeys.CreateApiKey(o.ctx, &keyportv1.CreateApiKeyRequest{Name: "x", Scopes: []string{scope}})
		wantError(t, scope, err, codes.InvalidArgument, keyport.ReasonPermissionUnknown)
	}
	if got := k.listed(t, o.ctx, ""); len(got) != 0 {
		t.Errorf("refused calls made keys %v", got)
	}
	_, err := k.c.APIKeys.CreateApiKey(t.Context(), &keyportv1.CreateApiKeyRequest{Name: "x", Scopes: []string{"posts:read"}})
	wantError(t, "no session", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
}

func TestServiceAccountKeys(t *testing.T) {
	k := startKeysServer(t)
	a := k.admin
	name := fmt.Sprintf("ci-%d.bot", time.Now().UnixNano())
	created, err := k.c.Admin.CreateServiceAccount(a.ctx, &keyportv1.CreateServiceAccountRequest{
		Name: name, Description: "The CI pipeline", Roles: []string{"auditor"},
	})
	if err != nil {
		t.Fatalf("CreateServiceAccount: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	account := created.GetServiceAccount()
	if !uuidV7.MatchString(account.GetId()) || account.GetName() != name || account.GetDescription() != "The CI pipeline" ||
		!slices.Equal(account.GetRoles(), []string{"auditor"}) {
		t.Errorf("CreateServiceAccount answered %v", account)
	}
	accounts, err := k.c.Admin.ListServiceAccounts(a.ctx, &keyportv1.ListServiceAccountsRequest{})
	if err != nil || !slices.ContainsFunc(accounts.GetServiceAccounts(), func(s *keyportv1.ServiceAccount) bool { return s.GetId() == account.GetId() }) {
		t.Errorf("ListServiceAccounts: %v, %v", accounts.GetServiceAccounts(), err)
	}

	saID := account.GetId()
	keyResp, err := k.c.APIKeys.CreateApiKey(a.ctx, &keyportv1.CreateApiKeyRequest{
		Name: "deploy", Scopes: []string{"users:read", "posts:read"}, ServiceAccountId: saID,
	})
	if err != nil {
		t.Fatalf("CreateApiKey for the service account: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	key, secret := keyResp.GetApiKey(), keyResp.GetSecret()
	if !keyShape.MatchString(secret) || key.GetServiceAccountId() != saID || key.GetOwnerUserId() != "" ||
		!slices.Equal(key.GetScopes(), []string{"posts:read", "users:read"}) {
		t.Errorf("the service account's key: %v", key)
	}
	if got := k.listed(t, a.ctx, saID); !slices.Equal(got, []string{key.GetId()}) {
		t.Errorf("ListApiKeys(service account) %v", got)
	}

	resp := k.allowed(t, secret, "users:read", "posts:read", "posts:write")
	if got, want := decisions(resp), []string{"users:read=true", "posts:read=true", "posts:write=false"}; !slices.Equal(got, want) {
		t.Errorf("decisions %v, want %v", got, want)
	}
	if resp.GetServiceAccount().GetId() != saID || resp.GetApiKey().GetId() != key.GetId() || resp.GetUser() != nil || resp.GetSession() != nil {
		t.Errorf("Authorize answered service account %v, key %v, user %v, session %v",
			resp.GetServiceAccount(), resp.GetApiKey(), resp.GetUser(), resp.GetSession())
	}

	// The key is the bearer of AdminService calls its scopes allow.
	byKey := keyport.WithToken(t.Context(), secret)
	users, err := collect(keyport.ListAllUsers(byKey, k.c.Admin, &keyportv1.ListUsersRequest{PageSize: 200}))
	if err != nil || !slices.Contains(idsOf(users), a.id) {
		t.Errorf("ListAllUsers by the key: %d users, %v (reason %q)", len(users), err, keyport.ErrorReason(err))
	}
	_, err = k.c.Admin.CreateUser(byKey, &keyportv1.CreateUserRequest{Email: uniqueEmail()})
	wantError(t, "CreateUser by the key (needs users:write)", err, codes.PermissionDenied, keyport.ReasonPermissionDenied)

	_, err = k.c.APIKeys.CreateApiKey(a.ctx, &keyportv1.CreateApiKeyRequest{Name: "x", Scopes: []string{"users:write"}, ServiceAccountId: saID})
	wantError(t, "a scope the service account's roles lack", err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
	u := k.owner(t)
	_, err = k.c.APIKeys.CreateApiKey(u.ctx, &keyportv1.CreateApiKeyRequest{Name: "x", Scopes: []string{"posts:read"}, ServiceAccountId: saID})
	wantError(t, "a plain user's key for the service account", err, codes.PermissionDenied, keyport.ReasonPermissionDenied)
	_, err = k.c.Admin.CreateServiceAccount(u.ctx, &keyportv1.CreateServiceAccountRequest{Name: name + "-2"})
	wantError(t, "a plain user's service account", err, codes.PermissionDenied, keyport.ReasonPermissionDenied)
	_, err = k.c.Admin.CreateServiceAccount(a.ctx, &keyportv1.CreateServiceAccountRequest{Name: "CI Bot", Roles: []string{"auditor"}})
	wantError(t, "a name outside a-z 0-9 _ - .", err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
	if got := violatedFields(err); !slices.Equal(got, []string{"name"}) {
		t.Errorf("violations %v, want name", got)
	}
	_, err = k.c.Admin.CreateServiceAccount(a.ctx, &keyportv1.CreateServiceAccountRequest{Name: name, Roles: []string{"auditor"}})
	wantError(t, "a taken name", err, codes.InvalidArgument, keyport.ReasonInvalidArgument)

	// A narrower role narrows the key at once: it never outgrows its owner.
	narrowed, err := k.c.Admin.SetServiceAccountRoles(a.ctx, &keyportv1.SetServiceAccountRolesRequest{ServiceAccountId: saID, Roles: []string{"user"}})
	if err != nil || !slices.Equal(narrowed.GetServiceAccount().GetRoles(), []string{"user"}) {
		t.Fatalf("SetServiceAccountRoles: %v, %v", narrowed.GetServiceAccount(), err)
	}
	if got, want := decisions(k.allowed(t, secret, "users:read", "posts:read")), []string{"users:read=false", "posts:read=true"}; !slices.Equal(got, want) {
		t.Errorf("after the new roles: decisions %v, want %v", got, want)
	}
	_, err = k.c.Admin.ListUsers(byKey, &keyportv1.ListUsersRequest{})
	wantError(t, "ListUsers without users:read", err, codes.PermissionDenied, keyport.ReasonPermissionDenied)

	deleted, err := k.c.Admin.DeleteServiceAccount(a.ctx, &keyportv1.DeleteServiceAccountRequest{ServiceAccountId: saID})
	if err != nil || deleted.GetApiKeysRevoked() != 1 {
		t.Fatalf("DeleteServiceAccount: revoked %d, %v", deleted.GetApiKeysRevoked(), err)
	}
	_, err = k.authorize(t, secret, "posts:read")
	wantError(t, "the deleted account's key", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
	_, err = k.c.Admin.ListUsers(byKey, &keyportv1.ListUsersRequest{})
	wantError(t, "the deleted account's key as the bearer", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
	for what, call := range map[string]func() error{
		"DeleteServiceAccount again": func() error {
			_, err := k.c.Admin.DeleteServiceAccount(a.ctx, &keyportv1.DeleteServiceAccountRequest{ServiceAccountId: saID})
			return err
		},
		"ListApiKeys": func() error {
			_, err := k.c.APIKeys.ListApiKeys(a.ctx, &keyportv1.ListApiKeysRequest{ServiceAccountId: saID})
			return err
		},
		"CreateApiKey": func() error {
			_, err := k.c.APIKeys.CreateApiKey(a.ctx, &keyportv1.CreateApiKeyRequest{Name: "x", Scopes: []string{"posts:read"}, ServiceAccountId: saID})
			return err
		},
		"SetServiceAccountRoles of an unknown id": func() error {
			_, err := k.c.Admin.SetServiceAccountRoles(a.ctx, &keyportv1.SetServiceAccountRolesRequest{ServiceAccountId: unknownAccountID})
			return err
		},
	} {
		wantError(t, what, call(), codes.NotFound, keyport.ReasonServiceAccountNotFound)
	}
	accounts, err = k.c.Admin.ListServiceAccounts(a.ctx, &keyportv1.ListServiceAccountsRequest{})
	if err != nil || slices.ContainsFunc(accounts.GetServiceAccounts(), func(s *keyportv1.ServiceAccount) bool { return s.GetId() == saID }) {
		t.Errorf("ListServiceAccounts after the deletion: %v, %v", accounts.GetServiceAccounts(), err)
	}
}

// Eight concurrent checks with one key agree; a revocation racing eight
// more leaves each of them either answered as before or refused, and every
// check afterwards refused.
func TestAPIKeyInParallel(t *testing.T) {
	k := startKeysServer(t)
	o := k.owner(t)
	created := k.key(t, o.ctx, "ci", "posts:read")
	permissions := []string{"posts:write", "posts:read", "users:read"}
	want := []string{"posts:write=false", "posts:read=true", "users:read=false"}
	checks := func(n int, also ...func() error) ([]*keyportv1.AuthorizeResponse, []error) {
		resps := make([]*keyportv1.AuthorizeResponse, n)
		errs := make([]error, n+len(also))
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { resps[i], errs[i] = k.authorize(t, created.GetSecret(), permissions...) })
		}
		for i, call := range also {
			wg.Go(func() { errs[n+i] = call() })
		}
		wg.Wait()
		return resps, errs
	}

	resps, errs := checks(8)
	for i, resp := range resps {
		if errs[i] != nil {
			t.Errorf("check %d: %v (reason %q)", i, errs[i], keyport.ErrorReason(errs[i]))
		} else if got := decisions(resp); !slices.Equal(got, want) || resp.GetApiKey().GetId() != created.GetApiKey().GetId() || resp.GetUser().GetId() != o.id {
			t.Errorf("check %d: decisions %v, key %q, user %q", i, got, resp.GetApiKey().GetId(), resp.GetUser().GetId())
		}
	}

	resps, errs = checks(8, func() error {
		_, err := k.c.APIKeys.RevokeApiKey(o.ctx, &keyportv1.RevokeApiKeyRequest{ApiKeyId: created.GetApiKey().GetId()})
		return err
	})
	if err := errs[8]; err != nil {
		t.Fatalf("the racing revocation: %v", err)
	}
	for i, resp := range resps {
		if errs[i] != nil {
			wantError(t, fmt.Sprintf("racing check %d", i), errs[i], codes.Unauthenticated, keyport.ReasonUnauthenticated)
		} else if got := decisions(resp); !slices.Equal(got, want) {
			t.Errorf("racing check %d before the revocation: decisions %v", i, got)
		}
	}

	_, errs = checks(8)
	for i, err := range errs {
		wantError(t, fmt.Sprintf("check %d after the revocation", i), err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
	}
}
