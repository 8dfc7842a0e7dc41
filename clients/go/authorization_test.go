package keyport_test

import (
	"slices"
	"strings"
	"sync"
	"testing"

	keyport "github.com/keyport/keyport/clients/go"
	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
	"google.golang.org/grpc/codes"
)

// The live server's catalogue is posts:read and posts:write; user grants
// posts:read and admin everything (authorizationEnv).

// decisions flattens an Authorize answer's decisions to "permission=allowed".
func decisions(resp *keyportv1.AuthorizeResponse) []string {
	var out []string
	for _, d := range resp.GetDecisions() {
		if d.GetAllowed() {
			out = append(out, d.GetPermission()+"=true")
		} else {
			out = append(out, d.GetPermission()+"=false")
		}
	}
	return out
}

func TestAuthorize(t *testing.T) {
	c := newClient(t)
	email, up := signUp(t, c)
	token := up.GetSession().GetToken()

	resp, err := c.Authorization.Authorize(t.Context(), &keyportv1.AuthorizeRequest{Token: token, Permissions: []string{"posts:read", "posts:write"}})
	if err != nil {
		t.Fatalf("Authorize: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	if resp.GetAllowed() {
		t.Error("allowed, but user does not grant posts:write")
	}
	if got, want := decisions(resp), []string{"posts:read=true", "posts:write=false"}; !slices.Equal(got, want) {
		t.Errorf("decisions %v, want %v", got, want)
	}
	if got := resp.GetGranted(); !slices.Equal(got, []string{"posts:read"}) {
		t.Errorf("granted %v, want [posts:read]", got)
	}
	if got := resp.GetUser().GetRoles(); !slices.Equal(got, []string{"user"}) {
		t.Errorf("user roles %v, want [user]", got)
	}
	if got := resp.GetUser().GetEmail(); got != email {
		t.Errorf("user %q, want %q", got, email)
	}
	checkSession(t, "Authorize", resp.GetSession(), up.GetUser().GetId())
	if resp.GetSession().GetId() != up.GetSession().GetSession().GetId() {
		t.Errorf("session %q, want the sign-up's %q", resp.GetSession().GetId(), up.GetSession().GetSession().GetId())
	}
	if ttl := resp.GetCacheTtl(); ttl == nil || ttl.AsDuration() <= 0 {
		t.Errorf("cache_ttl %v, want a positive duration", ttl)
	}

	read, err := c.Authorization.Authorize(t.Context(), &keyportv1.AuthorizeRequest{Token: token, Permissions: []string{"posts:read"}})
	if err != nil || !read.GetAllowed() {
		t.Errorf("Authorize(posts:read): allowed %v, err %v", read.GetAllowed(), err)
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	c := newClient(t)
	_, up := signUp(t, c)
	token := up.GetSession().GetToken()
	authorize := func(req *keyportv1.AuthorizeRequest) error {
		_, err := c.Authorization.Authorize(t.Context(), req)
		return err
	}

	for _, name := range []string{"posts:delete", "Posts", "posts", "posts:", ":read"} {
		err := authorize(&keyportv1.AuthorizeRequest{Token: token, Permissions: []string{"posts:read", name}})
		wantError(t, "Authorize("+name+")", err, codes.InvalidArgument, keyport.ReasonPermissionUnknown)
	}
	err := authorize(&keyportv1.AuthorizeRequest{Permissions: []string{"posts:delete"}})
	wantError(t, "an unknown name without a token (checked first)", err, codes.InvalidArgument, keyport.ReasonPermissionUnknown)

	many := func(n int) []string { return slices.Repeat([]string{"posts:read"}, n) }
	for what, req := range map[string]*keyportv1.AuthorizeRequest{
		"no permission":               {Token: token},
		"33 permissions":              {Token: token, Permissions: many(33)},
		"a malformed organization id": {Token: token, Permissions: []string{"posts:read"}, OrganizationId: "org_1"},
	} {
		wantError(t, what, authorize(req), codes.InvalidArgument, keyport.ReasonInvalidArgument)
	}
	if resp, err := c.Authorization.Authorize(t.Context(), &keyportv1.AuthorizeRequest{Token: token, Permissions: many(32)}); err != nil || len(resp.GetDecisions()) != 32 {
		t.Errorf("32 permissions: %d decisions, err %v", len(resp.GetDecisions()), err)
	}

	for _, bad := range []string{"", "not a token", "kp_" + strings.Repeat("A", 22) + "." + strings.Repeat("A", 43)} {
		err := authorize(&keyportv1.AuthorizeRequest{Token: bad, Permissions: []string{"posts:read"}})
		wantError(t, "token "+bad, err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
	}

	if _, err := c.Sessions.SignOut(keyport.WithToken(t.Context(), token), &keyportv1.SignOutRequest{}); err != nil {
		t.Fatalf("SignOut: %v", err)
	}
	err = authorize(&keyportv1.AuthorizeRequest{Token: token, Permissions: []string{"posts:read"}})
	wantError(t, "Authorize after SignOut", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
}

// Eight concurrent Authorize calls with one token (each may refresh the
// session) answer the same decisions.
func TestAuthorizeInParallel(t *testing.T) {
	c := newClient(t)
	_, up := signUp(t, c)
	req := &keyportv1.AuthorizeRequest{Token: up.GetSession().GetToken(), Permissions: []string{"posts:write", "posts:read", "users:read"}}
	want := []string{"posts:write=false", "posts:read=true", "users:read=false"}

	var wg sync.WaitGroup
	resps := make([]*keyportv1.AuthorizeResponse, 8)
	errs := make([]error, 8)
	for i := range resps {
		wg.Go(func() { resps[i], errs[i] = c.Authorization.Authorize(t.Context(), req) })
	}
	wg.Wait()
	for i, resp := range resps {
		if errs[i] != nil {
			t.Errorf("call %d: %v (reason %q)", i, errs[i], keyport.ErrorReason(errs[i]))
			continue
		}
		if got := decisions(resp); !slices.Equal(got, want) || resp.GetAllowed() {
			t.Errorf("call %d: decisions %v (allowed %v), want %v", i, got, resp.GetAllowed(), want)
		}
		if resp.GetSession().GetId() != up.GetSession().GetSession().GetId() {
			t.Errorf("call %d: session %q", i, resp.GetSession().GetId())
		}
	}
}
