package keyport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	keyport "github.com/keyport/keyport/clients/go"
	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// sentinels is the sentinel of each reason, by hand: a reason of the proto
// without one here fails [TestSentinelsMatchTheProtoEnum]. [wantError]
// checks that every live error matches the sentinel of its reason.
var sentinels = map[string]error{
	keyport.ReasonInvalidArgument:             keyport.ErrInvalidArgument,
	keyport.ReasonInvalidCredentials:          keyport.ErrInvalidCredentials,
	keyport.ReasonEmailTaken:                  keyport.ErrEmailTaken,
	keyport.ReasonWeakPassword:                keyport.ErrWeakPassword,
	keyport.ReasonPasswordTooLong:             keyport.ErrPasswordTooLong,
	keyport.ReasonPasswordTooCommon:           keyport.ErrPasswordTooCommon,
	keyport.ReasonPasswordContainsEmail:       keyport.ErrPasswordContainsEmail,
	keyport.ReasonMalformedRequest:            keyport.ErrMalformedRequest,
	keyport.ReasonUnauthenticated:             keyport.ErrUnauthenticated,
	keyport.ReasonSessionExpired:              keyport.ErrSessionExpired,
	keyport.ReasonSessionNotFound:             keyport.ErrSessionNotFound,
	keyport.ReasonRateLimited:                 keyport.ErrRateLimited,
	keyport.ReasonResourceExhausted:           keyport.ErrResourceExhausted,
	keyport.ReasonPermissionDenied:            keyport.ErrPermissionDenied,
	keyport.ReasonUnavailable:                 keyport.ErrUnavailable,
	keyport.ReasonInternal:                    keyport.ErrInternal,
	keyport.ReasonOAuthProviderUnknown:        keyport.ErrOAuthProviderUnknown,
	keyport.ReasonRedirectURINotAllowed:       keyport.ErrRedirectURINotAllowed,
	keyport.ReasonOAuthStateInvalid:           keyport.ErrOAuthStateInvalid,
	keyport.ReasonOAuthProviderError:          keyport.ErrOAuthProviderError,
	keyport.ReasonOAuthIDTokenInvalid:         keyport.ErrOAuthIDTokenInvalid,
	keyport.ReasonAccountLinkRefused:          keyport.ErrAccountLinkRefused,
	keyport.ReasonAlreadyLinked:               keyport.ErrAlreadyLinked,
	keyport.ReasonLinkedAccountNotFound:       keyport.ErrLinkedAccountNotFound,
	keyport.ReasonLastSignInMethod:            keyport.ErrLastSignInMethod,
	keyport.ReasonEmailTokenInvalid:           keyport.ErrEmailTokenInvalid,
	keyport.ReasonMailDisabled:                keyport.ErrMailDisabled,
	keyport.ReasonEmailNotVerified:            keyport.ErrEmailNotVerified,
	keyport.ReasonReauthenticationRequired:    keyport.ErrReauthenticationRequired,
	keyport.ReasonSignInChallengeInvalid:      keyport.ErrSignInChallengeInvalid,
	keyport.ReasonSecondFactorInvalid:         keyport.ErrSecondFactorInvalid,
	keyport.ReasonStepUpRequired:              keyport.ErrStepUpRequired,
	keyport.ReasonSecondFactorAlreadyEnrolled: keyport.ErrSecondFactorAlreadyEnrolled,
	keyport.ReasonSecondFactorNotEnrolled:     keyport.ErrSecondFactorNotEnrolled,
	keyport.ReasonPasskeysDisabled:            keyport.ErrPasskeysDisabled,
	keyport.ReasonPasskeyInvalid:              keyport.ErrPasskeyInvalid,
	keyport.ReasonPasskeyNotFound:             keyport.ErrPasskeyNotFound,
	keyport.ReasonPermissionUnknown:           keyport.ErrPermissionUnknown,
	keyport.ReasonUserBanned:                  keyport.ErrUserBanned,
	keyport.ReasonUserNotFound:                keyport.ErrUserNotFound,
	keyport.ReasonAPIKeyNotFound:              keyport.ErrAPIKeyNotFound,
	keyport.ReasonAPIKeyExpired:               keyport.ErrAPIKeyExpired,
	keyport.ReasonServiceAccountNotFound:      keyport.ErrServiceAccountNotFound,
	keyport.ReasonAPIKeyNotAccepted:           keyport.ErrAPIKeyNotAccepted,
	keyport.ReasonOrganizationNotFound:        keyport.ErrOrganizationNotFound,
	keyport.ReasonMemberNotFound:              keyport.ErrMemberNotFound,
	keyport.ReasonInvitationInvalid:           keyport.ErrInvitationInvalid,
	keyport.ReasonLastOwner:                   keyport.ErrLastOwner,
	keyport.ReasonSlugTaken:                   keyport.ErrSlugTaken,
	keyport.ReasonAccessTokensDisabled:        keyport.ErrAccessTokensDisabled,
	keyport.ReasonAudienceNotAllowed:          keyport.ErrAudienceNotAllowed,
	keyport.ReasonEventsLost:                  keyport.ErrEventsLost,
}

