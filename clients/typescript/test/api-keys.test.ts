/**
 * `ApiKeyService`, API keys in `Authorize` and as the bearer of admin calls,
 * and the service accounts of `AdminService`, against a live keyport of
 * their own (see support/keyport-server.ts) whose `user` role grants
 * `posts:read` and `posts:write`, so that a key scoped to `posts:read` is
 * narrower than its owner; `auditor` grants `users:read` and `posts:read`.
 * The admin is made by the server's own command line (`keyport admin
 * create-user`). Also the README's calls (examples/api-keys.ts).
 */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { timestampDate } from "@bufbuild/protobuf/wkt";

import {
  API_KEY_PREFIX,
  type ApiKey,
  ApiKeySchema,
  type AuthorizeResponse,
  type CallOptions,
  Code,
  ConnectError,
  errorReason,
  fieldViolations,
  isApiKey,
  type KeyportClient,
  toBinary,
  toJsonString,
  withSession,
} from "../src/index.js";
import { apiCaller, newApiKey, rotateApiKey, serviceAccountKey } from "../examples/api-keys.js";
import { failure, serveKeyport, uniqueEmail } from "./support/calls.js";
import { AUTHORIZATION_ENV, keyportAdmin, type KeyportServer } from "./support/keyport-server.js";

