/**
 * `AdminService` against a live keyport (see support/keyport-server.ts),
 * with an admin made by the server's own command line (`keyport admin
 * create-user`) while it runs, and the README's calls
 * (examples/administration.ts).
 */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";

import {
  BanFilter,
  type CallOptions,
  Code,
  createKeyportClient,
  errorReason,
  fieldViolations,
  type KeyportClient,
  listAllUsers,
  type ListUsersRequest,
  type ManagedUser,
  type MessageInitShape,
  type ListUsersRequestSchema,
  UserChange,
  withSession,
} from "../src/index.js";
import { ban, bannedUsers, invite } from "../examples/administration.js";
import { failure, serveKeyport, uniqueEmail } from "./support/calls.js";
import { keyportAdmin, type KeyportServer } from "./support/keyport-server.js";

const PASSWORD = "correct horse battery staple";
/** The bootstrapped admin's password: long and uncommon enough for the policy. */
const ADMIN_PASSWORD = "a-long-unusual-passphrase-42";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
/** A well-formed user id (a UUIDv7) that no user has. */
const UNKNOWN_ID = "01890a5d-ac96-7b4b-bcce-b302099a8057";

/** Expects `call` to fail with `reason` and gRPC `code`, and returns the error. */
async function refused(call: () => Promise<unknown>, reason: string, code: Code, what: string) {
  const err = await failure(call);
  assert.equal(errorReason(err), reason, `${what}: ${err.message}`);
  assert.equal(err.code, code, `${what}: code`);
  return err;
}

/** Everything `listAllUsers` yields, in order. */
async function walk(
  keyport: KeyportClient,
  request: MessageInitShape<typeof ListUsersRequestSchema>,
  options: CallOptions,
): Promise<ManagedUser[]> {
  const users: ManagedUser[] = [];
  for await (const managed of listAllUsers(keyport, request, options)) {
    users.push(managed);
  }
  return users;
}

const idsOf = (users: readonly ManagedUser[]): string[] => users.map((managed) => managed.user!.id);
const millis = (managed: ManagedUser): number => timestampDate(managed.user!.createdAt!).getTime();

