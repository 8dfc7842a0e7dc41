/**
 * `AuthorizationService.Authorize` against a live keyport with the
 * permissions `posts:read` and `posts:write`, `user` granting `posts:read`
 * and `admin` everything (see support/keyport-server.ts), and the README's
 * check (examples/authorization.ts).
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { Code, errorReason, type KeyportClient, withSession } from "../src/index.js";
import { authorize } from "../examples/authorization.js";
import { failure, serveKeyport, uniqueEmail } from "./support/calls.js";

const PASSWORD = "correct horse battery staple";

/** Expects `call` to fail with `reason` and gRPC `code`. */
async function refused(call: () => Promise<unknown>, reason: string, code: Code, what: string): Promise<void> {
  const err = await failure(call);
  assert.equal(errorReason(err), reason, `${what}: ${err.message}`);
  assert.equal(err.code, code, what);
}

describe("AuthorizationService", () => {
  let keyport: KeyportClient;

  serveKeyport((live) => ({ keyport } = live));

  /** A new user's sign-up session token. */
  async function signedUp(label: string): Promise<string> {
    const { session } = await keyport.users.signUp({ email: uniqueEmail(label), password: PASSWORD, name: label });
    return session!.token;
  }

  it("decides each permission in the order asked, with the session and its user", async () => {
    const token = await signedUp("authorize");
    const answer = await keyport.authorization.authorize({ token, permissions: ["posts:read", "posts:write"] });
    assert.equal(answer.allowed, false, "posts:write is not granted");
    assert.deepEqual(
      answer.decisions.map(({ permission, allowed }) => ({ permission, allowed })),
      [
        { permission: "posts:read", allowed: true },
        { permission: "posts:write", allowed: false },
      ],
    );
    assert.deepEqual(answer.granted, ["posts:read"]);
    assert.deepEqual(answer.user?.roles, ["user"]);
    assert.ok(answer.session?.id, "the session");
    assert.equal(answer.session?.userId, answer.user?.id);
    assert.ok(answer.cacheTtl !== undefined && (answer.cacheTtl.seconds > 0n || answer.cacheTtl.nanos > 0), "cacheTtl");

    const read = await keyport.authorization.authorize({ token, permissions: ["posts:read"] });
    assert.equal(read.allowed, true);
  });

  it("answers PERMISSION_UNKNOWN for a name outside the catalogue or not resource:action", async () => {
    const token = await signedUp("unknown");
    for (const name of ["posts:delete", "Posts", "posts", "posts:", ":read"]) {
      await refused(
        () => keyport.authorization.authorize({ token, permissions: ["posts:read", name] }),
        "PERMISSION_UNKNOWN",
        Code.InvalidArgument,
        JSON.stringify(name),
      );
    }
    await refused(
      () => keyport.authorization.authorize({ token: "", permissions: ["posts:delete"] }),
      "PERMISSION_UNKNOWN",
      Code.InvalidArgument,
      "checked before the token",
    );
  });

  it("answers INVALID_ARGUMENT for no permission, more than 32, or a malformed organization id", async () => {
    const token = await signedUp("invalid");
    const cases = {
      "no permission": { token, permissions: [] },
      "33 permissions": { token, permissions: Array.from({ length: 33 }, () => "posts:read") },
      "a malformed organization id": { token, permissions: ["posts:read"], organizationId: "org_1" },
    };
    for (const [what, request] of Object.entries(cases)) {
      await refused(() => keyport.authorization.authorize(request), "INVALID_ARGUMENT", Code.InvalidArgument, what);
    }
    const most = await keyport.authorization.authorize({ token, permissions: Array.from({ length: 32 }, () => "posts:read") });
    assert.equal(most.decisions.length, 32, "32 is allowed");
  });

  it("answers UNAUTHENTICATED for a missing, malformed or revoked token", async () => {
    for (const token of ["", "not a token", `kp_${"A".repeat(22)}.${"A".repeat(43)}`]) {
      await refused(
        () => keyport.authorization.authorize({ token, permissions: ["posts:read"] }),
        "UNAUTHENTICATED",
        Code.Unauthenticated,
        JSON.stringify(token),
      );
    }
    const token = await signedUp("revoked");
    await keyport.authorization.authorize({ token, permissions: ["posts:read"] });
    await keyport.sessions.signOut({}, withSession(token));
    await refused(
      () => keyport.authorization.authorize({ token, permissions: ["posts:read"] }),
      "UNAUTHENTICATED",
      Code.Unauthenticated,
      "after SignOut",
    );
  });

  it("answers 8 parallel calls with one token alike", async () => {
    const token = await signedUp("parallel");
    const permissions = ["posts:write", "posts:read", "users:read"];
    const answers = await Promise.all(
      Array.from({ length: 8 }, () => keyport.authorization.authorize({ token, permissions })),
    );
    for (const answer of answers) {
      assert.deepEqual(
        answer.decisions.map((decision) => [decision.permission, decision.allowed]),
        [
          ["posts:write", false],
          ["posts:read", true],
          ["users:read", false],
        ],
      );
      assert.equal(answer.allowed, false);
      assert.equal(answer.session?.id, answers[0]!.session?.id);
    }
  });

  it("runs the README's check (examples/authorization.ts)", async () => {
    const token = await signedUp("example");
    const user = await authorize(keyport, token, ["posts:read"]);
    assert.ok(!(user instanceof Response), "allowed");
    assert.deepEqual(user.roles, ["user"]);
    const denied = await authorize(keyport, token, ["posts:read", "posts:write"]);
    assert.ok(denied instanceof Response);
    assert.equal(denied.status, 403);
    assert.equal(await denied.text(), "Not allowed: posts:write");
    const signedOut = await authorize(keyport, "", ["posts:read"]);
    assert.ok(signedOut instanceof Response);
    assert.equal(signedOut.status, 401);
    assert.equal(errorReason(await failure(() => authorize(keyport, token, ["posts:delete"]))), "PERMISSION_UNKNOWN");
  });
});
