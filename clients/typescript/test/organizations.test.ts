/**
 * `OrganizationService`, and `Authorize` in an organization, against a live
 * keyport of their own (see support/keyport-server.ts) whose catalogue is
 * `posts:read`, `posts:write` and `billing:read`: `user` grants
 * `posts:write` only, the organization role `member` `posts:read` and the
 * custom organization role `billing` `billing:read` (`owner` and `admin`
 * keep `*`). An invitation works for a verified address only, so the users
 * are made by an admin (`createUser` with `emailVerified`), the admin by the
 * server's own command line. Also the README's calls
 * (examples/organizations.ts).
 */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { before, describe, it } from "node:test";

import { timestampDate } from "@bufbuild/protobuf/wkt";

import {
  type AuthorizeResponse,
  type CallOptions,
  Code,
  ConnectError,
  errorReason,
  fieldViolations,
  type KeyportClient,
  type Membership,
  UserChange,
  withSession,
} from "../src/index.js";
import { allowedIn, createTeam, invite, join } from "../examples/organizations.js";
import { failure, serveKeyport, uniqueEmail } from "./support/calls.js";
import { AUTHORIZATION_ENV, keyportAdmin, type KeyportServer } from "./support/keyport-server.js";

const PASSWORD = "correct horse battery staple";
/** The bootstrapped admin's password: long and uncommon enough for the policy. */
const ADMIN_PASSWORD = "a-long-unusual-passphrase-42";
/** The server's catalogue and roles, global and in organizations. */
const ORGANIZATIONS_ENV = {
  ...AUTHORIZATION_ENV,
  KEYPORT_AUTHORIZATION__PERMISSIONS: '["posts:read","posts:write","billing:read"]',
  KEYPORT_AUTHORIZATION__ROLES: '{user = ["posts:write"], admin = ["*"]}',
  KEYPORT_ORGANIZATIONS__ROLES__MEMBER: '["posts:read"]',
  KEYPORT_ORGANIZATIONS__ROLES__BILLING: '["billing:read"]',
};
/** An id (a UUIDv7) that no organization, user or invitation has. */
const UNKNOWN_ID = "01890a5d-ac96-7b4b-bcce-b302099a8057";
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const DAY_MS = 86_400_000;

/** Expects `call` to fail with `reason` and gRPC `code`, and returns the error. */
async function refused(call: () => Promise<unknown>, reason: string, code: Code, what: string): Promise<ConnectError> {
  const err = await failure(call);
  assert.equal(errorReason(err), reason, `${what}: ${err.message}`);
  assert.equal(err.code, code, `${what}: code`);
  return err;
}

/** The fields of an `INVALID_ARGUMENT` error. */
const fields = (err: ConnectError): string[] => fieldViolations(err).map((v) => v.field);
/** An answer's decisions as `permission=allowed`. */
const decided = (answer: AuthorizeResponse): string[] => answer.decisions.map((d) => `${d.permission}=${d.allowed}`);
const slugOf = (label: string): string => `${label}-${randomUUID().slice(0, 12)}`;
/** Members as `userId=role`, sorted. */
const roles = (members: Membership[]): string[] => members.map((m) => `${m.user!.id}=${m.role}`).sort();

/** A signed-in user: id, email, session token and the call options that present it. */
interface Person {
  readonly id: string;
  readonly email: string;
  readonly token: string;
  readonly as: CallOptions;
}