const PASSWORD = "correct horse battery staple";
/** The bootstrapped admin's password: long and uncommon enough for the policy. */
const ADMIN_PASSWORD = "a-long-unusual-passphrase-42";
/** The server's roles: `user` grants both catalogue permissions, `auditor` reads users and posts. */
const API_KEYS_ENV = {
  ...AUTHORIZATION_ENV,
  KEYPORT_AUTHORIZATION__ROLES: '{user = ["posts:read","posts:write"], auditor = ["users:read","posts:read"], admin = ["*"]}',
};
/** The shape of a key: `kpa_`, a 16-byte id and a 32-byte secret, base64url without padding. */
const KEY_SHAPE = /^kpa_[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/;
/** A well-formed key id that no key has. */
const UNKNOWN_KEY_ID = "A".repeat(22);
/** A well-formed service account id (a UUIDv7) that no service account has. */
const UNKNOWN_ACCOUNT_ID = "01890a5d-ac96-7b4b-bcce-b302099a8057";
const DAY_MS = 86_400_000;

/** Expects `call` to fail with `reason` and gRPC `code`, and returns the error. */
async function refused(call: () => Promise<unknown>, reason: string, code: Code, what: string): Promise<ConnectError> {
  const err = await failure(call);
  assert.equal(errorReason(err), reason, `${what}: ${err.message}`);
  assert.equal(err.code, code, `${what}: code`);
  return err;
}

/** An answer's decisions as `permission=allowed`. */
const decided = (answer: AuthorizeResponse): string[] => answer.decisions.map((d) => `${d.permission}=${d.allowed}`);
const millis = (at: ApiKey["createdAt"]): number => timestampDate(at!).getTime();

describe("ApiKeyService", () => {
  let server: KeyportServer;
  let keyport: KeyportClient;
  let adminToken: string;
  let asAdmin: CallOptions;

  serveKeyport((live) => ({ server, keyport } = live), API_KEYS_ENV);

  before(async () => {
    const email = uniqueEmail("root");
    await keyportAdmin(
      server,
      ["create-user", "--email", email, "--role", "admin", "--password-stdin", "--email-verified"],
      `${ADMIN_PASSWORD}\n`,
    );
    const { outcome } = await keyport.sessions.signIn({ email, password: ADMIN_PASSWORD });
    assert.equal(outcome.case, "session", "the bootstrapped admin signs in with a password alone");
    adminToken = outcome.value.token;
    asAdmin = withSession(adminToken);
  });

  /** A new user, freshly signed in (a new key needs a recent sign-in): their id, email and session token. */
  async function signedIn(label: string) {
    const email = uniqueEmail(label);
    const { user } = await keyport.users.signUp({ email, password: PASSWORD, name: label });
    const { outcome } = await keyport.sessions.signIn({ email, password: PASSWORD });
    assert.equal(outcome.case, "session");
    return { id: user!.id, email, token: outcome.value.token, as: withSession(outcome.value.token) };
  }

  /** A key of `owner` for `scopes`: its secret and its listing. */
  async function keyOf(owner: { as: CallOptions }, scopes = ["posts:read"], name = "ci") {
    const { apiKey, secret } = await keyport.apiKeys.createApiKey({ name, scopes }, owner.as);
    return { key: apiKey!, secret };
  }

  const authorize = (token: string, permissions = ["posts:read"]) => keyport.authorization.authorize({ token, permissions });

  it("creates a key and shows its secret once: listed without it, and kept only as a hash", async () => {
    const owner = await signedIn("create");
    const before = Date.now();
    const { apiKey, secret } = await keyport.apiKeys.createApiKey({ name: "deploy bot", scopes: ["posts:read"] }, owner.as);
    assert.match(secret, KEY_SHAPE);
    assert.ok(secret.startsWith(`${API_KEY_PREFIX}${apiKey!.id}.`), "the key is kpa_<id>.<secret>");
    assert.equal(isApiKey(secret), true);
    assert.equal(isApiKey(owner.token), false, "a session token is not a key");
    assert.equal(apiKey!.name, "deploy bot");
    assert.equal(apiKey!.ownerUserId, owner.id);
    assert.equal(apiKey!.serviceAccountId, "");
    assert.deepEqual(apiKey!.scopes, ["posts:read"]);
    assert.equal(apiKey!.lastUsedAt, undefined, "never used yet");
    assert.equal(apiKey!.rateLimitPerMinute, 0);
    const lifetime = millis(apiKey!.expiresAt) - millis(apiKey!.createdAt);
    assert.ok(Math.abs(lifetime - 90 * DAY_MS) < 60_000, `api_keys.default_lifetime_days (90), not ${lifetime} ms`);
    assert.ok(Math.abs(millis(apiKey!.createdAt) - before) < 60_000, "created now");

    const { apiKeys } = await keyport.apiKeys.listApiKeys({}, owner.as);
    assert.deepEqual(
      apiKeys.map((key) => key.id),
      [apiKey!.id],
    );
    const listed = apiKeys[0]!;
    assert.equal("secret" in listed, false, "an ApiKey has no secret field");
    assert.equal(ApiKeySchema.fields.some((field) => /secret/i.test(field.name)), false);
    const secretPart = secret.slice(secret.indexOf(".") + 1);
    assert.ok(!toJsonString(ApiKeySchema, listed).includes(secretPart));
    assert.ok(!Buffer.from(toBinary(ApiKeySchema, listed)).includes(secretPart), "nor in the listing's bytes");
    // The server's data directory (its SQLite database and log) holds the key's id, never its secret.
    const files = (await readdir(server.dataDir, { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile());
    assert.ok(files.length > 0);
    for (const file of files) {
      const bytes = await readFile(join(file.parentPath, file.name));
      assert.ok(!bytes.includes(secretPart), `the secret is in ${file.name}`);
    }

    const other = await signedIn("create-other");
    assert.deepEqual((await keyport.apiKeys.listApiKeys({}, other.as)).apiKeys, [], "another user's keys are theirs");
  });

  it("authorizes with a key what its scopes and its owner's roles both grant, with the key and user and no session", async () => {
    const owner = await signedIn("authorize");
    const { key, secret } = await keyOf(owner, ["posts:read"]);
    const bySession = await authorize(owner.token, ["posts:read", "posts:write"]);
    assert.equal(bySession.allowed, true, "the user's roles grant both");

    const answer = await authorize(secret, ["posts:read", "posts:write", "users:read"]);
    assert.deepEqual(decided(answer), ["posts:read=true", "posts:write=false", "users:read=false"]);
    assert.equal(answer.allowed, false);
    assert.deepEqual(answer.granted, ["posts:read"], "the scopes within the owner's roles");
    assert.equal(answer.apiKey?.id, key.id);
    assert.deepEqual(answer.apiKey?.scopes, ["posts:read"]);
    assert.equal(answer.user?.id, owner.id);
    assert.deepEqual(answer.user?.roles, ["user"]);
    assert.equal(answer.session, undefined, "a key has no session");
    assert.equal(answer.serviceAccount, undefined);
    assert.ok(answer.cacheTtl !== undefined, "cacheTtl");
    assert.equal((await authorize(secret, ["posts:read"])).allowed, true);

    const { apiKeys } = await keyport.apiKeys.listApiKeys({}, owner.as);
    assert.ok(apiKeys[0]?.lastUsedAt !== undefined, "the check is its first use");
    await refused(() => authorize(secret, ["posts:delete"]), "PERMISSION_UNKNOWN", Code.InvalidArgument, "outside the catalogue");
  });

  it("refuses a key where only a session is accepted: API_KEY_NOT_ACCEPTED", async () => {
    const owner = await signedIn("not-accepted");
    const { secret } = await keyOf(owner);
    const byKey = withSession(secret);
    const calls: Record<string, () => Promise<unknown>> = {
      GetSession: () => keyport.sessions.getSession({ token: secret }),
      ListSessions: () => keyport.sessions.listSessions({}, byKey),
      GetCurrentUser: () => keyport.users.getCurrentUser({}, byKey),
      CreateApiKey: () => keyport.apiKeys.createApiKey({ name: "by key", scopes: ["posts:read"] }, byKey),
      ListApiKeys: () => keyport.apiKeys.listApiKeys({}, byKey),
    };
    for (const [what, call] of Object.entries(calls)) {
      await refused(call, "API_KEY_NOT_ACCEPTED", Code.Unauthenticated, what);
    }
    assert.equal((await keyport.apiKeys.listApiKeys({}, owner.as)).apiKeys.length, 1, "the key created none");
  });

  it("revokes a key at once, pushed on WatchSessionEvents", async () => {
    const owner = await signedIn("revoke");
    const kept = await keyOf(owner, ["posts:read"], "kept");
    const { key, secret } = await keyOf(owner, ["posts:read"], "revoked");
    assert.equal((await authorize(secret)).allowed, true, "cached before the revocation");

    const watching = new AbortController();
    // Loopback is in the default server.trusted_proxies.
    const stream = keyport.sessions.watchSessionEvents({}, { signal: watching.signal, timeoutMs: 0 })[Symbol.asyncIterator]();
    try {
      assert.equal((await stream.next()).value?.event.case, "ready");
      await keyport.apiKeys.revokeApiKey({ apiKeyId: key.id }, owner.as);
      for (;;) {
        const { value, done } = await stream.next();
        assert.ok(!done, "the stream ended before the revocation");
        if (value.event.case === "apiKeysChanged" && value.event.value.apiKeyId === key.id) {
          assert.equal(value.event.value.ownerId, owner.id);
          break;
        }
      }
    } finally {
      watching.abort();
    }
    await refused(() => authorize(secret), "UNAUTHENTICATED", Code.Unauthenticated, "the revoked key");
    assert.equal((await authorize(kept.secret)).allowed, true, "the owner's other key");
    assert.deepEqual(
      (await keyport.apiKeys.listApiKeys({}, owner.as)).apiKeys.map((listed) => listed.id),
      [kept.key.id],
    );
    await refused(
      () => keyport.apiKeys.revokeApiKey({ apiKeyId: key.id }, owner.as),
      "API_KEY_NOT_FOUND",
      Code.NotFound,
      "revoked twice",
    );
  });

  it("rotates a key: without grace the old one is refused at once, with grace both work until it ends", async () => {
    const owner = await signedIn("rotate");
    const first = await keyOf(owner, ["posts:read"], "rotated");

    const now = await keyport.apiKeys.rotateApiKey({ apiKeyId: first.key.id }, owner.as);
    assert.match(now.secret, KEY_SHAPE);
    assert.notEqual(now.apiKey!.id, first.key.id);
    assert.ok(now.secret.startsWith(`kpa_${now.apiKey!.id}.`));
    assert.equal(now.replaced?.id, first.key.id);
    assert.equal(now.apiKey!.name, "rotated");
    assert.deepEqual(now.apiKey!.scopes, ["posts:read"]);
    assert.equal(now.apiKey!.ownerUserId, owner.id);
    await refused(() => authorize(first.secret), "UNAUTHENTICATED", Code.Unauthenticated, "the old key, no grace");
    assert.equal((await authorize(now.secret)).apiKey?.id, now.apiKey!.id);

    const graceful = await keyport.apiKeys.rotateApiKey({ apiKeyId: now.apiKey!.id, grace: { seconds: 3600n } }, owner.as);
    assert.equal(graceful.replaced?.id, now.apiKey!.id);
    const graceEnds = millis(graceful.replaced!.expiresAt) - Date.now();
    assert.ok(graceEnds > 3_500_000 && graceEnds <= 3_600_000 + 60_000, `the old key ends with the grace, in ${graceEnds} ms`);
    assert.equal((await authorize(now.secret)).apiKey?.id, now.apiKey!.id, "the old key, within its grace");
    assert.equal((await authorize(graceful.secret)).apiKey?.id, graceful.apiKey!.id, "the new key");
    assert.deepEqual(
      (await keyport.apiKeys.listApiKeys({}, owner.as)).apiKeys.map((listed) => listed.id),
      [graceful.apiKey!.id, now.apiKey!.id],
      "both, newest first",
    );
    assert.equal(graceful.replaced?.replacedById, graceful.apiKey!.id, "the old key names its replacement");
    assert.equal(graceful.apiKey!.replacedById, "");
    assert.deepEqual(
      (await keyport.apiKeys.listApiKeys({}, owner.as)).apiKeys.map((listed) => listed.replacedById),
      ["", graceful.apiKey!.id],
    );
    const twice = await refused(
      () => keyport.apiKeys.rotateApiKey({ apiKeyId: now.apiKey!.id, grace: { seconds: 60n } }, owner.as),
      "INVALID_ARGUMENT",
      Code.InvalidArgument,
      "a key is rotated once: rotate its replacement",
    );
    assert.deepEqual(fieldViolations(twice).map((v) => v.field), ["api_key_id"]);
    assert.equal((await authorize(now.secret)).apiKey?.id, now.apiKey!.id, "still within its grace");

    // A grace that runs out: the old key then answers API_KEY_EXPIRED.
    const brief = await keyOf(owner, ["posts:read"], "brief");
    const next = await keyport.apiKeys.rotateApiKey({ apiKeyId: brief.key.id, grace: { seconds: 1n } }, owner.as);
    let err: ConnectError | undefined;
    for (let tries = 0; err === undefined && tries < 50; tries++) {
      await sleep(100);
      err = await authorize(brief.secret).then(
        () => undefined,
        (thrown: unknown) => ConnectError.from(thrown),
      );
    }
    assert.equal(errorReason(err), "API_KEY_EXPIRED", String(err));
    assert.equal(err?.code, Code.Unauthenticated);
    assert.equal((await authorize(next.secret)).allowed, true);

    const tooLong = await refused(
      () => keyport.apiKeys.rotateApiKey({ apiKeyId: graceful.apiKey!.id, grace: { seconds: BigInt(8 * 86_400) } }, owner.as),
      "INVALID_ARGUMENT",
      Code.InvalidArgument,
      "a grace over 7 days",
    );
    assert.deepEqual(fieldViolations(tooLong).map((v) => v.field), ["grace"]);
    assert.equal((await authorize(graceful.secret)).allowed, true, "a refused rotation changes nothing");
  });

  it("answers API_KEY_NOT_FOUND for an unknown key or another user's, INVALID_ARGUMENT for a malformed id", async () => {
    const owner = await signedIn("not-found");
    const other = await signedIn("not-found-other");
    const { key, secret } = await keyOf(owner);
    for (const [what, apiKeyId, as] of [
      ["an unknown id", UNKNOWN_KEY_ID, owner.as],
      ["another user's key", key.id, other.as],
    ] as const) {
      await refused(() => keyport.apiKeys.revokeApiKey({ apiKeyId }, as), "API_KEY_NOT_FOUND", Code.NotFound, `revoke ${what}`);
      await refused(() => keyport.apiKeys.rotateApiKey({ apiKeyId }, as), "API_KEY_NOT_FOUND", Code.NotFound, `rotate ${what}`);
    }
    assert.equal((await authorize(secret)).allowed, true, "the other user's tries left the key alone");
    for (const apiKeyId of ["", "nope", secret]) {
      const err = await refused(
        () => keyport.apiKeys.revokeApiKey({ apiKeyId }, owner.as),
        "INVALID_ARGUMENT",
        Code.InvalidArgument,
        JSON.stringify(apiKeyId),
      );
      assert.deepEqual(fieldViolations(err).map((v) => v.field), ["api_key_id"]);
    }
    await refused(
      () => keyport.apiKeys.revokeApiKey({ apiKeyId: key.id }),
      "UNAUTHENTICATED",
      Code.Unauthenticated,
      "no session",
    );
  });

  it("refuses bad input: INVALID_ARGUMENT with the field, PERMISSION_UNKNOWN for a name outside the catalogue", async () => {
    const owner = await signedIn("input");
    const cases: [string, { name: string; scopes: string[]; expiresIn?: { seconds: bigint } }, string][] = [
      ["an empty name", { name: "", scopes: ["posts:read"] }, "name"],
      ["a name over 64 characters", { name: "n".repeat(65), scopes: ["posts:read"] }, "name"],
      ["no scope", { name: "x", scopes: [] }, "scopes"],
      ["33 scopes", { name: "x", scopes: Array.from({ length: 33 }, () => "posts:read") }, "scopes"],
      ["a scope the owner's roles lack", { name: "x", scopes: ["users:read"] }, "scopes"],
      ["a lifetime under a minute", { name: "x", scopes: ["posts:read"], expiresIn: { seconds: 30n } }, "expires_in"],
    ];
    for (const [what, request, field] of cases) {
      const err = await refused(() => keyport.apiKeys.createApiKey(request, owner.as), "INVALID_ARGUMENT", Code.InvalidArgument, what);
      assert.deepEqual(fieldViolations(err).map((v) => v.field), [field], what);
    }
    for (const scope of ["posts:delete", "Posts:read", "posts"]) {
      await refused(
        () => keyport.apiKeys.createApiKey({ name: "x", scopes: [scope] }, owner.as),
        "PERMISSION_UNKNOWN",
        Code.InvalidArgument,
        scope,
      );
    }
    assert.deepEqual((await keyport.apiKeys.listApiKeys({}, owner.as)).apiKeys, [], "no refused call made a key");
    await refused(
      () => keyport.apiKeys.createApiKey({ name: "x", scopes: ["posts:read"] }),
      "UNAUTHENTICATED",
      Code.Unauthenticated,
      "no session",
    );
  });

  it("service accounts: an admin makes one and its key, which may list users, narrows with its roles and goes with it", async () => {
    const name = `ci-${randomUUID().slice(0, 8)}.bot`;
    const { serviceAccount: account } = await keyport.admin.createServiceAccount(
      { name, description: "The CI pipeline", roles: ["auditor"] },
      asAdmin,
    );
    assert.ok(account?.id);
    assert.equal(account.name, name);
    assert.equal(account.description, "The CI pipeline");
    assert.deepEqual(account.roles, ["auditor"]);
    const { serviceAccounts } = await keyport.admin.listServiceAccounts({}, asAdmin);
    assert.deepEqual(
      serviceAccounts.filter((listed) => listed.id === account.id).map((listed) => listed.name),
      [name],
    );

    const serviceAccountId = account.id;
    const { apiKey, secret } = await keyport.apiKeys.createApiKey(
      { name: "deploy", scopes: ["users:read", "posts:read"], serviceAccountId },
      asAdmin,
    );
    assert.match(secret, KEY_SHAPE);
    assert.equal(apiKey!.serviceAccountId, serviceAccountId);
    assert.equal(apiKey!.ownerUserId, "");
    assert.deepEqual(apiKey!.scopes, ["posts:read", "users:read"], "sorted");
    assert.deepEqual(
      (await keyport.apiKeys.listApiKeys({ serviceAccountId }, asAdmin)).apiKeys.map((key) => key.id),
      [apiKey!.id],
    );

    const answer = await authorize(secret, ["users:read", "posts:read", "posts:write"]);
    assert.deepEqual(decided(answer), ["users:read=true", "posts:read=true", "posts:write=false"]);
    assert.equal(answer.serviceAccount?.id, serviceAccountId);
    assert.equal(answer.apiKey?.id, apiKey!.id);
    assert.equal(answer.user, undefined, "no user");
    assert.equal(answer.session, undefined, "no session");

    // The key is the bearer of AdminService calls its scopes allow.
    const byKey = withSession(secret);
    const { users } = await keyport.admin.listUsers({ pageSize: 200 }, byKey);
    assert.ok(users.length > 0, "ListUsers by the key");
    await refused(
      () => keyport.admin.createUser({ email: uniqueEmail("by-key") }, byKey),
      "PERMISSION_DENIED",
      Code.PermissionDenied,
      "CreateUser needs users:write",
    );

    await refused(
      () => keyport.apiKeys.createApiKey({ name: "x", scopes: ["users:write"], serviceAccountId }, asAdmin),
      "INVALID_ARGUMENT",
      Code.InvalidArgument,
      "a scope the service account's roles lack",
    );
    const user = await signedIn("not-an-admin");
    await refused(
      () => keyport.apiKeys.createApiKey({ name: "x", scopes: ["posts:read"], serviceAccountId }, user.as),
      "PERMISSION_DENIED",
      Code.PermissionDenied,
      "a plain user's key for the service account",
    );
    await refused(
      () => keyport.admin.createServiceAccount({ name: `${name}-2`, roles: [] }, user.as),
      "PERMISSION_DENIED",
      Code.PermissionDenied,
      "a plain user's service account",
    );
    const badName = await refused(
      () => keyport.admin.createServiceAccount({ name: "CI Bot", roles: ["auditor"] }, asAdmin),
      "INVALID_ARGUMENT",
      Code.InvalidArgument,
      "a name outside a-z 0-9 _ - .",
    );
    assert.deepEqual(fieldViolations(badName).map((v) => v.field), ["name"]);
    await refused(
      () => keyport.admin.createServiceAccount({ name, roles: ["auditor"] }, asAdmin),
      "INVALID_ARGUMENT",
      Code.InvalidArgument,
      "a taken name",
    );

    // A narrower role narrows the key at once: it never outgrows its owner.
    const { serviceAccount: narrowed } = await keyport.admin.setServiceAccountRoles({ serviceAccountId, roles: ["user"] }, asAdmin);
    assert.deepEqual(narrowed?.roles, ["user"]);
    assert.deepEqual(decided(await authorize(secret, ["users:read", "posts:read"])), ["users:read=false", "posts:read=true"]);
    await refused(() => keyport.admin.listUsers({}, byKey), "PERMISSION_DENIED", Code.PermissionDenied, "ListUsers without users:read");

    const { apiKeysRevoked } = await keyport.admin.deleteServiceAccount({ serviceAccountId }, asAdmin);
    assert.equal(apiKeysRevoked, 1);
    await refused(() => authorize(secret), "UNAUTHENTICATED", Code.Unauthenticated, "the deleted account's key");
    await refused(() => keyport.admin.listUsers({}, byKey), "UNAUTHENTICATED", Code.Unauthenticated, "as the bearer");
    const gone = [
      () => keyport.admin.deleteServiceAccount({ serviceAccountId }, asAdmin),
      () => keyport.apiKeys.listApiKeys({ serviceAccountId }, asAdmin),
      () => keyport.apiKeys.createApiKey({ name: "x", scopes: ["posts:read"], serviceAccountId }, asAdmin),
      () => keyport.admin.setServiceAccountRoles({ serviceAccountId: UNKNOWN_ACCOUNT_ID, roles: [] }, asAdmin),
    ];
    for (const [i, call] of gone.entries()) {
      await refused(call, "SERVICE_ACCOUNT_NOT_FOUND", Code.NotFound, `call ${i}`);
    }
    assert.ok(!(await keyport.admin.listServiceAccounts({}, asAdmin)).serviceAccounts.some((listed) => listed.id === serviceAccountId));
  });

  it("8 parallel checks with one key agree, and a revocation racing 8 more leaves the key refused", async () => {
    const owner = await signedIn("parallel");
    const { key, secret } = await keyOf(owner, ["posts:read"]);
    const permissions = ["posts:write", "posts:read", "users:read"];
    const answers = await Promise.all(Array.from({ length: 8 }, () => authorize(secret, permissions)));
    for (const answer of answers) {
      assert.deepEqual(decided(answer), ["posts:write=false", "posts:read=true", "users:read=false"]);
      assert.equal(answer.apiKey?.id, key.id);
      assert.equal(answer.user?.id, owner.id);
    }

    const racing = await Promise.allSettled([
      ...Array.from({ length: 8 }, () => authorize(secret, permissions)),
      keyport.apiKeys.revokeApiKey({ apiKeyId: key.id }, owner.as),
    ]);
    assert.equal(racing.at(-1)!.status, "fulfilled", "the revocation");
    for (const outcome of racing.slice(0, -1)) {
      if (outcome.status === "fulfilled") {
        assert.equal((outcome.value as AuthorizeResponse).apiKey?.id, key.id, "a check before the revocation");
      } else {
        assert.equal(errorReason(outcome.reason), "UNAUTHENTICATED", String(outcome.reason));
      }
    }
    const after = await Promise.allSettled(Array.from({ length: 8 }, () => authorize(secret, permissions)));
    for (const outcome of after) {
      assert.equal(outcome.status, "rejected", "a check after the revocation");
      assert.equal(errorReason(outcome.reason), "UNAUTHENTICATED");
    }
  });

  it("runs the README's calls (examples/api-keys.ts)", async () => {
    const owner = await signedIn("readme");
    const secret = await newApiKey(keyport, owner.token, "reports", ["posts:read"]);
    assert.equal(await apiCaller(keyport, `Bearer ${secret}`, ["posts:read"]), `reports of ${owner.email}`);
    const denied = await apiCaller(keyport, `Bearer ${secret}`, ["posts:write"]);
    assert.ok(denied instanceof Response);
    assert.equal(denied.status, 403);
    assert.equal(((await apiCaller(keyport, `Bearer ${owner.token}`, ["posts:read"])) as Response).status, 401, "a session");
    assert.equal(((await apiCaller(keyport, null, ["posts:read"])) as Response).status, 401);
    assert.equal(errorReason(await failure(() => apiCaller(keyport, `Bearer ${secret}`, ["posts:delete"]))), "PERMISSION_UNKNOWN");

    const [listed] = (await keyport.apiKeys.listApiKeys({}, owner.as)).apiKeys;
    const rotated = await rotateApiKey(keyport, owner.token, listed!.id);
    assert.equal(await apiCaller(keyport, `Bearer ${rotated}`, ["posts:read"]), `reports of ${owner.email}`);
    assert.equal(await apiCaller(keyport, `Bearer ${secret}`, ["posts:read"]), `reports of ${owner.email}`, "within the day's grace");
    await keyport.apiKeys.revokeApiKey({ apiKeyId: listed!.id }, owner.as);
    assert.equal(((await apiCaller(keyport, `bearer ${secret}`, ["posts:read"])) as Response).status, 401, "revoked");
    assert.equal(errorReason(await failure(() => rotateApiKey(keyport, owner.token, listed!.id))), "API_KEY_NOT_FOUND");

    const name = `readme-${randomUUID().slice(0, 8)}`;
    const ci = await serviceAccountKey(keyport, adminToken, name, ["auditor"]);
    assert.equal(await apiCaller(keyport, `Bearer ${ci}`, ["users:read"]), `ci of service account ${name}`);
    assert.ok((await keyport.admin.listUsers({}, withSession(ci))).users.length > 0);
    assert.equal(
      errorReason(await failure(() => serviceAccountKey(keyport, owner.token, `${name}-2`, ["auditor"]))),
      "PERMISSION_DENIED",
    );
  });
});
