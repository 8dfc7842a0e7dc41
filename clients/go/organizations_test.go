package keyport_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	keyport "github.com/keyport/keyport/clients/go"
	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
	"google.golang.org/grpc/codes"
)

// OrganizationService, and Authorize in an organization, each test on a
// keyport of its own ([organizationsEnv]) whose catalogue is posts:read,
// posts:write and billing:read: user grants posts:write only, the
// organization role member posts:read and the custom organization role
// billing billing:read (owner and admin keep "*"). An invitation works for
// a verified address only, so the users are made by the server's admin
// (CreateUser with EmailVerified), the admin by its command line.

// organizationsEnv is the configuration of the organization tests' servers.
var organizationsEnv = []string{
	`KEYPORT_AUTHORIZATION__PERMISSIONS=["posts:read","posts:write","billing:read"]`,
	`KEYPORT_AUTHORIZATION__ROLES={user = ["posts:write"], admin = ["*"]}`,
	`KEYPORT_ORGANIZATIONS__ROLES__MEMBER=["posts:read"]`,
	`KEYPORT_ORGANIZATIONS__ROLES__BILLING=["billing:read"]`,
}

// unknownID is a well-formed id (a UUIDv7) that no organization, user or
// invitation has.
const unknownID = "01890a5d-ac96-7b4b-bcce-b302099a8057"

// orgServer is a running keyport with [organizationsEnv], a client of it
// and its admin.
type orgServer struct {
	c     *keyport.Client
	admin anAdmin
}

