package keyport

import (
	"context"
	"fmt"
	"strings"
	"time"

	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// DefaultTimeout is the deadline unary Keyport calls get when neither the
// caller's context nor [WithTimeout] sets one: 2 seconds, the Rust client's
// default request timeout (keyport-client's request_timeout), as in the
// TypeScript and Python SDKs.
const DefaultTimeout = 2 * time.Second

// Client is a connection to one Keyport server (or a load balancer in front
// of several) with a typed client per Keyport service. It is safe for
// concurrent use; create one per process and share it.
type Client struct {
	conn *grpc.ClientConn

	// Users is the keyport.v1.UserService client: sign-up, the signed-in
	// user's own profile and password, and the flows through the user's
	// mailbox: verifying the address (RequestEmailVerification,
	// VerifyEmail), resetting a forgotten password (RequestPasswordReset,
	// ResetPassword), changing the address (RequestEmailChange,
	// ConfirmEmailChange) and setting a first password
	// (RequestPasswordSetup, SetPassword). See [TokenFromLink] for the
	// pages the mailed links open.
	Users keyportv1.UserServiceClient
	// Sessions is the keyport.v1.SessionService client: sign-in with a
	// password or with a mailed link or code (StartEmailSignIn,
	// FinishEmailSignIn; see [EmailSignInCookie] and
	// [EmailSignInWithCode]), with a passkey alone (StartPasskeySignIn,
	// FinishPasskeySignIn; see [PasskeyCeremonyCookie]), the second step of
	// a sign-in that answered a challenge (CompleteSignIn), validating a
	// session token, and a user's own sessions.
	Sessions keyportv1.SessionServiceClient
	// TwoFactor is the keyport.v1.TwoFactorService client: the signed-in
	// user's second factors, an authenticator app (EnrollTotp, ConfirmTotp,
	// DisableTotp) with single-use backup codes (RegenerateBackupCodes),
	// ListFactors, and StepUp (with a code, or a passkey after
	// StartPasskeyStepUp), which raises the calling session to AAL2 for
	// sensitive calls that answer [ReasonStepUpRequired].
	TwoFactor keyportv1.TwoFactorServiceClient
	// Passkeys is the keyport.v1.PasskeyService client: the signed-in
	// user's passkeys (WebAuthn): register (StartPasskeyRegistration,
	// FinishPasskeyRegistration), list, rename and delete. A server without
	// [passkeys] answers [ReasonPasskeysDisabled].
	Passkeys keyportv1.PasskeyServiceClient
	// Authorization is the keyport.v1.AuthorizationService client:
	// Authorize, which decides the permissions a request needs for the
	// holder of a session token (in the request, as for GetSession) and
	// answers a decision per permission, the session and its user. A name
	// outside the server's catalogue answers [ReasonPermissionUnknown].
	// The token may be an API key ("kpa_..."): the answer then names the
	// key (api_key) and its owner, user (with no session) or
	// service_account. With an OrganizationId (or else the session's active
	// organization) a session is also allowed what the user's role there
	// grants (OrganizationId and OrganizationRole in the answer).
	Authorization keyportv1.AuthorizationServiceClient
	// Admin is the keyport.v1.AdminService client, for admins: ListUsers
	// (see [ListAllUsers] for every page), GetUser, CreateUser,
	// SetUserRoles, BanUser, UnbanUser, RevokeUserSessions and DeleteUser,
	// and the service accounts that own API keys (CreateServiceAccount,
	// ListServiceAccounts, SetServiceAccountRoles, DeleteServiceAccount).
	// Each call takes the admin's session token ([WithToken]), or an API
	// key whose scopes grant the permission, and needs a permission their
	// roles grant (users:read, users:write or sessions:revoke; the admin
	// role grants all), else [ReasonPermissionDenied]. An unknown user id
	// answers [ReasonUserNotFound], an unknown service account id
	// [ReasonServiceAccountNotFound].
	Admin keyportv1.AdminServiceClient
	// APIKeys is the keyport.v1.ApiKeyService client: the API keys
	// ("kpa_<id>.<secret>") of the signed-in user, or of a service account
	// (ServiceAccountId, for an admin): CreateApiKey (its secret is shown
	// this once), ListApiKeys (never a secret), RevokeApiKey and
	// RotateApiKey (a new key; the old one keeps working for grace). Each
	// call takes a session token ([WithToken]); an API key as the bearer
	// answers [ReasonAPIKeyNotAccepted], another owner's or an unknown key
	// id [ReasonAPIKeyNotFound]. See [IsAPIKey].
	APIKeys keyportv1.ApiKeyServiceClient
	// Organizations is the keyport.v1.OrganizationService client: the
	// caller's organizations (CreateOrganization, ListMyOrganizations,
	// RenameOrganization, DeleteOrganization), their members (ListMembers,
	// SetMemberRole, RemoveMember, LeaveOrganization, TransferOwnership),
	// invitations (CreateInvitation, ListInvitations, RevokeInvitation,
	// AcceptInvitation) and the session's active organization
	// (SetActiveOrganization). Each call takes a session token
	// ([WithToken]; an API key answers [ReasonAPIKeyNotAccepted]). An
	// organization the caller is not a member of answers
	// [ReasonOrganizationNotFound], as an unknown one.
	Organizations keyportv1.OrganizationServiceClient
}

// Dial returns a client for the Keyport server at address ("host:port", or
// any gRPC target such as "dns:///keyport.internal:50051").
//
// The connection is TLS with the system's root certificates unless options
// say otherwise ([WithInsecure] for plaintext, [WithCAFile] and friends for
// a private CA, [WithClientCertFiles] for mutual TLS). Like
// grpc.NewClient, Dial does not wait for the server: the connection is made
// on the first call, and an unreachable server shows up as an Unavailable
// error there. Dial fails only on bad options or an invalid target.
func Dial(address string, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(o); err != nil {
			return nil, fmt.Errorf("keyport: %w", err)
		}
	}
	dialOpts, err := o.dialOptions()
	if err != nil {
		return nil, fmt.Errorf("keyport: %w", err)
	}
	conn, err := grpc.NewClient(address, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("keyport: connecting to %q: %w", address, err)
	}
	return NewFromConn(conn), nil
}