describe("AdminService", () => {
  let server: KeyportServer;
  let keyport: KeyportClient;
  let adminEmail: string;
  let adminId: string;
  /** The admin's session token, and call options that send it. */
  let adminToken: string;
  let asAdmin: CallOptions;
  let cliOutput: string;

  serveKeyport((live) => ({ server, keyport } = live));

  before(async () => {
    adminEmail = uniqueEmail("root");
    cliOutput = await keyportAdmin(
      server,
      ["create-user", "--email", adminEmail, "--role", "admin", "--password-stdin", "--email-verified"],
      `${ADMIN_PASSWORD}\n`,
    );
    const { outcome } = await keyport.sessions.signIn({ email: adminEmail, password: ADMIN_PASSWORD });
    assert.equal(outcome.case, "session", "the bootstrapped admin signs in with a password alone");
    adminId = outcome.value.user!.id;
    adminToken = outcome.value.token;
    asAdmin = withSession(adminToken);
  });

  /** A new user signed up with PASSWORD: their id, email and sign-up token. */
  async function signedUp(label: string, email = uniqueEmail(label)) {
    const { user, session } = await keyport.users.signUp({ email, password: PASSWORD, name: label });
    return { id: user!.id, email, token: session!.token };
  }

  /** A new session of `email` (password sign-in); fails the test on any other outcome. */
  async function signIn(email: string, password = PASSWORD): Promise<string> {
    const { outcome } = await keyport.sessions.signIn({ email, password });
    assert.equal(outcome.case, "session", `sign-in of ${email}`);
    return outcome.value.token;
  }

  it("bootstraps an admin with `keyport admin create-user` while the server runs", async () => {
    assert.match(cliOutput, new RegExp(`^created ${UUID.source.slice(1, -1)} ${adminEmail} roles=admin,user\\n$`));
    const { user } = await keyport.admin.getUser({ userId: adminId }, asAdmin);
    assert.equal(user?.user?.email, adminEmail);
    assert.deepEqual(user?.user?.roles, ["admin", "user"]);
    assert.equal(user?.user?.emailVerified, true, "--email-verified");
    assert.equal(user?.ban, undefined);
    const { allowed } = await keyport.authorization.authorize({
      token: adminToken,
      permissions: ["users:read", "users:write", "sessions:revoke"],
    });
    assert.equal(allowed, true, "admin grants every admin permission");
    await assert.rejects(
      keyportAdmin(server, ["create-user", "--email", adminEmail, "--password-stdin"], `${ADMIN_PASSWORD}\n`),
      /already taken/,
      "the command line refuses a taken address too",
    );
  });

  it("creates users with and without a password", async () => {
    const email = uniqueEmail("created");
    const { user: created } = await keyport.admin.createUser(
      { email, name: "Ann", password: PASSWORD, emailVerified: true, roles: ["admin"] },
      asAdmin,
    );
    assert.match(created!.user!.id, UUID);
    assert.equal(created!.user!.email, email);
    assert.equal(created!.user!.name, "Ann");
    assert.equal(created!.user!.emailVerified, true);
    assert.deepEqual(created!.user!.roles, ["admin", "user"]);
    assert.equal(created!.ban, undefined);
    const { sessions } = await keyport.admin.getUser({ userId: created!.user!.id }, asAdmin);
    assert.deepEqual(sessions, [], "CreateUser signs nobody in");
    const token = await signIn(email);
    assert.equal((await keyport.sessions.getSession({ token })).user?.id, created!.user!.id);

    const withoutPassword = uniqueEmail("no-password");
    const { user: bare } = await keyport.admin.createUser({ email: withoutPassword }, asAdmin);
    assert.equal(bare!.user!.emailVerified, false);
    assert.deepEqual(bare!.user!.roles, ["user"]);
    await refused(
      () => keyport.sessions.signIn({ email: withoutPassword, password: PASSWORD }),
      "INVALID_CREDENTIALS",
      Code.Unauthenticated,
      "a user without a password signs in another way",
    );

    for (const taken of [email, email.toUpperCase(), bare!.user!.email]) {
      await refused(() => keyport.admin.createUser({ email: taken }, asAdmin), "EMAIL_TAKEN", Code.AlreadyExists, taken);
    }
    const badEmail = await refused(
      () => keyport.admin.createUser({ email: "not an email" }, asAdmin),
      "INVALID_ARGUMENT",
      Code.InvalidArgument,
      "a malformed email",
    );
    assert.deepEqual(fieldViolations(badEmail).map((violation) => violation.field), ["email"]);
    await refused(
      () => keyport.admin.createUser({ email: uniqueEmail("role"), roles: ["root"] }, asAdmin),
      "INVALID_ARGUMENT",
      Code.InvalidArgument,
      "a role the configuration does not define",
    );
    await refused(
      () => keyport.admin.createUser({ email: uniqueEmail("weak"), password: "short" }, asAdmin),
      "WEAK_PASSWORD",
      Code.InvalidArgument,
      "the password policy",
    );
  });

  it("lists every user once, newest first, 2 to a page, with listAllUsers", async () => {
    const prefix = `list-${randomUUID()}-`;
    const created: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { user } = await keyport.admin.createUser({ email: `${prefix}${i}@example.com` }, asAdmin);
      created.push(user!.user!.id);
    }
    const newestFirst = [...created].reverse();

    const first = await keyport.admin.listUsers({ emailPrefix: prefix, pageSize: 2 }, asAdmin);
    assert.deepEqual(idsOf(first.users), newestFirst.slice(0, 2));
    assert.notEqual(first.nextPageToken, "", "more pages");
    const second = await keyport.admin.listUsers({ emailPrefix: prefix, pageSize: 2, pageToken: first.nextPageToken }, asAdmin);
    assert.deepEqual(idsOf(second.users), newestFirst.slice(2, 4));

    assert.deepEqual(idsOf(await walk(keyport, { emailPrefix: prefix, pageSize: 2 }, asAdmin)), newestFirst);
    assert.deepEqual(
      idsOf(await walk(keyport, { emailPrefix: prefix, pageSize: 2, pageToken: first.nextPageToken }, asAdmin)),
      newestFirst.slice(2),
      "a pageToken starts the walk there",
    );
    // Lazily: breaking out after 3 users (2 to a page) asks for 2 pages.
    let calls = 0;
    const counted = createKeyportClient(server.address, {
      timeoutMs: 10_000,
      interceptors: [(next) => (req) => (calls++, next(req))],
    });
    const taken: string[] = [];
    for await (const managed of listAllUsers(counted, { emailPrefix: prefix, pageSize: 2 }, asAdmin)) {
      if (taken.push(managed.user!.id) === 3) break;
    }
    counted.close();
    assert.deepEqual(taken, newestFirst.slice(0, 3));
    assert.equal(calls, 2, "pages asked for");

    const one = await keyport.admin.listUsers({ emailPrefix: prefix }, asAdmin);
    assert.deepEqual(idsOf(one.users), newestFirst, "page size 0 means 50");
    assert.equal(one.nextPageToken, "");

    // Every user of the server: once each, newest first, the same as one big page.
    const everyone = await walk(keyport, { pageSize: 2 }, asAdmin);
    const ids = idsOf(everyone);
    assert.equal(new Set(ids).size, ids.length, "no user twice");
    for (let i = 1; i < everyone.length; i++) {
      assert.ok(millis(everyone[i - 1]!) >= millis(everyone[i]!), `newest first at ${i}`);
    }
    const all = await keyport.admin.listUsers({ pageSize: 200 }, asAdmin);
    assert.equal(all.nextPageToken, "", "fewer than 200 users on this server");
    assert.deepEqual(ids, idsOf(all.users));
    assert.ok(ids.includes(adminId) && created.every((id) => ids.includes(id)));

    for (const [what, request] of Object.entries({
      "page size 201": { pageSize: 201 },
      "page size -1": { pageSize: -1 },
      "a page token the server did not hand out": { pageToken: "not-a-token" },
    } satisfies Record<string, Partial<ListUsersRequest>>)) {
      await refused(() => keyport.admin.listUsers(request, asAdmin), "INVALID_ARGUMENT", Code.InvalidArgument, what);
    }
    const late = await failure(() => walk(keyport, { pageSize: 201 }, asAdmin));
    assert.equal(errorReason(late), "INVALID_ARGUMENT", "listAllUsers rejects with the page's error");
  });

  it("filters by email prefix, creation time, role and ban", async () => {
    const prefix = `filter-${randomUUID()}-`;
    const users: ManagedUser[] = [];
    for (const [i, roles] of [[], ["admin"], [], ["admin"], []].entries()) {
      const { user } = await keyport.admin.createUser({ email: `${prefix}${i}@example.com`, roles }, asAdmin);
      users.push(user!);
    }
    const [u0, u1, u2, u3, u4] = users.map((managed) => managed.user!.id) as [string, string, string, string, string];
    const list = async (request: MessageInitShape<typeof ListUsersRequestSchema>) =>
      idsOf(await walk(keyport, { emailPrefix: prefix, pageSize: 2, ...request }, asAdmin));

    assert.deepEqual(await list({ emailPrefix: prefix.toUpperCase() }), [u4, u3, u2, u1, u0], "normalised like emails");
    assert.deepEqual(await list({ emailPrefix: `${prefix}3` }), [u3]);
    assert.deepEqual(await list({ emailPrefix: `${prefix}%` }), [], "% matches itself");
    assert.deepEqual(await list({ role: "admin" }), [u3, u1]);
    assert.deepEqual(await list({ role: "user" }), [u4, u3, u2, u1, u0], "every user has user");
    const admins = await walk(keyport, { role: "admin", pageSize: 2 }, asAdmin);
    assert.ok(admins.every((managed) => managed.user!.roles.includes("admin")), "role alone");
    assert.ok(idsOf(admins).includes(adminId) && idsOf(admins).includes(u1));

    const middle = users[2]!.user!.createdAt!;
    assert.deepEqual(await list({ createdAfter: middle }), [u4, u3, u2], "created_after is inclusive");
    assert.deepEqual(await list({ createdBefore: middle }), [u1, u0], "created_before is exclusive");
    assert.deepEqual(await list({ createdAfter: users[1]!.user!.createdAt, createdBefore: users[3]!.user!.createdAt }), [u2, u1]);

    await keyport.admin.banUser({ userId: u1, reason: "spam" }, asAdmin);
    await keyport.admin.banUser({ userId: u4, reason: "abuse" }, asAdmin);
    const banned = await walk(keyport, { emailPrefix: prefix, ban: BanFilter.BANNED }, asAdmin);
    assert.deepEqual(idsOf(banned), [u4, u1]);
    assert.deepEqual(banned.map((managed) => managed.ban?.reason), ["abuse", "spam"]);
    assert.deepEqual(await list({ ban: BanFilter.NOT_BANNED }), [u3, u2, u0]);
    assert.deepEqual(await list({ ban: BanFilter.BANNED, role: "admin" }), [u1], "filters combine");
    const everyBanned = await walk(keyport, { ban: BanFilter.BANNED, pageSize: 2 }, asAdmin);
    assert.ok(everyBanned.every((managed) => managed.ban !== undefined), "ban alone");
  });

  it("gets a user with their live sessions, newest first", async () => {
    const { id, email, token } = await signedUp("get");
    const later = [await signIn(email), await signIn(email)];
    const { user, sessions, linkedAccounts } = await keyport.admin.getUser({ userId: id }, asAdmin);
    assert.equal(user?.user?.email, email);
    assert.equal(user?.ban, undefined);
    assert.deepEqual(linkedAccounts, []);
    assert.equal(sessions.length, 3, "the sign-up's and two sign-ins'");
    const own = await Promise.all(
      [later[1]!, later[0]!, token].map(async (t) => (await keyport.sessions.getSession({ token: t })).session!.id),
    );
    assert.deepEqual(sessions.map((session) => session.id), own, "newest first");
    for (const session of sessions) {
      assert.equal(session.userId, id);
      assert.equal(session.current, false);
    }

    await refused(() => keyport.admin.getUser({ userId: UNKNOWN_ID }, asAdmin), "USER_NOT_FOUND", Code.NotFound, "unknown id");
  });

  it("sets a user's roles, and their next call sees them", async () => {
    const { id, token } = await signedUp("roles");
    const asUser = withSession(token);
    await refused(() => keyport.admin.listUsers({}, asUser), "PERMISSION_DENIED", Code.PermissionDenied, "before");

    const { user } = await keyport.admin.setUserRoles({ userId: id, roles: ["admin"] }, asAdmin);
    assert.deepEqual(user?.roles, ["admin", "user"]);
    await keyport.admin.listUsers({ pageSize: 1 }, asUser);
    assert.equal((await keyport.authorization.authorize({ token, permissions: ["users:write"] })).allowed, true);

    const { user: back } = await keyport.admin.setUserRoles({ userId: id, roles: [] }, asAdmin);
    assert.deepEqual(back?.roles, ["user"], "user is always kept");
    await refused(() => keyport.admin.listUsers({}, asUser), "PERMISSION_DENIED", Code.PermissionDenied, "after");

    await refused(
      () => keyport.admin.setUserRoles({ userId: id, roles: ["root"] }, asAdmin),
      "INVALID_ARGUMENT",
      Code.InvalidArgument,
      "an undefined role",
    );
    await refused(
      () => keyport.admin.setUserRoles({ userId: UNKNOWN_ID, roles: [] }, asAdmin),
      "USER_NOT_FOUND",
      Code.NotFound,
      "unknown id",
    );
  });

  it("bans: the user's sessions end at once, their sign-ins answer USER_BANNED; unbanning lets them in", async () => {
    const { id, email, token } = await signedUp("banned");
    const other = await signIn(email);
    await keyport.sessions.getSession({ token });

    const before = Date.now();
    const { user } = await keyport.admin.banUser({ userId: id, reason: "chargebacks" }, asAdmin);
    assert.equal(user?.user?.id, id);
    assert.equal(user?.ban?.reason, "chargebacks");
    assert.equal(user?.ban?.expiresAt, undefined, "until unbanned");
    const bannedAt = timestampDate(user!.ban!.bannedAt!).getTime();
    assert.ok(bannedAt >= before - 1_000 && bannedAt <= Date.now() + 1_000, "banned_at is now");

    for (const t of [token, other]) {
      await refused(() => keyport.sessions.getSession({ token: t }), "UNAUTHENTICATED", Code.Unauthenticated, "GetSession");
      await refused(
        () => keyport.users.getCurrentUser({}, withSession(t)),
        "UNAUTHENTICATED",
        Code.Unauthenticated,
        "a user-scoped call",
      );
    }
    await refused(
      () => keyport.sessions.signIn({ email, password: PASSWORD }),
      "USER_BANNED",
      Code.PermissionDenied,
      "the right password",
    );
    await refused(
      () => keyport.sessions.signIn({ email, password: "the wrong password" }),
      "INVALID_CREDENTIALS",
      Code.Unauthenticated,
      "a wrong password says nothing of the ban",
    );
    const got = await keyport.admin.getUser({ userId: id }, asAdmin);
    assert.equal(got.user?.ban?.reason, "chargebacks");
    assert.deepEqual(got.sessions, []);

    const again = await keyport.admin.banUser({ userId: id, reason: "still chargebacks" }, asAdmin);
    assert.equal(again.user?.ban?.reason, "still chargebacks", "a new ban replaces the old");

    const { user: unbanned } = await keyport.admin.unbanUser({ userId: id }, asAdmin);
    assert.equal(unbanned?.ban, undefined);
    await keyport.sessions.getSession({ token: await signIn(email) });
    await keyport.admin.unbanUser({ userId: id }, asAdmin); // not banned: nothing to lift
    await refused(() => keyport.admin.unbanUser({ userId: UNKNOWN_ID }, asAdmin), "USER_NOT_FOUND", Code.NotFound, "unban");
    await refused(
      () => keyport.admin.banUser({ userId: UNKNOWN_ID, reason: "x" }, asAdmin),
      "USER_NOT_FOUND",
      Code.NotFound,
      "ban",
    );
  });

  it("refuses a ban without a reason, with one over 512 characters, or with an expiry not in the future", async () => {
    const { id, email } = await signedUp("ban-input");
    const cases = {
      "no reason": { userId: id, reason: "" },
      "513 characters": { userId: id, reason: "x".repeat(513) },
      "expires_at in the past": { userId: id, reason: "x", expiresAt: timestampFromMs(Date.now() - 60_000) },
    };
    for (const [what, request] of Object.entries(cases)) {
      await refused(() => keyport.admin.banUser(request, asAdmin), "INVALID_ARGUMENT", Code.InvalidArgument, what);
    }
    await signIn(email); // nothing was banned
    const { user } = await keyport.admin.banUser({ userId: id, reason: "é".repeat(512) }, asAdmin);
    assert.equal(user?.ban?.reason.length, 512, "512 characters (not bytes) are allowed");
  });

  it("a ban with an expiry runs out on its own", async () => {
    const { id, email } = await signedUp("ban-expiry");
    const expiresAt = timestampFromMs(Date.now() + 2_000);
    const { user } = await keyport.admin.banUser({ userId: id, reason: "cool off", expiresAt }, asAdmin);
    assert.equal(user?.ban?.expiresAt?.seconds, expiresAt.seconds);
    await refused(() => keyport.sessions.signIn({ email, password: PASSWORD }), "USER_BANNED", Code.PermissionDenied, "during");

    await sleep(timestampDate(expiresAt).getTime() - Date.now() + 500);
    await signIn(email);
    const { user: after } = await keyport.admin.getUser({ userId: id }, asAdmin);
    assert.equal(after?.ban, undefined, "a ban that ran out is not shown");
    const prefix = email.slice(0, email.indexOf("@"));
    assert.deepEqual(idsOf(await walk(keyport, { emailPrefix: prefix, ban: BanFilter.BANNED }, asAdmin)), []);
    assert.deepEqual(idsOf(await walk(keyport, { emailPrefix: prefix, ban: BanFilter.NOT_BANNED }, asAdmin)), [id]);
  });

  it("revokes a user's sessions and answers how many ended", async () => {
    const { id, email, token } = await signedUp("revoke");
    const tokens = [token, await signIn(email), await signIn(email)];
    const { revoked } = await keyport.admin.revokeUserSessions({ userId: id }, asAdmin);
    assert.equal(revoked, 3);
    for (const t of tokens) {
      await refused(() => keyport.sessions.getSession({ token: t }), "UNAUTHENTICATED", Code.Unauthenticated, "revoked");
    }
    assert.equal((await keyport.admin.revokeUserSessions({ userId: id }, asAdmin)).revoked, 0, "none left");
    await signIn(email); // not banned: they sign in again
    await refused(
      () => keyport.admin.revokeUserSessions({ userId: UNKNOWN_ID }, asAdmin),
      "USER_NOT_FOUND",
      Code.NotFound,
      "unknown id",
    );
  });

  it("deletes a user: then they are USER_NOT_FOUND, and their sessions and password are gone", async () => {
    const { id, email, token } = await signedUp("delete");
    await keyport.admin.deleteUser({ userId: id }, asAdmin);
    await refused(() => keyport.admin.getUser({ userId: id }, asAdmin), "USER_NOT_FOUND", Code.NotFound, "get");
    await refused(() => keyport.admin.deleteUser({ userId: id }, asAdmin), "USER_NOT_FOUND", Code.NotFound, "again");
    await refused(() => keyport.sessions.getSession({ token }), "UNAUTHENTICATED", Code.Unauthenticated, "their token");
    await refused(
      () => keyport.sessions.signIn({ email, password: PASSWORD }),
      "INVALID_CREDENTIALS",
      Code.Unauthenticated,
      "their password",
    );
    assert.ok(!idsOf(await walk(keyport, { emailPrefix: email }, asAdmin)).includes(id));
    const { user } = await keyport.admin.createUser({ email }, asAdmin);
    assert.notEqual(user?.user?.id, id, "the address is free again, for a new user");
  });

  it("refuses every call to a plain user (PERMISSION_DENIED) and without a valid token (UNAUTHENTICATED)", async () => {
    const { id, token } = await signedUp("plain");
    const target = (await signedUp("target")).id;
    const calls: Record<string, (options: CallOptions) => Promise<unknown>> = {
      listUsers: (options) => keyport.admin.listUsers({}, options),
      getUser: (options) => keyport.admin.getUser({ userId: target }, options),
      createUser: (options) => keyport.admin.createUser({ email: uniqueEmail("never") }, options),
      setUserRoles: (options) => keyport.admin.setUserRoles({ userId: target, roles: ["admin"] }, options),
      banUser: (options) => keyport.admin.banUser({ userId: target, reason: "x" }, options),
      unbanUser: (options) => keyport.admin.unbanUser({ userId: target }, options),
      revokeUserSessions: (options) => keyport.admin.revokeUserSessions({ userId: target }, options),
      deleteUser: (options) => keyport.admin.deleteUser({ userId: target }, options),
      listAllUsers: (options) => walk(keyport, {}, options),
    };
    for (const [name, call] of Object.entries(calls)) {
      await refused(() => call(withSession(token)), "PERMISSION_DENIED", Code.PermissionDenied, `${name} as a plain user`);
      await refused(() => call({}), "UNAUTHENTICATED", Code.Unauthenticated, `${name} without a token`);
      await refused(
        () => call(withSession(`kp_${"A".repeat(22)}.${"A".repeat(43)}`)),
        "UNAUTHENTICATED",
        Code.Unauthenticated,
        `${name} with an unknown token`,
      );
    }
    await refused(
      () => keyport.admin.setUserRoles({ userId: id, roles: ["admin"] }, withSession(token)),
      "PERMISSION_DENIED",
      Code.PermissionDenied,
      "not even for themselves",
    );
    const { user, sessions } = await keyport.admin.getUser({ userId: target }, asAdmin);
    assert.deepEqual(user?.user?.roles, ["user"], "nothing changed");
    assert.equal(user?.ban, undefined);
    assert.equal(sessions.length, 1);
  });

  it("answers INVALID_ARGUMENT for a malformed user id", async () => {
    for (const userId of ["not-a-uuid", "", `${UNKNOWN_ID}x`]) {
      const calls: Record<string, () => Promise<unknown>> = {
        getUser: () => keyport.admin.getUser({ userId }, asAdmin),
        setUserRoles: () => keyport.admin.setUserRoles({ userId, roles: [] }, asAdmin),
        banUser: () => keyport.admin.banUser({ userId, reason: "x" }, asAdmin),
        unbanUser: () => keyport.admin.unbanUser({ userId }, asAdmin),
        revokeUserSessions: () => keyport.admin.revokeUserSessions({ userId }, asAdmin),
        deleteUser: () => keyport.admin.deleteUser({ userId }, asAdmin),
      };
      for (const [name, call] of Object.entries(calls)) {
        await refused(call, "INVALID_ARGUMENT", Code.InvalidArgument, `${name}(${JSON.stringify(userId)})`);
      }
    }
  });

  it("refuses an admin's ban or deletion of themselves", async () => {
    await refused(
      () => keyport.admin.banUser({ userId: adminId, reason: "oops" }, asAdmin),
      "INVALID_ARGUMENT",
      Code.InvalidArgument,
      "ban oneself",
    );
    await refused(() => keyport.admin.deleteUser({ userId: adminId }, asAdmin), "INVALID_ARGUMENT", Code.InvalidArgument, "delete oneself");
    const { user } = await keyport.admin.getUser({ userId: adminId }, asAdmin);
    assert.equal(user?.ban, undefined, "still not banned, and the session still works");
  });

  it("pushes each change on WatchSessionEvents, USER_CHANGE_UNBANNED for an unban", async () => {
    const { id, email } = await signedUp("watched");
    const watching = new AbortController();
    const stream = keyport.sessions.watchSessionEvents({}, { signal: watching.signal, timeoutMs: 0 })[Symbol.asyncIterator]();
    assert.equal((await stream.next()).value?.event.case, "ready");
    await keyport.admin.setUserRoles({ userId: id, roles: ["admin"] }, asAdmin);
    await keyport.admin.banUser({ userId: id, reason: "watched" }, asAdmin);
    await keyport.admin.unbanUser({ userId: id }, asAdmin);
    await signIn(email); // the ban ended every session: one to revoke
    assert.equal((await keyport.admin.revokeUserSessions({ userId: id }, asAdmin)).revoked, 1);
    await keyport.admin.deleteUser({ userId: id }, asAdmin);
    const changes: UserChange[] = [];
    try {
      while (changes.at(-1) !== UserChange.DELETED) {
        const { value, done } = await stream.next();
        assert.ok(!done, `the stream ended after ${changes.map((change) => UserChange[change]).join(", ")}`);
        if (value.event.case === "userChanged" && value.event.value.userId === id) changes.push(value.event.value.change);
      }
    } finally {
      watching.abort();
    }
    assert.deepEqual(
      changes.map((change) => UserChange[change]),
      ["ROLES", "BANNED", "UNBANNED", "SESSIONS_REVOKED", "DELETED"],
    );
    assert.equal(UserChange.UNBANNED, 8);
  });

  it("6 parallel deletes of one user: one succeeds, the others answer USER_NOT_FOUND", async () => {
    const { id } = await signedUp("parallel-delete");
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, () => keyport.admin.deleteUser({ userId: id }, asAdmin)),
    );
    assert.equal(results.filter((result) => result.status === "fulfilled").length, 1, "exactly one delete");
    for (const result of results) {
      if (result.status === "rejected") assert.equal(errorReason(result.reason), "USER_NOT_FOUND", String(result.reason));
    }
    await refused(() => keyport.admin.getUser({ userId: id }, asAdmin), "USER_NOT_FOUND", Code.NotFound, "afterwards");
  });

  it("6 parallel bans of one user all succeed, and one of them is the ban in force", async () => {
    const { id, email, token } = await signedUp("parallel-ban");
    const reasons = Array.from({ length: 6 }, (_, i) => `reason ${i}`);
    const bans = await Promise.all(reasons.map((reason) => keyport.admin.banUser({ userId: id, reason }, asAdmin)));
    assert.deepEqual(bans.map((answer) => answer.user?.ban?.reason), reasons, "each answers its own ban");
    const { user, sessions } = await keyport.admin.getUser({ userId: id }, asAdmin);
    assert.ok(reasons.includes(user?.ban?.reason ?? ""), `the ban in force: ${user?.ban?.reason}`);
    assert.deepEqual(sessions, []);
    await refused(() => keyport.sessions.getSession({ token }), "UNAUTHENTICATED", Code.Unauthenticated, "token");
    await refused(() => keyport.sessions.signIn({ email, password: PASSWORD }), "USER_BANNED", Code.PermissionDenied, "sign-in");
  });

  it("parallel bans and deletes of one user: one delete wins, and the user is gone", async () => {
    const { id } = await signedUp("ban-and-delete");
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) =>
        i % 2 === 0
          ? keyport.admin.deleteUser({ userId: id }, asAdmin)
          : keyport.admin.banUser({ userId: id, reason: `race ${i}` }, asAdmin),
      ),
    );
    const deletes = results.filter((_, i) => i % 2 === 0);
    assert.equal(deletes.filter((result) => result.status === "fulfilled").length, 1, "exactly one delete");
    for (const result of results) {
      if (result.status === "rejected") assert.equal(errorReason(result.reason), "USER_NOT_FOUND", String(result.reason));
    }
    await refused(() => keyport.admin.getUser({ userId: id }, asAdmin), "USER_NOT_FOUND", Code.NotFound, "afterwards");
  });

  it("sign-ins racing a ban keep no session", async () => {
    const { id, email } = await signedUp("racing");
    const signIns = Array.from({ length: 6 }, () => keyport.sessions.signIn({ email, password: PASSWORD }));
    const banned = keyport.admin.banUser({ userId: id, reason: "race" }, asAdmin);
    const [results] = await Promise.all([Promise.allSettled(signIns), banned]);
    for (const result of results) {
      if (result.status === "rejected") {
        // The right password answers USER_BANNED, also when the ban landed between the password
        // check and the session's insert; either way no session was made.
        assert.equal(errorReason(result.reason), "USER_BANNED", String(result.reason));
      } else {
        assert.equal(result.value.outcome.case, "session");
        const token = result.value.outcome.case === "session" ? result.value.outcome.value.token : "";
        await refused(() => keyport.sessions.getSession({ token }), "UNAUTHENTICATED", Code.Unauthenticated, "a racing session");
      }
    }
    assert.deepEqual((await keyport.admin.getUser({ userId: id }, asAdmin)).sessions, []);
  });

  it("runs the README's calls (examples/administration.ts)", async () => {
    const email = uniqueEmail("invited");
    const id = await invite(keyport, adminToken, email, ["admin"]);
    const { user } = await keyport.admin.getUser({ userId: id }, asAdmin);
    assert.deepEqual(user?.user?.roles, ["admin", "user"]);
    assert.equal(errorReason(await failure(() => invite(keyport, adminToken, email, []))), "EMAIL_TAKEN");

    const banned = await ban(keyport, adminToken, id, "left the company");
    assert.equal(banned.status, 200);
    assert.equal(await banned.text(), `Banned ${email}.`);
    assert.ok((await bannedUsers(keyport, adminToken)).includes(`${email}: left the company`));
    assert.equal((await ban(keyport, adminToken, UNKNOWN_ID, "x")).status, 404);
    assert.equal((await ban(keyport, adminToken, id, "")).status, 400);
    assert.equal((await ban(keyport, adminToken, adminId, "me")).status, 400);
    const { token } = await signedUp("not-an-admin");
    assert.equal((await ban(keyport, token, id, "x")).status, 403);
    assert.equal(errorReason(await failure(() => ban(keyport, "", id, "x"))), "UNAUTHENTICATED");
  });
});
