// Package keyport is the Go client for Keyport, a gRPC identity service
// (sign-up, sign-in and sessions).
//
// The typed service clients are generated from Keyport's proto files into
// the package github.com/keyport/keyport/clients/go/gen/keyport/v1; this
// package adds what every caller needs around them: connecting with TLS,
// mutual TLS or plaintext, a default per-call deadline ([DefaultTimeout]),
// attaching a session token to a call ([WithToken]), reading the stable
// error reason that Keyport puts on every error ([ErrorReason], or
// errors.Is with a sentinel such as [ErrSessionExpired]) and the delay of a
// [ReasonRateLimited] one ([RetryDelay]), the small parts that the
// web pages of the mail flows repeat ([TokenFromLink], [EmailSignInCookie]),
// telling a sign-in's second-factor challenge from a session
// ([SignInChallenge], [CompleteSignInWithTotp]), keeping a passkey
// sign-in's ceremony in the browser ([PasskeyCeremonyCookie]), walking
// every page of an admin's user list ([ListAllUsers]), and telling an API
// key from a session token ([IsAPIKey]).
//
// For services that authenticate their own callers through Keyport, a
// [SessionCache] keeps Keyport's answers in memory, fed by its
// WatchSessionEvents stream so that a revocation reaches the next request,
// and a [Guard] checks each request's bearer token or session cookie
// through it: as net/http middleware ([Guard.Middleware],
// [Guard.OptionalMiddleware], [Guard.RequirePermissions]) or as gRPC server
// interceptors ([Guard.UnaryServerInterceptor],
// [Guard.StreamServerInterceptor]), with the caller in the context
// ([PrincipalFrom]).
//
//	client, err := keyport.Dial("keyport.internal:50051", keyport.WithCAFile("ca.pem"))
//	if err != nil { ... }
//	defer client.Close()
//	resp, err := client.Sessions.SignIn(ctx, &keyportv1.SignInRequest{Email: e, Password: p})
//	if keyport.ErrorReason(err) == keyport.ReasonInvalidCredentials { ... }
package keyport

// Version is the SDK's version, the Keyport release it belongs to (the Rust
// workspace's version). Its module is tagged clients/go/v<Version>.
const Version = "0.1.0"