describe("OrganizationService", () => {
  let server: KeyportServer;
  let keyport: KeyportClient;
  let asAdmin: CallOptions;

  serveKeyport((live) => ({ server, keyport } = live), ORGANIZATIONS_ENV);

  before(async () => {
    const email = uniqueEmail("root");
    await keyportAdmin(
      server,
      ["create-user", "--email", email, "--role", "admin", "--password-stdin", "--email-verified"],
      `${ADMIN_PASSWORD}\n`,
    );
    const { outcome } = await keyport.sessions.signIn({ email, password: ADMIN_PASSWORD });
    assert.equal(outcome.case, "session", "the bootstrapped admin signs in with a password alone");
    asAdmin = withSession(outcome.value.token);
  });

  /** A user whose address the admin vouched for (`emailVerified`), signed in. */
  async function verified(label: string): Promise<Person> {
    const email = uniqueEmail(label);
    const { user } = await keyport.admin.createUser({ email, password: PASSWORD, emailVerified: true }, asAdmin);
    const { outcome } = await keyport.sessions.signIn({ email, password: PASSWORD });
    assert.equal(outcome.case, "session");
    return { id: user!.user!.id, email, token: outcome.value.token, as: withSession(outcome.value.token) };
  }

  async function organization(owner: Person, label = "acme") {
    const { organization } = await keyport.organizations.createOrganization({ name: label, slug: slugOf(label) }, owner.as);
    return organization!;
  }

  async function invitation(organizationId: string, by: Person, email: string, role = "member") {
    const { invitation } = await keyport.organizations.createInvitation({ organizationId, email, role }, by.as);
    return invitation!;
  }

  const accept = (invitationId: string, who: Person) => keyport.organizations.acceptInvitation({ invitationId }, who.as);

  async function joined(organizationId: string, owner: Person, who: Person, role = "member"): Promise<void> {
    await accept((await invitation(organizationId, owner, who.email, role)).id, who);
  }

  async function members(organizationId: string, who: Person): Promise<string[]> {
    return roles((await keyport.organizations.listMembers({ organizationId }, who.as)).members);
  }

  const authorize = (token: string, permissions: string[], organizationId = "") =>
    keyport.authorization.authorize({ token, permissions, organizationId });

  it("creates an organization with its creator as owner, renames and deletes it; SLUG_TAKEN, INVALID_ARGUMENT", async () => {
    const owner = await verified("create");
    const slug = slugOf("acme");
    const { organization: org } = await keyport.organizations.createOrganization({ name: "Acme", slug }, owner.as);
    assert.match(org!.id, UUID_V7);
    assert.equal(org!.name, "Acme");
    assert.equal(org!.slug, slug);
    assert.ok(Math.abs(timestampDate(org!.createdAt!).getTime() - Date.now()) < 60_000, "created now");

    const { memberships } = await keyport.organizations.listMyOrganizations({}, owner.as);
    assert.deepEqual(
      memberships.map((m) => `${m.organization?.id}=${m.role}`),
      [`${org!.id}=owner`],
    );
    assert.equal(memberships[0]!.user, undefined, "the caller's own memberships, without user");
    assert.deepEqual(await members(org!.id, owner), [`${owner.id}=owner`]);

    const { organization: renamed } = await keyport.organizations.renameOrganization({ organizationId: org!.id, name: "Acme Inc" }, owner.as);
    assert.deepEqual([renamed!.id, renamed!.name, renamed!.slug], [org!.id, "Acme Inc", slug]);

    const other = await verified("create-other");
    await refused(
      () => keyport.organizations.createOrganization({ name: "Another", slug }, other.as),
      "SLUG_TAKEN",
      Code.AlreadyExists,
      "another user's slug",
    );
    for (const bad of ["Bad Slug", "UPPER", "a_b", "", "a".repeat(65)]) {
      const err = await refused(
        () => keyport.organizations.createOrganization({ name: "X", slug: bad }, other.as),
        "INVALID_ARGUMENT",
        Code.InvalidArgument,
        JSON.stringify(bad),
      );
      assert.deepEqual(fields(err), ["slug"]);
    }
    for (const name of ["", "n".repeat(65)]) {
      const err = await refused(
        () => keyport.organizations.createOrganization({ name, slug: slugOf("named") }, other.as),
        "INVALID_ARGUMENT",
        Code.InvalidArgument,
        `name of ${name.length}`,
      );
      assert.deepEqual(fields(err), ["name"]);
    }
    assert.deepEqual((await keyport.organizations.listMyOrganizations({}, other.as)).memberships, [], "no refused call made one");

    await keyport.organizations.deleteOrganization({ organizationId: org!.id }, owner.as);
    assert.deepEqual((await keyport.organizations.listMyOrganizations({}, owner.as)).memberships, []);
    await refused(() => members(org!.id, owner), "ORGANIZATION_NOT_FOUND", Code.NotFound, "a deleted organization");
  });

  it("answers a non-member ORGANIZATION_NOT_FOUND exactly as for an unknown organization; a key API_KEY_NOT_ACCEPTED", async () => {
    const owner = await verified("outsider-owner");
    const outsider = await verified("outsider");
    const org = await organization(owner);
    const orgs = keyport.organizations;
    for (const organizationId of [org.id, UNKNOWN_ID]) {
      const calls: Record<string, () => Promise<unknown>> = {
        ListMembers: () => orgs.listMembers({ organizationId }, outsider.as),
        RenameOrganization: () => orgs.renameOrganization({ organizationId, name: "Mine" }, outsider.as),
        DeleteOrganization: () => orgs.deleteOrganization({ organizationId }, outsider.as),
        ListInvitations: () => orgs.listInvitations({ organizationId }, outsider.as),
        CreateInvitation: () => orgs.createInvitation({ organizationId, email: outsider.email, role: "member" }, outsider.as),
        LeaveOrganization: () => orgs.leaveOrganization({ organizationId }, outsider.as),
        SetActiveOrganization: () => orgs.setActiveOrganization({ organizationId }, outsider.as),
      };
      for (const [what, call] of Object.entries(calls)) {
        await refused(call, "ORGANIZATION_NOT_FOUND", Code.NotFound, `${what} of ${organizationId}`);
      }
    }
    assert.deepEqual(await members(org.id, owner), [`${owner.id}=owner`], "unchanged");

    const malformed = await refused(() => orgs.listMembers({ organizationId: "nope" }, owner.as), "INVALID_ARGUMENT", Code.InvalidArgument, "malformed");
    assert.deepEqual(fields(malformed), ["organization_id"]);
    await refused(() => orgs.listMyOrganizations({}), "UNAUTHENTICATED", Code.Unauthenticated, "no session");
    const { secret } = await keyport.apiKeys.createApiKey({ name: "ci", scopes: ["posts:write"] }, owner.as);
    await refused(() => orgs.listMyOrganizations({}, withSession(secret)), "API_KEY_NOT_ACCEPTED", Code.Unauthenticated, "a key");
    await refused(
      () => orgs.listMembers({ organizationId: org.id }, withSession(secret)),
      "API_KEY_NOT_ACCEPTED",
      Code.Unauthenticated,
      "the owner's key",
    );
  });

  it("makes an invitation work once, and only for its verified address: INVITATION_INVALID otherwise", async () => {
    const owner = await verified("inviter");
    const invitee = await verified("invitee");
    const stranger = await verified("stranger");
    const org = await organization(owner);
    const orgs = keyport.organizations;

    const invited = await invitation(org.id, owner, invitee.email.toUpperCase());
    assert.match(invited.id, UUID_V7);
    assert.equal(invited.organizationId, org.id);
    assert.equal(invited.email, invitee.email, "normalised");
    assert.equal(invited.role, "member");
    assert.equal(invited.invitedByUserId, owner.id);
    const lifetime = timestampDate(invited.expiresAt!).getTime() - timestampDate(invited.createdAt!).getTime();
    assert.ok(Math.abs(lifetime - 7 * DAY_MS) < 60_000, `organizations.invitation_ttl_days (7), not ${lifetime} ms`);
    assert.deepEqual(
      (await orgs.listInvitations({ organizationId: org.id }, owner.as)).invitations.map((i) => i.id),
      [invited.id],
    );

    await refused(() => accept(invited.id, stranger), "INVITATION_INVALID", Code.FailedPrecondition, "another user's invitation");
    await refused(() => accept(invited.id, owner), "INVITATION_INVALID", Code.FailedPrecondition, "the inviter");
    const { membership } = await accept(invited.id, invitee);
    assert.equal(membership?.organization?.id, org.id);
    assert.equal(membership?.role, "member");
    assert.ok(Math.abs(timestampDate(membership!.joinedAt!).getTime() - Date.now()) < 60_000, "joined now");
    await refused(() => accept(invited.id, invitee), "INVITATION_INVALID", Code.FailedPrecondition, "reused");
    assert.deepEqual(await members(org.id, invitee), [`${owner.id}=owner`, `${invitee.id}=member`].sort());
    assert.deepEqual((await orgs.listInvitations({ organizationId: org.id }, owner.as)).invitations, [], "no longer pending");

    // A member sees the members but manages nothing.
    await refused(() => invitation(org.id, invitee, stranger.email), "PERMISSION_DENIED", Code.PermissionDenied, "a member invites");
    await refused(
      () => orgs.listInvitations({ organizationId: org.id }, invitee.as),
      "PERMISSION_DENIED",
      Code.PermissionDenied,
      "a member lists the invitations",
    );

    // An address nobody verified gets nothing from its invitation.
    const email = uniqueEmail("unverified");
    const { session } = await keyport.users.signUp({ email, password: PASSWORD, name: "" });
    const unverified = { id: "", email, token: session!.token, as: withSession(session!.token) };
    const forUnverified = await invitation(org.id, owner, email);
    await refused(() => accept(forUnverified.id, unverified), "INVITATION_INVALID", Code.FailedPrecondition, "an unverified address");

    // Revoked, unknown, malformed.
    const revoked = await invitation(org.id, owner, stranger.email);
    await orgs.revokeInvitation({ organizationId: org.id, invitationId: revoked.id }, owner.as);
    await refused(() => accept(revoked.id, stranger), "INVITATION_INVALID", Code.FailedPrecondition, "revoked");
    await refused(
      () => orgs.revokeInvitation({ organizationId: org.id, invitationId: revoked.id }, owner.as),
      "INVITATION_INVALID",
      Code.FailedPrecondition,
      "revoked twice",
    );
    await refused(() => accept(UNKNOWN_ID, stranger), "INVITATION_INVALID", Code.FailedPrecondition, "unknown");
    assert.deepEqual(fields(await refused(() => accept("nope", stranger), "INVALID_ARGUMENT", Code.InvalidArgument, "malformed")), [
      "invitation_id",
    ]);
    for (const role of ["owner", "wizard"]) {
      const err = await refused(() => invitation(org.id, owner, stranger.email, role), "INVALID_ARGUMENT", Code.InvalidArgument, role);
      assert.deepEqual(fields(err), ["role"]);
    }
    const badEmail = await refused(() => invitation(org.id, owner, "not an email"), "INVALID_ARGUMENT", Code.InvalidArgument, "email");
    assert.deepEqual(fields(badEmail), ["email"]);
    assert.deepEqual(await members(org.id, owner), [`${owner.id}=owner`, `${invitee.id}=member`].sort());
  });

  it("lets admins manage members, and the owner leave only after transferring: LAST_OWNER, MEMBER_NOT_FOUND", async () => {
    const owner = await verified("owner");
    const deputy = await verified("deputy");
    const member = await verified("member");
    const outsider = await verified("outsider");
    const org = await organization(owner);
    const organizationId = org.id;
    const orgs = keyport.organizations;
    await joined(organizationId, owner, deputy, "admin");

    await refused(() => invitation(organizationId, deputy, outsider.email, "admin"), "PERMISSION_DENIED", Code.PermissionDenied, "an admin invites an admin");
    await accept((await invitation(organizationId, deputy, member.email)).id, member);

    const setRole = (by: Person, userId: string, role: string) => orgs.setMemberRole({ organizationId, userId, role }, by.as);
    const { member: changed } = await setRole(deputy, member.id, "billing");
    assert.deepEqual([changed?.user?.id, changed?.role], [member.id, "billing"]);
    await refused(() => setRole(member, deputy.id, "member"), "PERMISSION_DENIED", Code.PermissionDenied, "a member");
    for (const role of ["owner", "wizard"]) {
      assert.deepEqual(fields(await refused(() => setRole(owner, member.id, role), "INVALID_ARGUMENT", Code.InvalidArgument, role)), ["role"]);
    }
    await refused(() => setRole(owner, outsider.id, "member"), "MEMBER_NOT_FOUND", Code.NotFound, "not a member");
    await refused(() => setRole(owner, owner.id, "admin"), "LAST_OWNER", Code.FailedPrecondition, "the owner's own role");

    await refused(() => orgs.leaveOrganization({ organizationId }, owner.as), "LAST_OWNER", Code.FailedPrecondition, "the owner leaves");
    await refused(
      () => orgs.removeMember({ organizationId, userId: owner.id }, owner.as),
      "LAST_OWNER",
      Code.FailedPrecondition,
      "the owner removed",
    );
    await refused(() => orgs.deleteOrganization({ organizationId }, deputy.as), "PERMISSION_DENIED", Code.PermissionDenied, "an admin deletes");

    const transfer = (by: Person, userId: string) => orgs.transferOwnership({ organizationId, userId }, by.as);
    await refused(() => transfer(deputy, deputy.id), "PERMISSION_DENIED", Code.PermissionDenied, "an admin transfers");
    await refused(() => transfer(owner, outsider.id), "MEMBER_NOT_FOUND", Code.NotFound, "to a non-member");
    assert.deepEqual(fields(await refused(() => transfer(owner, owner.id), "INVALID_ARGUMENT", Code.InvalidArgument, "to themselves")), ["user_id"]);

    await transfer(owner, deputy.id);
    assert.deepEqual(
      await members(organizationId, deputy),
      [`${owner.id}=admin`, `${deputy.id}=owner`, `${member.id}=billing`].sort(),
      "the caller becomes an admin",
    );
    await orgs.leaveOrganization({ organizationId }, owner.as);
    await refused(() => members(organizationId, owner), "ORGANIZATION_NOT_FOUND", Code.NotFound, "after leaving");
    assert.deepEqual((await orgs.listMyOrganizations({}, owner.as)).memberships, []);

    await orgs.removeMember({ organizationId, userId: member.id }, deputy.as);
    await refused(() => orgs.removeMember({ organizationId, userId: member.id }, deputy.as), "MEMBER_NOT_FOUND", Code.NotFound, "removed twice");
    assert.deepEqual(await members(organizationId, deputy), [`${deputy.id}=owner`]);
  });

  it("authorizes in an organization what the user's roles or their role there grant; a non-member is denied", async () => {
    const owner = await verified("authz-owner");
    const member = await verified("authz-member");
    const outsider = await verified("authz-outsider");
    const org = await organization(owner);
    await joined(org.id, owner, member);
    const posts = ["posts:read", "posts:write"];

    const inside = await authorize(member.token, posts, org.id);
    assert.equal(inside.allowed, true);
    assert.deepEqual(decided(inside), ["posts:read=true", "posts:write=true"]);
    assert.equal(inside.organizationId, org.id);
    assert.equal(inside.organizationRole, "member");
    assert.deepEqual(inside.granted, ["posts:read", "posts:write"], "the user's roles and the member role");
    assert.equal(inside.user?.id, member.id);

    const outside = await authorize(member.token, posts);
    assert.deepEqual(decided(outside), ["posts:read=false", "posts:write=true"], "without the organization");
    assert.deepEqual([outside.organizationId, outside.organizationRole], ["", ""]);

    const stranger = await authorize(outsider.token, posts, org.id);
    assert.deepEqual(decided(stranger), ["posts:read=false", "posts:write=true"], "a deny, not an error");
    assert.equal(stranger.organizationRole, "");

    // The owner's `*` stops at Keyport's own permissions.
    const owned = await authorize(owner.token, ["billing:read", "users:read", "sessions:revoke", "audit:read"], org.id);
    assert.deepEqual(decided(owned), ["billing:read=true", "users:read=false", "sessions:revoke=false", "audit:read=false"]);
    assert.equal(owned.organizationRole, "owner");

    // A custom role: billing grants billing:read and nothing of member's.
    await keyport.organizations.setMemberRole({ organizationId: org.id, userId: member.id, role: "billing" }, owner.as);
    const billing = await authorize(member.token, ["billing:read", "posts:read"], org.id);
    assert.deepEqual(decided(billing), ["billing:read=true", "posts:read=false"]);
    assert.equal(billing.organizationRole, "billing");

    const { secret } = await keyport.apiKeys.createApiKey({ name: "ci", scopes: ["posts:write"] }, owner.as);
    const byKey = await refused(() => authorize(secret, ["posts:write"], org.id), "INVALID_ARGUMENT", Code.InvalidArgument, "a key in an organization");
    assert.deepEqual(fields(byKey), ["organization_id"]);
    const malformed = await refused(() => authorize(member.token, posts, "nope"), "INVALID_ARGUMENT", Code.InvalidArgument, "malformed");
    assert.deepEqual(fields(malformed), ["organization_id"]);
  });

  it("decides in the session's active organization when Authorize names none, and GetSession shows it", async () => {
    const owner = await verified("active-owner");
    const member = await verified("active-member");
    const org = await organization(owner);
    await joined(org.id, owner, member);
    const { outcome } = await keyport.sessions.signIn({ email: member.email, password: PASSWORD });
    assert.equal(outcome.case, "session");
    const otherSession = outcome.value.token;
    const active = async (token: string) => (await keyport.sessions.getSession({ token })).session?.activeOrganizationId;

    assert.equal(await active(member.token), "");
    assert.equal((await authorize(member.token, ["posts:read"])).allowed, false);
    await keyport.organizations.setActiveOrganization({ organizationId: org.id }, member.as);
    assert.equal(await active(member.token), org.id);
    const answer = await authorize(member.token, ["posts:read"]);
    assert.equal(answer.allowed, true, "in the session's active organization");
    assert.deepEqual([answer.organizationId, answer.organizationRole], [org.id, "member"]);
    assert.equal(answer.session?.activeOrganizationId, org.id);
    assert.equal(await active(otherSession), "", "the member's other session chose none");
    assert.equal((await authorize(otherSession, ["posts:read"])).allowed, false);

    await keyport.organizations.setActiveOrganization({ organizationId: "" }, member.as);
    assert.equal(await active(member.token), "");
    const cleared = await authorize(member.token, ["posts:read"]);
    assert.equal(cleared.allowed, false);
    assert.equal(cleared.organizationId, "");
  });

  it("pushes a removal on WatchSessionEvents (USER_CHANGE_ORGANIZATIONS), and the next Authorize is denied", async () => {
    const owner = await verified("remove-owner");
    const member = await verified("removed");
    const org = await organization(owner);
    await joined(org.id, owner, member);
    assert.equal((await authorize(member.token, ["posts:read"], org.id)).allowed, true, "decided before the removal");

    const watching = new AbortController();
    // Loopback is in the default server.trusted_proxies.
    const stream = keyport.sessions.watchSessionEvents({}, { signal: watching.signal, timeoutMs: 0 })[Symbol.asyncIterator]();
    let change: UserChange | undefined;
    try {
      assert.equal((await stream.next()).value?.event.case, "ready");
      await keyport.organizations.removeMember({ organizationId: org.id, userId: member.id }, owner.as);
      for (;;) {
        const { value, done } = await stream.next();
        assert.ok(!done, "the stream ended before the removal");
        if (value.event.case === "userChanged" && value.event.value.userId === member.id) {
          change = value.event.value.change;
          break;
        }
      }
    } finally {
      watching.abort();
    }
    assert.equal(change, UserChange.ORGANIZATIONS);
    assert.equal(UserChange.ORGANIZATIONS, 9);
    const after = await authorize(member.token, ["posts:read"], org.id);
    assert.equal(after.allowed, false, "no longer a member");
    assert.equal(after.organizationRole, "");
    await refused(() => members(org.id, member), "ORGANIZATION_NOT_FOUND", Code.NotFound, "the removed member");
  });

  it("8 parallel AcceptInvitation of one invitation make exactly one membership", async () => {
    const owner = await verified("race-owner");
    const invitee = await verified("race-invitee");
    const org = await organization(owner);
    const invited = await invitation(org.id, owner, invitee.email);
    const outcomes = await Promise.allSettled(Array.from({ length: 8 }, () => accept(invited.id, invitee)));
    assert.equal(outcomes.filter((outcome) => outcome.status === "fulfilled").length, 1, JSON.stringify(outcomes.map((o) => o.status)));
    for (const outcome of outcomes) {
      if (outcome.status === "rejected") {
        // The losers find the invitation used, or the caller a member already.
        assert.ok(["INVITATION_INVALID", "INVALID_ARGUMENT"].includes(errorReason(outcome.reason) ?? ""), String(outcome.reason));
      }
    }
    assert.deepEqual(await members(org.id, owner), [`${owner.id}=owner`, `${invitee.id}=member`].sort());
  });

  it("runs the README's calls (examples/organizations.ts)", async () => {
    const owner = await verified("readme-owner");
    const member = await verified("readme-member");
    const other = await verified("readme-other");
    const slug = slugOf("readme");
    const organizationId = await createTeam(keyport, owner.token, "Readme", slug);
    assert.equal(typeof organizationId, "string");
    const taken = await createTeam(keyport, other.token, "Another", slug);
    assert.ok(taken instanceof Response);
    assert.equal(taken.status, 409);
    assert.equal(await taken.text(), `${slug} is taken: choose another.`);
    assert.equal(errorReason(await failure(() => createTeam(keyport, other.token, "Another", "Not A Slug"))), "INVALID_ARGUMENT");

    const id = organizationId as string;
    const invitationId = await invite(keyport, owner.token, id, member.email, "member");
    assert.equal((await join(keyport, other.token, invitationId)).status, 410, "another user's invitation");
    const welcome = await join(keyport, member.token, invitationId);
    assert.equal(welcome.status, 200);
    assert.equal(await welcome.text(), "Welcome to Readme (member).");
    assert.equal((await join(keyport, member.token, invitationId)).status, 410, "used");
    assert.equal(errorReason(await failure(() => invite(keyport, member.token, id, uniqueEmail("by-member"), "member"))), "PERMISSION_DENIED");

    assert.equal(await allowedIn(keyport, member.token, id, ["posts:read"]), true);
    assert.equal(await allowedIn(keyport, member.token, "", ["posts:read"]), false, "outside the organization");
    assert.equal(await allowedIn(keyport, other.token, id, ["posts:read"]), false, "a non-member");
  });
});