func startOrgServer(t *testing.T) orgServer {
	t.Helper()
	srv := startOwnServer(t, organizationsEnv...)
	c, err := keyport.Dial(srv.addr, keyport.WithInsecure())
	if err != nil {
		t.Fatalf("Dial(%q): %v", srv.addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return orgServer{c: c, admin: newAdminOn(t, srv, c)}
}

// person is a signed-in user, with ctx carrying their session.
type person struct {
	id, email, token string
	ctx              context.Context
}

// verified makes a user whose address the admin vouched for
// (EmailVerified), and signs them in.
func (o orgServer) verified(t *testing.T) person {
	t.Helper()
	email := uniqueEmail()
	resp, err := o.c.Admin.CreateUser(o.admin.ctx, &keyportv1.CreateUserRequest{Email: email, Password: password, EmailVerified: true})
	if err != nil {
		t.Fatalf("CreateUser(%s): %v (reason %q)", email, err, keyport.ErrorReason(err))
	}
	grant := signIn(t, o.c, email)
	return person{id: resp.GetUser().GetUser().GetId(), email: email, token: grant.GetToken(), ctx: keyport.WithToken(t.Context(), grant.GetToken())}
}

// slug returns a slug no other test uses.
func slug(label string) string {
	return fmt.Sprintf("%s-%d-%d", label, time.Now().UnixNano(), emailSeq.Add(1))
}

func (o orgServer) organization(t *testing.T, owner person) *keyportv1.Organization {
	t.Helper()
	resp, err := o.c.Organizations.CreateOrganization(owner.ctx, &keyportv1.CreateOrganizationRequest{Name: "Acme", Slug: slug("acme")})
	if err != nil {
		t.Fatalf("CreateOrganization: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	return resp.GetOrganization()
}

func (o orgServer) invite(by person, orgID, email, role string) (*keyportv1.Invitation, error) {
	resp, err := o.c.Organizations.CreateInvitation(by.ctx, &keyportv1.CreateInvitationRequest{OrganizationId: orgID, Email: email, Role: role})
	return resp.GetInvitation(), err
}

func (o orgServer) accept(who person, invitationID string) (*keyportv1.Membership, error) {
	resp, err := o.c.Organizations.AcceptInvitation(who.ctx, &keyportv1.AcceptInvitationRequest{InvitationId: invitationID})
	return resp.GetMembership(), err
}

// join makes who a member of orgID with role, invited by owner.
func (o orgServer) join(t *testing.T, orgID string, owner, who person, role string) {
	t.Helper()
	inv, err := o.invite(owner, orgID, who.email, role)
	if err != nil {
		t.Fatalf("CreateInvitation(%s): %v (reason %q)", role, err, keyport.ErrorReason(err))
	}
	if _, err := o.accept(who, inv.GetId()); err != nil {
		t.Fatalf("AcceptInvitation: %v (reason %q)", err, keyport.ErrorReason(err))
	}
}

// members returns "userID=role" of each member, sorted, as who sees them.
func (o orgServer) members(who person, orgID string) ([]string, error) {
	resp, err := o.c.Organizations.ListMembers(who.ctx, &keyportv1.ListMembersRequest{OrganizationId: orgID})
	var out []string
	for _, m := range resp.GetMembers() {
		out = append(out, m.GetUser().GetId()+"="+m.GetRole())
	}
	slices.Sort(out)
	return out, err
}

func (o orgServer) wantMembers(t *testing.T, who person, orgID string, want ...string) {
	t.Helper()
	got, err := o.members(who, orgID)
	slices.Sort(want)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("ListMembers: %v, %v; want %v", got, err, want)
	}
}

func (o orgServer) authorize(t *testing.T, token, orgID string, permissions ...string) (*keyportv1.AuthorizeResponse, error) {
	return o.c.Authorization.Authorize(t.Context(), &keyportv1.AuthorizeRequest{Token: token, Permissions: permissions, OrganizationId: orgID})
}

// decided authorizes and returns the decisions, failing the test on an error.
func (o orgServer) decided(t *testing.T, token, orgID string, permissions ...string) (*keyportv1.AuthorizeResponse, []string) {
	t.Helper()
	resp, err := o.authorize(t, token, orgID, permissions...)
	if err != nil {
		t.Fatalf("Authorize(%v in %q): %v (reason %q)", permissions, orgID, err, keyport.ErrorReason(err))
	}
	return resp, decisions(resp)
}

func wantFields(t *testing.T, what string, err error, fields ...string) {
	t.Helper()
	if got := violatedFields(err); !slices.Equal(got, fields) {
		t.Errorf("%s: violations %v, want %v", what, got, fields)
	}
}

func TestOrganizationCreate(t *testing.T) {
	o := startOrgServer(t)
	owner := o.verified(t)
	s := slug("acme")
	resp, err := o.c.Organizations.CreateOrganization(owner.ctx, &keyportv1.CreateOrganizationRequest{Name: "Acme", Slug: s})
	if err != nil {
		t.Fatalf("CreateOrganization: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	org := resp.GetOrganization()
	if !uuidV7.MatchString(org.GetId()) || org.GetName() != "Acme" || org.GetSlug() != s ||
		time.Since(org.GetCreatedAt().AsTime()).Abs() > time.Minute {
		t.Errorf("CreateOrganization answered %v", org)
	}
	mine, err := o.c.Organizations.ListMyOrganizations(owner.ctx, &keyportv1.ListMyOrganizationsRequest{})
	if err != nil || len(mine.GetMemberships()) != 1 {
		t.Fatalf("ListMyOrganizations: %v, %v", mine, err)
	}
	if m := mine.GetMemberships()[0]; m.GetOrganization().GetId() != org.GetId() || m.GetRole() != "owner" || m.GetUser() != nil {
		t.Errorf("the owner's membership %v, want owner without user", m)
	}
	o.wantMembers(t, owner, org.GetId(), owner.id+"=owner")

	renamed, err := o.c.Organizations.RenameOrganization(owner.ctx, &keyportv1.RenameOrganizationRequest{OrganizationId: org.GetId(), Name: "Acme Inc"})
	if r := renamed.GetOrganization(); err != nil || r.GetId() != org.GetId() || r.GetName() != "Acme Inc" || r.GetSlug() != s {
		t.Errorf("RenameOrganization: %v, %v", r, err)
	}

	other := o.verified(t)
	create := func(name, slug string) error {
		_, err := o.c.Organizations.CreateOrganization(other.ctx, &keyportv1.CreateOrganizationRequest{Name: name, Slug: slug})
		return err
	}
	wantError(t, "another user's slug", create("Another", s), codes.AlreadyExists, keyport.ReasonSlugTaken)
	for _, bad := range []string{"Bad Slug", "UPPER", "a_b", "", strings.Repeat("a", 65)} {
		err := create("X", bad)
		wantError(t, "slug "+bad, err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
		wantFields(t, "slug "+bad, err, "slug")
	}
	for _, name := range []string{"", strings.Repeat("n", 65)} {
		err := create(name, slug("named"))
		wantError(t, fmt.Sprintf("a name of %d", len(name)), err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
		wantFields(t, "name", err, "name")
	}
	if mine, err := o.c.Organizations.ListMyOrganizations(other.ctx, &keyportv1.ListMyOrganizationsRequest{}); err != nil || len(mine.GetMemberships()) != 0 {
		t.Errorf("a refused call made an organization: %v, %v", mine, err)
	}

	if _, err := o.c.Organizations.DeleteOrganization(owner.ctx, &keyportv1.DeleteOrganizationRequest{OrganizationId: org.GetId()}); err != nil {
		t.Fatalf("DeleteOrganization: %v", err)
	}
	if mine, err := o.c.Organizations.ListMyOrganizations(owner.ctx, &keyportv1.ListMyOrganizationsRequest{}); err != nil || len(mine.GetMemberships()) != 0 {
		t.Errorf("after the deletion: %v, %v", mine, err)
	}
	_, err = o.members(owner, org.GetId())
	wantError(t, "a deleted organization", err, codes.NotFound, keyport.ReasonOrganizationNotFound)
}

func TestOrganizationNotFoundForANonMember(t *testing.T) {
	o := startOrgServer(t)
	owner, outsider := o.verified(t), o.verified(t)
	org := o.organization(t, owner)
	orgs := o.c.Organizations
	ctx := outsider.ctx
	for _, id := range []string{org.GetId(), unknownID} {
		calls := map[string]func() error{
			"ListMembers": func() error {
				_, err := orgs.ListMembers(ctx, &keyportv1.ListMembersRequest{OrganizationId: id})
				return err
			},
			"RenameOrganization": func() error {
				_, err := orgs.RenameOrganization(ctx, &keyportv1.RenameOrganizationRequest{OrganizationId: id, Name: "Mine"})
				return err
			},
			"DeleteOrganization": func() error {
				_, err := orgs.DeleteOrganization(ctx, &keyportv1.DeleteOrganizationRequest{OrganizationId: id})
				return err
			},
			"ListInvitations": func() error {
				_, err := orgs.ListInvitations(ctx, &keyportv1.ListInvitationsRequest{OrganizationId: id})
				return err
			},
			"CreateInvitation": func() error {
				_, err := o.invite(outsider, id, outsider.email, "member")
				return err
			},
			"LeaveOrganization": func() error {
				_, err := orgs.LeaveOrganization(ctx, &keyportv1.LeaveOrganizationRequest{OrganizationId: id})
				return err
			},
			"SetActiveOrganization": func() error {
				_, err := orgs.SetActiveOrganization(ctx, &keyportv1.SetActiveOrganizationRequest{OrganizationId: id})
				return err
			},
		}
		for what, call := range calls {
			wantError(t, what+" of "+id, call(), codes.NotFound, keyport.ReasonOrganizationNotFound)
		}
	}
	o.wantMembers(t, owner, org.GetId(), owner.id+"=owner")

	_, err := o.members(owner, "nope")
	wantError(t, "a malformed id", err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
	wantFields(t, "a malformed id", err, "organization_id")
	_, err = orgs.ListMyOrganizations(t.Context(), &keyportv1.ListMyOrganizationsRequest{})
	wantError(t, "no session", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
	key, err := o.c.APIKeys.CreateApiKey(owner.ctx, &keyportv1.CreateApiKeyRequest{Name: "ci", Scopes: []string{"posts:write"}})
	if err != nil {
		t.Fatalf("CreateApiKey: %v", err)
	}
	byKey := keyport.WithToken(t.Context(), key.GetSecret())
	_, err = orgs.ListMyOrganizations(byKey, &keyportv1.ListMyOrganizationsRequest{})
	wantError(t, "a key", err, codes.Unauthenticated, keyport.ReasonAPIKeyNotAccepted)
	_, err = orgs.ListMembers(byKey, &keyportv1.ListMembersRequest{OrganizationId: org.GetId()})
	wantError(t, "the owner's key", err, codes.Unauthenticated, keyport.ReasonAPIKeyNotAccepted)
}

func TestOrganizationInvitation(t *testing.T) {
	o := startOrgServer(t)
	owner, invitee, stranger := o.verified(t), o.verified(t), o.verified(t)
	org := o.organization(t, owner)
	orgID := org.GetId()
	orgs := o.c.Organizations

	inv, err := o.invite(owner, orgID, strings.ToUpper(invitee.email), "member")
	if err != nil {
		t.Fatalf("CreateInvitation: %v", err)
	}
	if !uuidV7.MatchString(inv.GetId()) || inv.GetOrganizationId() != orgID || inv.GetEmail() != invitee.email ||
		inv.GetRole() != "member" || inv.GetInvitedByUserId() != owner.id {
		t.Errorf("CreateInvitation answered %v (the address normalised)", inv)
	}
	if life := inv.GetExpiresAt().AsTime().Sub(inv.GetCreatedAt().AsTime()); (life - 7*24*time.Hour).Abs() > time.Minute {
		t.Errorf("lifetime %v, want organizations.invitation_ttl_days (7)", life)
	}
	pending, err := orgs.ListInvitations(owner.ctx, &keyportv1.ListInvitationsRequest{OrganizationId: orgID})
	if err != nil || len(pending.GetInvitations()) != 1 || pending.GetInvitations()[0].GetId() != inv.GetId() {
		t.Errorf("ListInvitations: %v, %v", pending, err)
	}

	_, err = o.accept(stranger, inv.GetId())
	wantError(t, "another user's invitation", err, codes.FailedPrecondition, keyport.ReasonInvitationInvalid)
	_, err = o.accept(owner, inv.GetId())
	wantError(t, "the inviter", err, codes.FailedPrecondition, keyport.ReasonInvitationInvalid)
	m, err := o.accept(invitee, inv.GetId())
	if err != nil {
		t.Fatalf("AcceptInvitation: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	if m.GetOrganization().GetId() != orgID || m.GetRole() != "member" || time.Since(m.GetJoinedAt().AsTime()).Abs() > time.Minute {
		t.Errorf("AcceptInvitation answered %v", m)
	}
	_, err = o.accept(invitee, inv.GetId())
	wantError(t, "reused", err, codes.FailedPrecondition, keyport.ReasonInvitationInvalid)
	o.wantMembers(t, invitee, orgID, owner.id+"=owner", invitee.id+"=member")
	if pending, err := orgs.ListInvitations(owner.ctx, &keyportv1.ListInvitationsRequest{OrganizationId: orgID}); err != nil || len(pending.GetInvitations()) != 0 {
		t.Errorf("an accepted invitation is still pending: %v, %v", pending, err)
	}

	// A member sees the members but manages nothing.
	_, err = o.invite(invitee, orgID, stranger.email, "member")
	wantError(t, "a member invites", err, codes.PermissionDenied, keyport.ReasonPermissionDenied)
	_, err = orgs.ListInvitations(invitee.ctx, &keyportv1.ListInvitationsRequest{OrganizationId: orgID})
	wantError(t, "a member lists the invitations", err, codes.PermissionDenied, keyport.ReasonPermissionDenied)

	// An address nobody verified gets nothing from its invitation.
	email, up := signUp(t, o.c)
	unverified := person{email: email, ctx: keyport.WithToken(t.Context(), up.GetSession().GetToken())}
	forUnverified, err := o.invite(owner, orgID, email, "member")
	if err != nil {
		t.Fatal(err)
	}
	_, err = o.accept(unverified, forUnverified.GetId())
	wantError(t, "an unverified address", err, codes.FailedPrecondition, keyport.ReasonInvitationInvalid)

	// Revoked, unknown, malformed.
	revoked, err := o.invite(owner, orgID, stranger.email, "member")
	if err != nil {
		t.Fatal(err)
	}
	revoke := &keyportv1.RevokeInvitationRequest{OrganizationId: orgID, InvitationId: revoked.GetId()}
	if _, err := orgs.RevokeInvitation(owner.ctx, revoke); err != nil {
		t.Fatalf("RevokeInvitation: %v", err)
	}
	_, err = o.accept(stranger, revoked.GetId())
	wantError(t, "revoked", err, codes.FailedPrecondition, keyport.ReasonInvitationInvalid)
	_, err = orgs.RevokeInvitation(owner.ctx, revoke)
	wantError(t, "revoked twice", err, codes.FailedPrecondition, keyport.ReasonInvitationInvalid)
	_, err = o.accept(stranger, unknownID)
	wantError(t, "unknown", err, codes.FailedPrecondition, keyport.ReasonInvitationInvalid)
	_, err = o.accept(stranger, "nope")
	wantError(t, "malformed", err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
	wantFields(t, "malformed", err, "invitation_id")
	for _, role := range []string{"owner", "wizard"} {
		_, err = o.invite(owner, orgID, stranger.email, role)
		wantError(t, "role "+role, err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
		wantFields(t, "role "+role, err, "role")
	}
	_, err = o.invite(owner, orgID, "not an email", "member")
	wantError(t, "a malformed email", err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
	wantFields(t, "a malformed email", err, "email")
	o.wantMembers(t, owner, orgID, owner.id+"=owner", invitee.id+"=member")
}

func TestOrganizationRolesAndOwnership(t *testing.T) {
	o := startOrgServer(t)
	owner, deputy, member, outsider := o.verified(t), o.verified(t), o.verified(t), o.verified(t)
	orgID := o.organization(t, owner).GetId()
	orgs := o.c.Organizations
	o.join(t, orgID, owner, deputy, "admin")

	_, err := o.invite(deputy, orgID, outsider.email, "admin")
	wantError(t, "an admin invites an admin", err, codes.PermissionDenied, keyport.ReasonPermissionDenied)
	o.join(t, orgID, deputy, member, "member")

	setRole := func(by person, userID, role string) (*keyportv1.Membership, error) {
		resp, err := orgs.SetMemberRole(by.ctx, &keyportv1.SetMemberRoleRequest{OrganizationId: orgID, UserId: userID, Role: role})
		return resp.GetMember(), err
	}
	if m, err := setRole(deputy, member.id, "billing"); err != nil || m.GetUser().GetId() != member.id || m.GetRole() != "billing" {
		t.Errorf("an admin's SetMemberRole(billing): %v, %v", m, err)
	}
	_, err = setRole(member, deputy.id, "member")
	wantError(t, "a member sets a role", err, codes.PermissionDenied, keyport.ReasonPermissionDenied)
	for _, role := range []string{"owner", "wizard"} {
		_, err = setRole(owner, member.id, role)
		wantError(t, "role "+role, err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
		wantFields(t, "role "+role, err, "role")
	}
	_, err = setRole(owner, outsider.id, "member")
	wantError(t, "not a member", err, codes.NotFound, keyport.ReasonMemberNotFound)
	_, err = setRole(owner, owner.id, "admin")
	wantError(t, "the owner's own role", err, codes.FailedPrecondition, keyport.ReasonLastOwner)

	leave := &keyportv1.LeaveOrganizationRequest{OrganizationId: orgID}
	_, err = orgs.LeaveOrganization(owner.ctx, leave)
	wantError(t, "the owner leaves", err, codes.FailedPrecondition, keyport.ReasonLastOwner)
	_, err = orgs.RemoveMember(owner.ctx, &keyportv1.RemoveMemberRequest{OrganizationId: orgID, UserId: owner.id})
	wantError(t, "the owner removed", err, codes.FailedPrecondition, keyport.ReasonLastOwner)
	_, err = orgs.DeleteOrganization(deputy.ctx, &keyportv1.DeleteOrganizationRequest{OrganizationId: orgID})
	wantError(t, "an admin deletes", err, codes.PermissionDenied, keyport.ReasonPermissionDenied)

	transfer := func(by person, userID string) error {
		_, err := orgs.TransferOwnership(by.ctx, &keyportv1.TransferOwnershipRequest{OrganizationId: orgID, UserId: userID})
		return err
	}
	wantError(t, "an admin transfers", transfer(deputy, deputy.id), codes.PermissionDenied, keyport.ReasonPermissionDenied)
	wantError(t, "to a non-member", transfer(owner, outsider.id), codes.NotFound, keyport.ReasonMemberNotFound)
	err = transfer(owner, owner.id)
	wantError(t, "to themselves", err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
	wantFields(t, "to themselves", err, "user_id")

	if err := transfer(owner, deputy.id); err != nil {
		t.Fatalf("TransferOwnership: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	o.wantMembers(t, deputy, orgID, owner.id+"=admin", deputy.id+"=owner", member.id+"=billing") // the caller becomes an admin
	if _, err := orgs.LeaveOrganization(owner.ctx, leave); err != nil {
		t.Fatalf("the former owner leaves: %v (reason %q)", err, keyport.ErrorReason(err))
	}
	_, err = o.members(owner, orgID)
	wantError(t, "after leaving", err, codes.NotFound, keyport.ReasonOrganizationNotFound)
	if mine, err := orgs.ListMyOrganizations(owner.ctx, &keyportv1.ListMyOrganizationsRequest{}); err != nil || len(mine.GetMemberships()) != 0 {
		t.Errorf("after leaving: %v, %v", mine, err)
	}

	remove := &keyportv1.RemoveMemberRequest{OrganizationId: orgID, UserId: member.id}
	if _, err := orgs.RemoveMember(deputy.ctx, remove); err != nil {
		t.Fatalf("RemoveMember: %v", err)
	}
	_, err = orgs.RemoveMember(deputy.ctx, remove)
	wantError(t, "removed twice", err, codes.NotFound, keyport.ReasonMemberNotFound)
	o.wantMembers(t, deputy, orgID, deputy.id+"=owner")
}

func TestAuthorizeInAnOrganization(t *testing.T) {
	o := startOrgServer(t)
	owner, member, outsider := o.verified(t), o.verified(t), o.verified(t)
	orgID := o.organization(t, owner).GetId()
	o.join(t, orgID, owner, member, "member")

	inside, got := o.decided(t, member.token, orgID, "posts:read", "posts:write")
	if !inside.GetAllowed() || !slices.Equal(got, []string{"posts:read=true", "posts:write=true"}) ||
		inside.GetOrganizationId() != orgID || inside.GetOrganizationRole() != "member" ||
		!slices.Equal(inside.GetGranted(), []string{"posts:read", "posts:write"}) || inside.GetUser().GetId() != member.id {
		t.Errorf("a member in the organization: %v, organization %q role %q granted %v",
			got, inside.GetOrganizationId(), inside.GetOrganizationRole(), inside.GetGranted())
	}
	outside, got := o.decided(t, member.token, "", "posts:read", "posts:write")
	if !slices.Equal(got, []string{"posts:read=false", "posts:write=true"}) || outside.GetOrganizationId() != "" || outside.GetOrganizationRole() != "" {
		t.Errorf("without the organization: %v, organization %q role %q", got, outside.GetOrganizationId(), outside.GetOrganizationRole())
	}
	stranger, got := o.decided(t, outsider.token, orgID, "posts:read", "posts:write")
	if !slices.Equal(got, []string{"posts:read=false", "posts:write=true"}) || stranger.GetOrganizationRole() != "" {
		t.Errorf("a non-member (a deny, not an error): %v, role %q", got, stranger.GetOrganizationRole())
	}

	// The owner's "*" stops at Keyport's own permissions.
	owned, got := o.decided(t, owner.token, orgID, "billing:read", "users:read", "sessions:revoke", "audit:read")
	if want := []string{"billing:read=true", "users:read=false", "sessions:revoke=false", "audit:read=false"}; !slices.Equal(got, want) || owned.GetOrganizationRole() != "owner" {
		t.Errorf("the owner: %v (role %q), want %v", got, owned.GetOrganizationRole(), want)
	}

	// A custom role: billing grants billing:read and nothing of member's.
	if _, err := o.c.Organizations.SetMemberRole(owner.ctx, &keyportv1.SetMemberRoleRequest{OrganizationId: orgID, UserId: member.id, Role: "billing"}); err != nil {
		t.Fatalf("SetMemberRole(billing): %v", err)
	}
	billing, got := o.decided(t, member.token, orgID, "billing:read", "posts:read")
	if !slices.Equal(got, []string{"billing:read=true", "posts:read=false"}) || billing.GetOrganizationRole() != "billing" {
		t.Errorf("billing: %v, role %q", got, billing.GetOrganizationRole())
	}

	key, err := o.c.APIKeys.CreateApiKey(owner.ctx, &keyportv1.CreateApiKeyRequest{Name: "ci", Scopes: []string{"posts:write"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = o.authorize(t, key.GetSecret(), orgID, "posts:write")
	wantError(t, "a key in an organization", err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
	wantFields(t, "a key in an organization", err, "organization_id")
	_, err = o.authorize(t, member.token, "nope", "posts:read")
	wantError(t, "a malformed organization id", err, codes.InvalidArgument, keyport.ReasonInvalidArgument)
	wantFields(t, "a malformed organization id", err, "organization_id")
}

func TestActiveOrganization(t *testing.T) {
	o := startOrgServer(t)
	owner, member := o.verified(t), o.verified(t)
	orgID := o.organization(t, owner).GetId()
	o.join(t, orgID, owner, member, "member")
	otherSession := signIn(t, o.c, member.email).GetToken()
	active := func(token string) string {
		t.Helper()
		resp, err := o.c.Sessions.GetSession(t.Context(), &keyportv1.GetSessionRequest{Token: token})
		if err != nil {
			t.Fatalf("GetSession: %v", err)
		}
		return resp.GetSession().GetActiveOrganizationId()
	}
	setActive := func(id string) {
		t.Helper()
		if _, err := o.c.Organizations.SetActiveOrganization(member.ctx, &keyportv1.SetActiveOrganizationRequest{OrganizationId: id}); err != nil {
			t.Fatalf("SetActiveOrganization(%q): %v (reason %q)", id, err, keyport.ErrorReason(err))
		}
	}

	if got := active(member.token); got != "" {
		t.Errorf("a new session's active organization is %q", got)
	}
	if resp, _ := o.decided(t, member.token, "", "posts:read"); resp.GetAllowed() {
		t.Error("posts:read allowed before choosing the organization")
	}
	setActive(orgID)
	if got := active(member.token); got != orgID {
		t.Errorf("GetSession: active organization %q, want %q", got, orgID)
	}
	resp, _ := o.decided(t, member.token, "", "posts:read")
	if !resp.GetAllowed() || resp.GetOrganizationId() != orgID || resp.GetOrganizationRole() != "member" || resp.GetSession().GetActiveOrganizationId() != orgID {
		t.Errorf("in the active organization: allowed %v, organization %q role %q", resp.GetAllowed(), resp.GetOrganizationId(), resp.GetOrganizationRole())
	}
	if got := active(otherSession); got != "" {
		t.Errorf("the member's other session has %q active, want none", got)
	}
	if resp, _ := o.decided(t, otherSession, "", "posts:read"); resp.GetAllowed() {
		t.Error("the other session is allowed posts:read")
	}

	setActive("")
	if got := active(member.token); got != "" {
		t.Errorf("after choosing none: %q", got)
	}
	if resp, _ := o.decided(t, member.token, "", "posts:read"); resp.GetAllowed() || resp.GetOrganizationId() != "" {
		t.Errorf("after choosing none: allowed %v in %q", resp.GetAllowed(), resp.GetOrganizationId())
	}
}

func TestOrganizationRemovalIsPushed(t *testing.T) {
	o := startOrgServer(t)
	owner, member := o.verified(t), o.verified(t)
	orgID := o.organization(t, owner).GetId()
	o.join(t, orgID, owner, member, "member")
	if resp, _ := o.decided(t, member.token, orgID, "posts:read"); !resp.GetAllowed() {
		t.Fatal("the member is not allowed posts:read before the removal")
	}

	// Loopback is in the default server.trusted_proxies.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	stream, err := o.c.Sessions.WatchSessionEvents(ctx, &keyportv1.WatchSessionEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := stream.Recv(); err != nil || first.GetReady() == nil {
		t.Fatalf("first event %v, %v; want ready", first, err)
	}
	if _, err := o.c.Organizations.RemoveMember(owner.ctx, &keyportv1.RemoveMemberRequest{OrganizationId: orgID, UserId: member.id}); err != nil {
		t.Fatalf("RemoveMember: %v", err)
	}
	for {
		event, err := stream.Recv()
		if err != nil {
			t.Fatalf("before the member's UserChanged: %v", err)
		}
		if changed := event.GetUserChanged(); changed != nil && changed.GetUserId() == member.id {
			if changed.GetChange() != keyportv1.UserChange_USER_CHANGE_ORGANIZATIONS {
				t.Errorf("change %v, want USER_CHANGE_ORGANIZATIONS", changed.GetChange())
			}
			break
		}
	}
	cancel()
	if keyportv1.UserChange_USER_CHANGE_ORGANIZATIONS != 9 {
		t.Errorf("USER_CHANGE_ORGANIZATIONS is %d", keyportv1.UserChange_USER_CHANGE_ORGANIZATIONS)
	}
	if resp, _ := o.decided(t, member.token, orgID, "posts:read"); resp.GetAllowed() || resp.GetOrganizationRole() != "" {
		t.Errorf("after the removal: allowed %v, role %q", resp.GetAllowed(), resp.GetOrganizationRole())
	}
	_, err = o.members(member, orgID)
	wantError(t, "the removed member", err, codes.NotFound, keyport.ReasonOrganizationNotFound)
}

func TestOrganizationParallelAccepts(t *testing.T) {
	o := startOrgServer(t)
	owner, invitee := o.verified(t), o.verified(t)
	orgID := o.organization(t, owner).GetId()
	inv, err := o.invite(owner, orgID, invitee.email, "member")
	if err != nil {
		t.Fatal(err)
	}
	accept := func() error {
		_, err := o.accept(invitee, inv.GetId())
		return err
	}
	errs := inParallel(accept, accept, accept, accept, accept, accept, accept, accept)
	succeeded := 0
	for i, err := range errs {
		if err == nil {
			succeeded++
			continue
		}
		// The losers find the invitation used, or the caller a member already.
		if reason := keyport.ErrorReason(err); reason != keyport.ReasonInvitationInvalid && reason != keyport.ReasonInvalidArgument {
			t.Errorf("accept %d: %v (reason %q)", i, err, reason)
		}
	}
	if succeeded != 1 {
		t.Errorf("%d of 8 parallel accepts succeeded, want exactly 1", succeeded)
	}
	o.wantMembers(t, owner, orgID, owner.id+"=owner", invitee.id+"=member")
}
