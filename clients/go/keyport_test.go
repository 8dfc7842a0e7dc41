package keyport_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	keyport "github.com/keyport/keyport/clients/go"
	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

const password = "correct horse battery staple"

var (
	uuidV7     = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	emailSeq   atomic.Int64
	tokenShape = regexp.MustCompile(`^kp_[^.\s]+\.[^.\s]+$`)
)

// newClient dials the live server in plaintext; the client is closed when
// the test ends.
func newClient(t *testing.T, opts ...keyport.Option) *keyport.Client {
	t.Helper()
	addr := liveServer(t)
	c, err := keyport.Dial(addr, append([]keyport.Option{keyport.WithInsecure()}, opts...)...)
	if err != nil {
		t.Fatalf("Dial(%q): %v", addr, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// uniqueEmail returns an address no other test uses.
func uniqueEmail() string {
	return fmt.Sprintf("go-sdk-%d-%d@example.com", time.Now().UnixNano(), emailSeq.Add(1))
}

// signUp creates a fresh account and returns its email and the response.
func signUp(t *testing.T, c *keyport.Client) (string, *keyportv1.SignUpResponse) {
	t.Helper()
	email := uniqueEmail()
	resp, err := c.Users.SignUp(t.Context(), &keyportv1.SignUpRequest{Email: email, Password: password, Name: "Go SDK"})
	if err != nil {
		t.Fatalf("SignUp(%s): %v (reason %q)", email, err, keyport.ErrorReason(err))
	}
	return email, resp
}

// signIn signs email in with the test password and returns the grant.
func signIn(t *testing.T, c *keyport.Client, email string) *keyportv1.SessionGrant {
	t.Helper()
	resp, err := c.Sessions.SignIn(t.Context(), &keyportv1.SignInRequest{Email: email, Password: password})
	if err != nil {
		t.Fatalf("SignIn(%s): %v (reason %q)", email, err, keyport.ErrorReason(err))
	}
	grant := resp.GetSession()
	if grant == nil {
		t.Fatalf("SignIn(%s): outcome is %T, want a session", email, resp.GetOutcome())
	}
	return grant
}

// wantError checks that err is a gRPC error with the given code and
// Keyport reason in an ErrorInfo of domain keyport.dev.
func wantError(t *testing.T, what string, err error, code codes.Code, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want %v / %s", what, code, reason)
	}
	if got := status.Code(err); got != code {
		t.Errorf("%s: code %v, want %v (err: %v)", what, got, code, err)
	}
	if got := keyport.ErrorReason(err); got != reason {
		t.Errorf("%s: ErrorReason %q, want %q (err: %v)", what, got, reason, err)
	}
	if info := keyport.ErrorInfo(err); info != nil && info.GetDomain() != keyport.ErrorDomain {
		t.Errorf("%s: ErrorInfo domain %q, want %q", what, info.GetDomain(), keyport.ErrorDomain)
	}
	if sentinel := sentinels[reason]; sentinel != nil && !errors.Is(err, sentinel) {
		t.Errorf("%s: errors.Is(err, sentinel of %s) is false (err: %#v)", what, reason, err)
	}
}

func checkSession(t *testing.T, what string, s *keyportv1.Session, userID string) {
	t.Helper()
	if s == nil {
		t.Fatalf("%s: no session", what)
	}
	if s.GetId() == "" {
		t.Errorf("%s: empty session id", what)
	}
	if s.GetUserId() != userID {
		t.Errorf("%s: session user_id %q, want %q", what, s.GetUserId(), userID)
	}
	created := s.GetCreatedAt().AsTime()
	if d := time.Since(created); d < -time.Minute || d > time.Minute {
		t.Errorf("%s: created_at %v is not about now", what, created)
	}
	expires := s.GetExpiresAt().AsTime()
	if !expires.After(created.Add(time.Hour)) {
		t.Errorf("%s: expires_at %v is not well after created_at %v", what, expires, created)
	}
	if abs := s.GetAbsoluteExpiresAt().AsTime(); abs.Before(expires) {
		t.Errorf("%s: absolute_expires_at %v is before expires_at %v", what, abs, expires)
	}
}

func TestSignUp(t *testing.T) {
	c := newClient(t)
	email := uniqueEmail()
	// Upper-case domain and surrounding spaces: Keyport normalises both.
	input := "  " + strings.Replace(email, "@example.com", "@EXAMPLE.com", 1) + " "
	resp, err := c.Users.SignUp(t.Context(), &keyportv1.SignUpRequest{Email: input, Password: password, Name: "Ada Lovelace"})
	if err != nil {
		t.Fatalf("SignUp: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	u := resp.GetUser()
	if !uuidV7.MatchString(u.GetId()) {
		t.Errorf("user id %q is not a canonical UUIDv7", u.GetId())
	}
	if u.GetEmail() != email {
		t.Errorf("email %q, want normalised %q", u.GetEmail(), email)
	}
	if u.GetName() != "Ada Lovelace" {
		t.Errorf("name %q, want %q", u.GetName(), "Ada Lovelace")
	}
	if u.GetEmailVerified() {
		t.Errorf("email_verified is true for a new account")
	}
	if !slices.Contains(u.GetRoles(), "user") || !slices.IsSorted(u.GetRoles()) {
		t.Errorf("roles %v, want a sorted list containing \"user\"", u.GetRoles())
	}
	if d := time.Since(u.GetCreatedAt().AsTime()); d < -time.Minute || d > time.Minute {
		t.Errorf("created_at %v is not about now", u.GetCreatedAt().AsTime())
	}

	grant := resp.GetSession()
	if !tokenShape.MatchString(grant.GetToken()) {
		t.Errorf("token %q does not look like kp_<id>.<secret>", grant.GetToken())
	}
	checkSession(t, "SignUp", grant.GetSession(), u.GetId())
	if grant.GetUser().GetId() != u.GetId() {
		t.Errorf("grant user %q, want %q", grant.GetUser().GetId(), u.GetId())
	}

	// The token works right away.
	me, err := c.Users.GetCurrentUser(keyport.WithToken(t.Context(), grant.GetToken()), &keyportv1.GetCurrentUserRequest{})
	if err != nil {
		t.Fatalf("GetCurrentUser with the sign-up token: %v", err)
	}
	if me.GetUser().GetId() != u.GetId() || me.GetUser().GetEmail() != email {
		t.Errorf("GetCurrentUser = %s <%s>, want %s <%s>", me.GetUser().GetId(), me.GetUser().GetEmail(), u.GetId(), email)
	}
}

func TestSignUpErrors(t *testing.T) {
	c := newClient(t)
	email, _ := signUp(t, c)

	_, err := c.Users.SignUp(t.Context(), &keyportv1.SignUpRequest{Email: email, Password: password})
	wantError(t, "SignUp with a taken email", err, codes.AlreadyExists, keyport.ReasonEmailTaken)

	_, err = c.Users.SignUp(t.Context(), &keyportv1.SignUpRequest{Email: uniqueEmail(), Password: "short"})
	wantError(t, "SignUp with a 5-character password", err, codes.InvalidArgument, keyport.ReasonWeakPassword)

	_, err = c.Users.SignUp(t.Context(), &keyportv1.SignUpRequest{Email: "not an email", Password: password})
	wantError(t, "SignUp with a malformed email", err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
	if fv := keyport.FieldViolations(err); !slices.ContainsFunc(fv, func(v *errdetails.BadRequest_FieldViolation) bool { return v.GetField() == "email" }) {
		t.Errorf("malformed email: field violations %v, want one for \"email\"", fv)
	}
}

func TestSignInAndGetSession(t *testing.T) {
	c := newClient(t)
	email, up := signUp(t, c)
	userID := up.GetUser().GetId()

	// Email matching is after normalisation.
	resp, err := c.Sessions.SignIn(t.Context(), &keyportv1.SignInRequest{Email: strings.Replace(email, "example.com", "Example.COM", 1), Password: password})
	if err != nil {
		t.Fatalf("SignIn: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	grant := resp.GetSession()
	if grant == nil {
		t.Fatalf("SignIn outcome %T, want a session", resp.GetOutcome())
	}
	checkSession(t, "SignIn", grant.GetSession(), userID)
	if grant.GetUser().GetId() != userID || grant.GetUser().GetEmail() != email {
		t.Errorf("SignIn user %s <%s>, want %s <%s>", grant.GetUser().GetId(), grant.GetUser().GetEmail(), userID, email)
	}
	if grant.GetToken() == up.GetSession().GetToken() || grant.GetSession().GetId() == up.GetSession().GetSession().GetId() {
		t.Errorf("SignIn reused the sign-up session (%s)", grant.GetSession().GetId())
	}

	got, err := c.Sessions.GetSession(t.Context(), &keyportv1.GetSessionRequest{Token: grant.GetToken()})
	if err != nil {
		t.Fatalf("GetSession: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	if got.GetSession().GetId() != grant.GetSession().GetId() {
		t.Errorf("GetSession session %q, want %q", got.GetSession().GetId(), grant.GetSession().GetId())
	}
	checkSession(t, "GetSession", got.GetSession(), userID)
	if got.GetUser().GetId() != userID || got.GetUser().GetEmail() != email {
		t.Errorf("GetSession user %s <%s>, want %s <%s>", got.GetUser().GetId(), got.GetUser().GetEmail(), userID, email)
	}
	if got.GetRefreshed() {
		t.Errorf("GetSession right after sign-in says refreshed; the refresh interval has not passed")
	}
	if !got.GetSession().GetExpiresAt().AsTime().Equal(grant.GetSession().GetExpiresAt().AsTime()) {
		t.Errorf("GetSession moved expires_at from %v to %v without refreshing",
			grant.GetSession().GetExpiresAt().AsTime(), got.GetSession().GetExpiresAt().AsTime())
	}
}

func TestListSessions(t *testing.T) {
	c := newClient(t)
	email, up := signUp(t, c)
	first := up.GetSession()
	second := signIn(t, c, email)

	resp, err := c.Sessions.ListSessions(keyport.WithToken(t.Context(), second.GetToken()), &keyportv1.ListSessionsRequest{})
	if err != nil {
		t.Fatalf("ListSessions: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	ss := resp.GetSessions()
	if len(ss) != 2 {
		t.Fatalf("ListSessions returned %d sessions, want 2: %v", len(ss), ss)
	}
	// Newest first: the sign-in session, which is also the calling one.
	if ss[0].GetId() != second.GetSession().GetId() || ss[1].GetId() != first.GetSession().GetId() {
		t.Errorf("ListSessions order [%s %s], want [%s %s] (newest first)",
			ss[0].GetId(), ss[1].GetId(), second.GetSession().GetId(), first.GetSession().GetId())
	}
	if !ss[0].GetCurrent() || ss[1].GetCurrent() {
		t.Errorf("current flags [%v %v], want [true false]", ss[0].GetCurrent(), ss[1].GetCurrent())
	}
	for _, s := range ss {
		checkSession(t, "ListSessions", s, up.GetUser().GetId())
	}

	// Another user sees only their own sessions.
	_, other := signUp(t, c)
	resp, err = c.Sessions.ListSessions(keyport.WithToken(t.Context(), other.GetSession().GetToken()), &keyportv1.ListSessionsRequest{})
	if err != nil {
		t.Fatalf("ListSessions as another user: %v", err)
	}
	if len(resp.GetSessions()) != 1 || resp.GetSessions()[0].GetId() != other.GetSession().GetSession().GetId() {
		t.Errorf("another user's ListSessions = %v, want only their own session", resp.GetSessions())
	}
}

func TestRevokeSession(t *testing.T) {
	c := newClient(t)
	email, up := signUp(t, c)
	victim := up.GetSession()
	caller := signIn(t, c, email)
	ctx := keyport.WithToken(t.Context(), caller.GetToken())

	if _, err := c.Sessions.RevokeSession(ctx, &keyportv1.RevokeSessionRequest{SessionId: victim.GetSession().GetId()}); err != nil {
		t.Fatalf("RevokeSession: %v (reason %q)", err, keyport.ErrorReason(err))
	}

	_, err := c.Sessions.GetSession(t.Context(), &keyportv1.GetSessionRequest{Token: victim.GetToken()})
	wantError(t, "GetSession with a revoked token", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
	_, err = c.Users.GetCurrentUser(keyport.WithToken(t.Context(), victim.GetToken()), &keyportv1.GetCurrentUserRequest{})
	wantError(t, "GetCurrentUser with a revoked token", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)

	resp, err := c.Sessions.ListSessions(ctx, &keyportv1.ListSessionsRequest{})
	if err != nil {
		t.Fatalf("ListSessions after revoking: %v", err)
	}
	if len(resp.GetSessions()) != 1 || resp.GetSessions()[0].GetId() != caller.GetSession().GetId() {
		t.Errorf("ListSessions after revoking = %v, want only the calling session", resp.GetSessions())
	}

	// Revoking it again, or another user's session, is SESSION_NOT_FOUND.
	_, err = c.Sessions.RevokeSession(ctx, &keyportv1.RevokeSessionRequest{SessionId: victim.GetSession().GetId()})
	wantError(t, "RevokeSession of an already revoked session", err, codes.NotFound, keyport.ReasonSessionNotFound)
	_, stranger := signUp(t, c)
	_, err = c.Sessions.RevokeSession(ctx, &keyportv1.RevokeSessionRequest{SessionId: stranger.GetSession().GetSession().GetId()})
	wantError(t, "RevokeSession of another user's session", err, codes.NotFound, keyport.ReasonSessionNotFound)
	if _, err := c.Sessions.GetSession(t.Context(), &keyportv1.GetSessionRequest{Token: stranger.GetSession().GetToken()}); err != nil {
		t.Errorf("the other user's session died after a refused RevokeSession: %v", err)
	}
}

func TestSignOut(t *testing.T) {
	c := newClient(t)
	email, up := signUp(t, c)
	grant := signIn(t, c, email)
	ctx := keyport.WithToken(t.Context(), grant.GetToken())

	if _, err := c.Sessions.SignOut(ctx, &keyportv1.SignOutRequest{}); err != nil {
		t.Fatalf("SignOut: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	_, err := c.Users.GetCurrentUser(ctx, &keyportv1.GetCurrentUserRequest{})
	wantError(t, "GetCurrentUser after SignOut", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
	_, err = c.Sessions.GetSession(t.Context(), &keyportv1.GetSessionRequest{Token: grant.GetToken()})
	wantError(t, "GetSession after SignOut", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
	_, err = c.Sessions.SignOut(ctx, &keyportv1.SignOutRequest{})
	wantError(t, "SignOut twice", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)

	// The user's other session is untouched.
	if _, err := c.Sessions.GetSession(t.Context(), &keyportv1.GetSessionRequest{Token: up.GetSession().GetToken()}); err != nil {
		t.Errorf("SignOut ended the user's other session too: %v", err)
	}
}

func TestMailDisabled(t *testing.T) {
	c := newClient(t)

	_, err := c.Users.RequestPasswordReset(t.Context(), &keyportv1.RequestPasswordResetRequest{Email: uniqueEmail()})
	wantError(t, "RequestPasswordReset without mail", err, codes.FailedPrecondition, keyport.ReasonMailDisabled)

	_, err = c.Users.VerifyEmail(t.Context(), &keyportv1.VerifyEmailRequest{Token: "kpm_not-a-token"})
	wantError(t, "VerifyEmail with a malformed token", err, codes.InvalidArgument, keyport.ReasonEmailTokenInvalid)

	// Every other call that would send mail says so too.
	_, up := signUp(t, c)
	authed := keyport.WithToken(t.Context(), up.GetSession().GetToken())
	_, err = c.Users.RequestEmailVerification(authed, &keyportv1.RequestEmailVerificationRequest{})
	wantError(t, "RequestEmailVerification without mail", err, codes.FailedPrecondition, keyport.ReasonMailDisabled)
	_, err = c.Sessions.StartEmailSignIn(t.Context(), &keyportv1.StartEmailSignInRequest{Email: uniqueEmail()})
	wantError(t, "StartEmailSignIn without mail", err, codes.FailedPrecondition, keyport.ReasonMailDisabled)
	_, err = c.Users.RequestEmailChange(authed, &keyportv1.RequestEmailChangeRequest{NewEmail: uniqueEmail(), Password: password})
	wantError(t, "RequestEmailChange without mail", err, codes.FailedPrecondition, keyport.ReasonMailDisabled)
	_, err = c.Users.RequestPasswordSetup(authed, &keyportv1.RequestPasswordSetupRequest{})
	wantError(t, "RequestPasswordSetup without mail", err, codes.FailedPrecondition, keyport.ReasonMailDisabled)
}

func TestWrongPassword(t *testing.T) {
	c := newClient(t)
	email, _ := signUp(t, c)

	_, err := c.Sessions.SignIn(t.Context(), &keyportv1.SignInRequest{Email: email, Password: password + "!"})
	wantError(t, "SignIn with a wrong password", err, codes.Unauthenticated, keyport.ReasonInvalidCredentials)

	// An unknown email gets the very same answer.
	_, err2 := c.Sessions.SignIn(t.Context(), &keyportv1.SignInRequest{Email: uniqueEmail(), Password: password})
	wantError(t, "SignIn with an unknown email", err2, codes.Unauthenticated, keyport.ReasonInvalidCredentials)
	if err != nil && err2 != nil && status.Convert(err).Message() != status.Convert(err2).Message() {
		t.Errorf("wrong password and unknown email differ: %q vs %q", status.Convert(err).Message(), status.Convert(err2).Message())
	}
}

func TestMalformedToken(t *testing.T) {
	c := newClient(t)
	_, up := signUp(t, c)
	good := up.GetSession().GetToken()

	for _, token := range []string{
		"not-a-token",
		"kp_",
		"kp_.",
		// Right id, wrong secret.
		good + "x",
		// Right id, short secret.
		good[:strings.LastIndexByte(good, '.')] + ".AA",
		// Unknown id.
		"kp_" + strings.Repeat("A", 22) + ".secret",
		strings.Repeat("x", 4096),
	} {
		short := token
		if len(short) > 40 {
			short = short[:40] + "..."
		}
		_, err := c.Users.GetCurrentUser(keyport.WithToken(t.Context(), token), &keyportv1.GetCurrentUserRequest{})
		wantError(t, fmt.Sprintf("GetCurrentUser with token %q", short), err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
		_, err = c.Sessions.GetSession(t.Context(), &keyportv1.GetSessionRequest{Token: token})
		wantError(t, fmt.Sprintf("GetSession with token %q", short), err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
	}

	// No token at all.
	_, err := c.Sessions.ListSessions(t.Context(), &keyportv1.ListSessionsRequest{})
	wantError(t, "ListSessions without a token", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
	_, err = c.Sessions.GetSession(t.Context(), &keyportv1.GetSessionRequest{})
	wantError(t, "GetSession with an empty token", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
	// A non-Bearer scheme.
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Basic "+good)
	_, err = c.Users.GetCurrentUser(ctx, &keyportv1.GetCurrentUserRequest{})
	wantError(t, "GetCurrentUser with a Basic scheme", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)

	// None of this hurt the good token.
	if _, err := c.Users.GetCurrentUser(keyport.WithToken(t.Context(), good), &keyportv1.GetCurrentUserRequest{}); err != nil {
		t.Errorf("GetCurrentUser with the good token: %v", err)
	}
}

func TestDefaultTimeout(t *testing.T) {
	c := newClient(t, keyport.WithTimeout(time.Nanosecond))
	_, err := c.Sessions.GetSession(t.Context(), &keyportv1.GetSessionRequest{Token: "kp_x.y"})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("call under a 1ns default timeout: %v, want DeadlineExceeded", err)
	}
	if r := keyport.ErrorReason(err); r != "" {
		t.Errorf("client-side deadline has reason %q, want none", r)
	}

	// A deadline on the context wins over the default.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = c.Sessions.GetSession(ctx, &keyportv1.GetSessionRequest{Token: "kp_x.y"})
	wantError(t, "GetSession with its own deadline", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
}

func TestWithToken(t *testing.T) {
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-keyport-user-agent", "test/1.0")
	ctx = keyport.WithToken(ctx, "kp_first.secret")
	ctx = keyport.WithToken(ctx, "kp_second.secret")
	md, _ := metadata.FromOutgoingContext(ctx)
	if got := md.Get("authorization"); !slices.Equal(got, []string{"Bearer kp_second.secret"}) {
		t.Errorf("authorization = %q, want exactly [\"Bearer kp_second.secret\"]", got)
	}
	if got := md.Get("x-keyport-user-agent"); !slices.Equal(got, []string{"test/1.0"}) {
		t.Errorf("x-keyport-user-agent = %q, want it kept", got)
	}
}

func TestErrorReason(t *testing.T) {
	if r := keyport.ErrorReason(nil); r != "" {
		t.Errorf("ErrorReason(nil) = %q", r)
	}
	if r := keyport.ErrorReason(fmt.Errorf("plain")); r != "" {
		t.Errorf("ErrorReason(plain error) = %q", r)
	}
	st, err := status.New(codes.Unauthenticated, "bad").WithDetails(
		&errdetails.ErrorInfo{Domain: "proxy.example", Reason: "OTHER"},
		&errdetails.ErrorInfo{Domain: keyport.ErrorDomain, Reason: keyport.ReasonSessionExpired, Metadata: map[string]string{"k": "v"}},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)},
	)
	if err != nil {
		t.Fatal(err)
	}
	wrapped := fmt.Errorf("calling keyport: %w", st.Err())
	if r := keyport.ErrorReason(wrapped); r != keyport.ReasonSessionExpired {
		t.Errorf("ErrorReason(wrapped) = %q, want %q (keyport.dev domain first)", r, keyport.ReasonSessionExpired)
	}
	if md := keyport.ErrorInfo(wrapped).GetMetadata(); md["k"] != "v" {
		t.Errorf("ErrorInfo metadata = %v", md)
	}
	if r := keyport.ErrorReason(status.Error(codes.Unavailable, "down")); r != "" {
		t.Errorf("ErrorReason(no details) = %q", r)
	}
}

func TestDialOptions(t *testing.T) {
	if _, err := keyport.Dial("127.0.0.1:1", keyport.WithInsecure(), keyport.WithServerName("x")); err == nil {
		t.Error("Dial with WithInsecure and a TLS option succeeded")
	}
	if _, err := keyport.Dial("127.0.0.1:1", keyport.WithCAFile(filepath.Join(t.TempDir(), "missing.pem"))); err == nil {
		t.Error("Dial with a missing CA file succeeded")
	}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := keyport.Dial("127.0.0.1:1", keyport.WithCAFile(notPEM)); err == nil {
		t.Error("Dial with a CA file without certificates succeeded")
	}
	if _, err := keyport.Dial("127.0.0.1:1", keyport.WithClientCertFiles(notPEM, notPEM)); err == nil {
		t.Error("Dial with a bad client certificate succeeded")
	}

	// A TLS client against the plaintext server fails with Unavailable.
	addr := liveServer(t)
	c, err := keyport.Dial(addr, keyport.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("Dial with TLS defaults: %v", err)
	}
	defer c.Close()
	_, err = c.Sessions.GetSession(t.Context(), &keyportv1.GetSessionRequest{Token: "kp_x.y"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("TLS client against a plaintext server: %v, want Unavailable", err)
	}
}