// keyportStatusError is a gRPC status error as Keyport sends it: an
// ErrorInfo of domain keyport.dev with reason, and the extra details.
func keyportStatusError(t *testing.T, code codes.Code, reason string, extra ...*errdetails.RetryInfo) error {
	t.Helper()
	st, err := status.New(code, "from keyport").WithDetails(&errdetails.ErrorInfo{Domain: keyport.ErrorDomain, Reason: reason})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range extra {
		if st, err = st.WithDetails(d); err != nil {
			t.Fatal(err)
		}
	}
	return st.Err()
}

// TestSentinelsMatchTheProtoEnum checks that every value of the generated
// keyport.v1.ErrorReason (but UNSPECIFIED) has a sentinel, that sentinels are
// distinct, and that an error of each reason matches its own sentinel and
// no other.
func TestSentinelsMatchTheProtoEnum(t *testing.T) {
	for name := range keyportv1.ErrorReason_value {
		reason := strings.TrimPrefix(name, "ERROR_REASON_")
		if reason == "UNSPECIFIED" {
			continue
		}
		if sentinels[reason] == nil {
			t.Errorf("keyport.v1.ErrorReason %s has no sentinel", name)
		}
	}
	if got, want := len(sentinels), len(keyportv1.ErrorReason_value)-1; got != want {
		t.Errorf("%d sentinels for %d reasons", got, want)
	}
	seen := map[error]string{}
	for reason, sentinel := range sentinels {
		if other, ok := seen[sentinel]; ok {
			t.Errorf("%s and %s share a sentinel", reason, other)
		}
		seen[sentinel] = reason
		if got, want := sentinel.Error(), "keyport: "+reason; got != want {
			t.Errorf("sentinel of %s says %q, want %q", reason, got, want)
		}
		err := keyport.WrapError(keyportStatusError(t, codes.FailedPrecondition, reason))
		for other, otherSentinel := range sentinels {
			if got := errors.Is(err, otherSentinel); got != (other == reason) {
				t.Errorf("errors.Is(error of %s, sentinel of %s) = %v", reason, other, got)
			}
		}
		if !errors.Is(fmt.Errorf("wrapped again: %w", err), sentinel) {
			t.Errorf("an error of %s wrapped with %%w does not match its sentinel", reason)
		}
	}
}

