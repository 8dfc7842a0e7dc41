package keyport

import (
	"context"
	"errors"
	"iter"

	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Administration (docs/admin.md): the RPCs are the generated ones on
// [Client.Admin] (users, and the service accounts that own API keys), each
// called with the admin's session token on its context ([WithToken]), or
// an API key whose scopes grant the call's permission. This file adds the
// walk over every page of ListUsers.

// errRepeatedPageToken is what [ListAllUsers] yields when the server
// answers the page token it was asked with: the walk would never end.
var errRepeatedPageToken = errors.New("keyport: ListUsers answered the page token it was asked with")

// ListAllUsers returns an iterator over every user that ListUsers lists
// for req's filters (EmailPrefix, CreatedAfter, CreatedBefore, Role, Ban),
// newest first, PageSize at a time (1-200; 0 means 50). A PageToken in req
// starts the walk there instead of at the first page; req is not changed.
// ctx carries the admin's session token, or an API key ([WithToken]),
// whose roles (and scopes) must grant users:read; opts go to every page's
// call.
//
// The next page is asked for only when the loop has used up the one
// before, with that page's next_page_token, until a page answers none.
// Users created meanwhile do not shift later pages (the token is a
// cursor). A failed call ends the walk with one (nil, err) pair, after the
// users of the pages before: its [ErrorReason] is, for example,
// [ReasonPermissionDenied], [ReasonUnauthenticated] or
// [ReasonInvalidArgument] (a malformed filter or page size). Each range
// over the iterator walks again from req.
//
//	ctx := keyport.WithToken(ctx, adminToken)
//	for managed, err := range keyport.ListAllUsers(ctx, client.Admin, &keyportv1.ListUsersRequest{PageSize: 200}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(managed.GetUser().GetEmail(), managed.GetBan().GetReason())
//	}
func ListAllUsers(ctx context.Context, admin keyportv1.AdminServiceClient, req *keyportv1.ListUsersRequest, opts ...grpc.CallOption) iter.Seq2[*keyportv1.ManagedUser, error] {
	return func(yield func(*keyportv1.ManagedUser, error) bool) {
		page := &keyportv1.ListUsersRequest{}
		if req != nil {
			page = proto.CloneOf(req)
		}
		for {
			resp, err := admin.ListUsers(ctx, page, opts...)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, managed := range resp.GetUsers() {
				if !yield(managed, nil) {
					return
				}
			}
			next := resp.GetNextPageToken()
			if next == "" {
				return
			}
			if next == page.GetPageToken() {
				yield(nil, errRepeatedPageToken)
				return
			}
			page.PageToken = next
		}
	}
}