// NewFromConn wraps a gRPC connection that the caller set up itself. The
// options of [Dial] (such as the default timeout) do not apply, and its
// calls return plain gRPC status errors: pass them through [WrapError] for
// errors.Is with the sentinels. Close closes conn.
func NewFromConn(conn *grpc.ClientConn) *Client {
	return &Client{
		conn:          conn,
		Users:         keyportv1.NewUserServiceClient(conn),
		Sessions:      keyportv1.NewSessionServiceClient(conn),
		TwoFactor:     keyportv1.NewTwoFactorServiceClient(conn),
		Passkeys:      keyportv1.NewPasskeyServiceClient(conn),
		Authorization: keyportv1.NewAuthorizationServiceClient(conn),
		Admin:         keyportv1.NewAdminServiceClient(conn),
		APIKeys:       keyportv1.NewApiKeyServiceClient(conn),
		Organizations: keyportv1.NewOrganizationServiceClient(conn),
	}
}

// Conn returns the underlying gRPC connection, for example to run health
// checks (grpc.health.v1) against the same server.
func (c *Client) Conn() *grpc.ClientConn {
	return c.conn
}

// Close closes the connection. Calls in flight fail with Canceled; the
// client must not be used afterwards.
func (c *Client) Close() error {
	return c.conn.Close()
}

// authorizationKey is the metadata key that carries the session token.
const authorizationKey = "authorization"

// WithToken returns a copy of ctx whose outgoing gRPC metadata carries the
// session token as "authorization: Bearer <token>", as user-scoped Keyport
// RPCs (GetCurrentUser, ListSessions, SignOut, ...) expect. A token set
// earlier on ctx is replaced; other outgoing metadata is kept.
// AdminService calls also take an API key here, when its scopes grant
// their permission; every other call answers [ReasonAPIKeyNotAccepted] to
// one.
//
// GetSession is the exception: it takes the token in its request body.
func WithToken(ctx context.Context, token string) context.Context {
	md, ok := metadata.FromOutgoingContext(ctx)
	if ok {
		md = md.Copy()
	} else {
		md = metadata.MD{}
	}
	md.Set(authorizationKey, "Bearer "+strings.TrimSpace(token))
	return metadata.NewOutgoingContext(ctx, md)
}

// errorInterceptor returns the errors Keyport answered as [*Error]s, for
// errors.Is with the sentinels.
func errorInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return WrapError(invoker(ctx, method, req, reply, cc, opts...))
}

// streamErrorInterceptor is [errorInterceptor] for streams: opening one, and
// each message received or sent.
func streamErrorInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	stream, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, WrapError(err)
	}
	return errorStream{stream}, nil
}

// errorStream is a client stream whose errors go through [WrapError]; io.EOF
// stays io.EOF.
type errorStream struct{ grpc.ClientStream }

func (s errorStream) RecvMsg(m any) error { return WrapError(s.ClientStream.RecvMsg(m)) }

func (s errorStream) SendMsg(m any) error { return WrapError(s.ClientStream.SendMsg(m)) }

// timeoutInterceptor gives unary calls without a deadline one of d.
// Streaming calls (WatchSessionEvents) are long-lived by design and are left
// alone.
func timeoutInterceptor(d time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}