func TestWrapError(t *testing.T) {
	if keyport.WrapError(nil) != nil {
		t.Error("WrapError(nil) is not nil")
	}
	plain := errors.New("plain")
	if got := keyport.WrapError(plain); got != plain {
		t.Errorf("WrapError(plain) = %v, want it unchanged", got)
	}
	transport := status.Error(codes.Unavailable, "connection refused")
	if got := keyport.WrapError(transport); got != transport {
		t.Errorf("WrapError(no details) = %#v, want it unchanged", got)
	}
	if got := keyport.WrapError(io.EOF); got != io.EOF {
		t.Errorf("WrapError(io.EOF) = %v", got)
	}
	// Another domain's ErrorInfo is no Keyport reason.
	foreign, err := status.New(codes.Unauthenticated, "proxy").WithDetails(&errdetails.ErrorInfo{Domain: "proxy.example", Reason: keyport.ReasonUnauthenticated})
	if err != nil {
		t.Fatal(err)
	}
	if got := keyport.WrapError(foreign.Err()); errors.Is(got, keyport.ErrUnauthenticated) {
		t.Errorf("a proxy's ErrorInfo matched ErrUnauthenticated: %v", got)
	}

	raw := keyportStatusError(t, codes.Unauthenticated, keyport.ReasonSessionExpired)
	wrapped := keyport.WrapError(raw)
	var kerr *keyport.Error
	if !errors.As(wrapped, &kerr) || kerr.Reason != keyport.ReasonSessionExpired {
		t.Fatalf("WrapError = %#v, want a *keyport.Error of SESSION_EXPIRED", wrapped)
	}
	if keyport.WrapError(wrapped) != wrapped {
		t.Error("WrapError of an *Error is not the same error")
	}
	if wrapped.Error() != raw.Error() || !errors.Is(wrapped, raw) {
		t.Errorf("the *Error says %q and unwraps to %v; want the status error %q", wrapped, errors.Unwrap(wrapped), raw)
	}
	if status.Code(wrapped) != codes.Unauthenticated || keyport.ErrorReason(wrapped) != keyport.ReasonSessionExpired {
		t.Errorf("status.Code / ErrorReason of the *Error: %v / %q", status.Code(wrapped), keyport.ErrorReason(wrapped))
	}
	// A reason of a newer server is an *Error that matches no sentinel.
	newer := keyport.WrapError(keyportStatusError(t, codes.FailedPrecondition, "A_REASON_FROM_A_NEWER_SERVER"))
	if !errors.As(newer, &kerr) || kerr.Reason != "A_REASON_FROM_A_NEWER_SERVER" {
		t.Errorf("newer reason: %#v", newer)
	}
	for reason, sentinel := range sentinels {
		if errors.Is(newer, sentinel) {
			t.Errorf("a newer server's reason matches the sentinel of %s", reason)
		}
	}
}

func TestRetryDelayOfStatusDetails(t *testing.T) {
	limited := keyport.WrapError(keyportStatusError(t, codes.ResourceExhausted, keyport.ReasonRateLimited,
		&errdetails.RetryInfo{RetryDelay: durationpb.New(1500 * time.Millisecond)}))
	if d, ok := keyport.RetryDelay(limited); !ok || d != 1500*time.Millisecond {
		t.Errorf("RetryDelay = %v, %v; want 1.5s, true", d, ok)
	}
	if d, ok := keyport.RetryDelay(fmt.Errorf("calling keyport: %w", limited)); !ok || d != 1500*time.Millisecond {
		t.Errorf("RetryDelay of a wrapped error = %v, %v", d, ok)
	}
	for what, err := range map[string]error{
		"nil":                  nil,
		"a plain error":        errors.New("plain"),
		"a status without one": keyportStatusError(t, codes.Unauthenticated, keyport.ReasonInvalidCredentials),
		"a RetryInfo without a delay": keyportStatusError(t, codes.ResourceExhausted, keyport.ReasonRateLimited,
			&errdetails.RetryInfo{}),
	} {
		if d, ok := keyport.RetryDelay(err); ok || d != 0 {
			t.Errorf("RetryDelay(%s) = %v, %v; want 0, false", what, d, ok)
		}
	}
}

