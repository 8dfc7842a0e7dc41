package keyport

import (
	"context"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// UnaryServerInterceptor authenticates every unary call of a gRPC service
// of yours by its end user's session token (the "authorization: Bearer
// <token>" metadata) through the guard's cache, and requires every one of
// permissions, if any. The handler finds the caller with [PrincipalFrom].
// A refused call answers Unauthenticated (no or a dead token; the reason
// is Keyport's), PermissionDenied (a missing permission) or Unavailable
// (Keyport could not be asked: it fails closed), with a
// google.rpc.ErrorInfo of domain [ErrorDomain], as Keyport's own errors,
// so [ErrorReason] reads it.
//
//	srv := grpc.NewServer(
//		grpc.ChainUnaryInterceptor(guard.UnaryServerInterceptor("reports:read")),
//		grpc.ChainStreamInterceptor(guard.StreamServerInterceptor("reports:read")),
//	)
func (g *Guard) UnaryServerInterceptor(permissions ...string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := g.authenticateCall(ctx, permissions)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is [Guard.UnaryServerInterceptor] for streaming
// calls: the call is checked once, when it opens.
func (g *Guard) StreamServerInterceptor(permissions ...string) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := g.authenticateCall(ss.Context(), permissions)
		if err != nil {
			return err
		}
		return handler(srv, principalStream{ServerStream: ss, ctx: ctx})
	}
}

// principalStream is a server stream whose context carries the principal.
type principalStream struct {
	grpc.ServerStream
	ctx context.Context
}

// Context is the call's context with the principal.
func (s principalStream) Context() context.Context { return s.ctx }

// authenticateCall is ctx with the caller's principal, or the status
// refusing the call.
func (g *Guard) authenticateCall(ctx context.Context, permissions []string) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	var authorization string
	if values := md.Get("authorization"); len(values) > 0 {
		authorization = values[0]
	}
	token := bearer(authorization)
	if token == "" {
		return nil, refusalStatus(&Refusal{Kind: RefusalMissing, Reason: ReasonUnauthenticated})
	}
	// The peer is a service, not the end user: forward nothing about it.
	out := g.check(ctx, token, ClientInfo{}, permissions)
	if out.Refusal != nil {
		return nil, refusalStatus(out.Refusal)
	}
	return ContextWithPrincipal(ctx, out.Principal), nil
}

// refusalStatus is the gRPC status of a refusal, with Keyport's reason in
// a google.rpc.ErrorInfo as Keyport sends its own.
func refusalStatus(r *Refusal) error {
	code, reason := codes.Unauthenticated, r.Reason
	switch r.Kind {
	case RefusalForbidden:
		code, reason = codes.PermissionDenied, ReasonPermissionDenied
	case RefusalUnavailable:
		code, reason = codes.Unavailable, ReasonUnavailable
	case RefusalMisconfigured:
		// This service's bug; the caller cannot fix it.
		code = codes.Internal
	}
	st := status.New(code, r.Message())
	if detailed, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}); err == nil {
		st = detailed
	}
	return st.Err()
}