// The errors of live calls match their sentinels, and stay what gRPC
// returned for everything else.
func TestErrorsIsWithALiveServer(t *testing.T) {
	c := newClient(t)
	_, err := c.Sessions.GetSession(t.Context(), &keyportv1.GetSessionRequest{Token: "kp_bad.token"})
	if !errors.Is(err, keyport.ErrUnauthenticated) {
		t.Errorf("GetSession with a bad token: %v, want errors.Is ErrUnauthenticated", err)
	}
	if errors.Is(err, keyport.ErrSessionExpired) || errors.Is(err, keyport.ErrInvalidCredentials) {
		t.Errorf("GetSession with a bad token matches another reason's sentinel: %v", err)
	}
	wantError(t, "GetSession with a bad token", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
	if !errors.Is(fmt.Errorf("checking the session: %w", err), keyport.ErrUnauthenticated) {
		t.Error("the error wrapped again does not match ErrUnauthenticated")
	}
	var kerr *keyport.Error
	if !errors.As(err, &kerr) || kerr.Reason != keyport.ReasonUnauthenticated || kerr.GRPCStatus().Code() != codes.Unauthenticated {
		t.Errorf("errors.As(*keyport.Error) of %v: %#v", err, kerr)
	}
	if st, ok := status.FromError(err); !ok || st.Code() != codes.Unauthenticated || !strings.Contains(err.Error(), "rpc error: code = Unauthenticated") {
		t.Errorf("status.FromError(%v) = %v, %v", err, st, ok)
	}

	email, _ := signUp(t, c)
	_, err = c.Sessions.SignIn(t.Context(), &keyportv1.SignInRequest{Email: email, Password: "not the password"})
	if !errors.Is(err, keyport.ErrInvalidCredentials) || errors.Is(err, keyport.ErrUnauthenticated) {
		t.Errorf("SignIn with a wrong password: %v, want ErrInvalidCredentials only", err)
	}

	// An error that never reached Keyport is no *Error and matches no sentinel.
	nowhere, err := keyport.Dial("127.0.0.1:1", keyport.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer nowhere.Close()
	_, err = nowhere.Sessions.GetSession(t.Context(), &keyportv1.GetSessionRequest{Token: "kp_x.y"})
	if status.Code(err) != codes.Unavailable || errors.As(err, &kerr) {
		t.Errorf("a refused connection: %#v, want a plain Unavailable", err)
	}
	for reason, sentinel := range sentinels {
		if errors.Is(err, sentinel) {
			t.Errorf("a refused connection matches the sentinel of %s", reason)
		}
	}

	// NewFromConn's calls are plain status errors; WrapError makes them match.
	conn, err := grpc.NewClient(liveServer(t), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	own := keyport.NewFromConn(conn)
	defer own.Close()
	_, err = own.Sessions.GetSession(t.Context(), &keyportv1.GetSessionRequest{Token: "kp_bad.token"})
	if errors.Is(err, keyport.ErrUnauthenticated) || !errors.Is(keyport.WrapError(err), keyport.ErrUnauthenticated) {
		t.Errorf("NewFromConn: errors.Is before / after WrapError: %v / %v", errors.Is(err, keyport.ErrUnauthenticated), errors.Is(keyport.WrapError(err), keyport.ErrUnauthenticated))
	}
}

// A server that limits an account to 2 failed sign-ins, and takes
// WatchSessionEvents from no peer (trusted_proxies is empty).
func TestRateLimitedAndStreamErrorsWithALiveServer(t *testing.T) {
	addr := startTestServer(t, "KEYPORT_SIGN_IN_LIMITS__PER_ACCOUNT=2", "KEYPORT_SERVER__TRUSTED_PROXIES=[]")
	c, err := keyport.Dial(addr, keyport.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	t.Run("RetryDelay", func(t *testing.T) {
		email, _ := signUp(t, c)
		wrong := &keyportv1.SignInRequest{Email: email, Password: "not the password"}
		for attempt := 1; attempt <= 2; attempt++ {
			_, err := c.Sessions.SignIn(t.Context(), wrong)
			wantError(t, fmt.Sprintf("failed sign-in %d", attempt), err, codes.Unauthenticated, keyport.ReasonInvalidCredentials)
			if d, ok := keyport.RetryDelay(err); ok {
				t.Errorf("INVALID_CREDENTIALS carries a retry delay %v", d)
			}
		}
		_, err := c.Sessions.SignIn(t.Context(), wrong)
		wantError(t, "the third failed sign-in", err, codes.ResourceExhausted, keyport.ReasonRateLimited)
		if !errors.Is(err, keyport.ErrRateLimited) {
			t.Errorf("the third failed sign-in: %v, want errors.Is ErrRateLimited", err)
		}
		if d, ok := keyport.RetryDelay(err); !ok || d <= 0 || d > 15*time.Minute {
			t.Errorf("RetryDelay(RATE_LIMITED) = %v, %v; want a positive delay", d, ok)
		}
	})

	t.Run("a stream's error", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		stream, err := c.Sessions.WatchSessionEvents(ctx, &keyportv1.WatchSessionEventsRequest{})
		if err == nil {
			_, err = stream.Recv()
		}
		wantError(t, "WatchSessionEvents from an untrusted peer", err, codes.PermissionDenied, keyport.ReasonPermissionDenied)
		if !errors.Is(err, keyport.ErrPermissionDenied) {
			t.Errorf("WatchSessionEvents from an untrusted peer: %v, want errors.Is ErrPermissionDenied", err)
		}
	})
}

// deadlineRecorder records the deadline every call reaches the connection
// with (its interceptors run after the SDK's), as time left.
type deadlineRecorder struct {
	mu   sync.Mutex
	left []time.Duration // -1: no deadline
}

func (r *deadlineRecorder) record(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if deadline, ok := ctx.Deadline(); ok {
		r.left = append(r.left, time.Until(deadline))
	} else {
		r.left = append(r.left, -1)
	}
}

func (r *deadlineRecorder) take() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	left := r.left
	r.left = nil
	return left
}

func (r *deadlineRecorder) options() keyport.Option {
	return keyport.WithDialOptions(
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			r.record(ctx)
			return invoker(ctx, method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			r.record(ctx)
			return nil, status.Error(codes.Canceled, "stopped by the test")
		}),
	)
}

// within reports whether left is in (want-slack, want].
func within(left, want time.Duration) bool {
	return left > want-time.Second && left <= want
}

// The default deadline is 2 s, the Rust client's; a deadline of the
// caller's context or WithTimeout overrides it; streams never get it.
func TestDefaultDeadlineIsAppliedToUnaryCalls(t *testing.T) {
	if keyport.DefaultTimeout != 2*time.Second {
		t.Errorf("DefaultTimeout = %v, want 2s (keyport-client's default request_timeout)", keyport.DefaultTimeout)
	}
	var r deadlineRecorder
	c := newClient(t, r.options())
	get := func(ctx context.Context) {
		t.Helper()
		_, err := c.Sessions.GetSession(ctx, &keyportv1.GetSessionRequest{Token: "kp_x.y"})
		wantError(t, "GetSession", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
	}
	get(t.Context())
	ctx, cancel := context.WithTimeout(t.Context(), 7*time.Second)
	defer cancel()
	get(ctx)
	if _, err := c.Sessions.WatchSessionEvents(t.Context(), &keyportv1.WatchSessionEventsRequest{}); status.Code(err) != codes.Canceled {
		t.Errorf("WatchSessionEvents through the recorder: %v", err)
	}
	left := r.take()
	if len(left) != 3 || !within(left[0], keyport.DefaultTimeout) || !within(left[1], 7*time.Second) || left[2] != -1 {
		t.Errorf("time left of a call by default, with a 7s context, and of a stream: %v; want about 2s, 7s, none", left)
	}

	longer := newClient(t, r.options(), keyport.WithTimeout(5*time.Second))
	if _, err := longer.Sessions.GetSession(t.Context(), &keyportv1.GetSessionRequest{Token: "kp_x.y"}); !errors.Is(err, keyport.ErrUnauthenticated) {
		t.Errorf("GetSession: %v", err)
	}
	none := newClient(t, r.options(), keyport.WithTimeout(0))
	if _, err := none.Sessions.GetSession(t.Context(), &keyportv1.GetSessionRequest{Token: "kp_x.y"}); !errors.Is(err, keyport.ErrUnauthenticated) {
		t.Errorf("GetSession: %v", err)
	}
	if left := r.take(); len(left) != 2 || !within(left[0], 5*time.Second) || left[1] != -1 {
		t.Errorf("time left with WithTimeout(5s) and WithTimeout(0): %v; want about 5s, none", left)
	}
}
