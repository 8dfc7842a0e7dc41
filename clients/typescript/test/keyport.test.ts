/**
 * The TypeScript SDK against a real keyport server (KEYPORT_BIN): sign-up,
 * sign-in, sessions, error reasons, deadlines and gRPC-web (TLS is in
 * tls.test.ts).
 */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";

import { timestampDate } from "@bufbuild/protobuf/wkt";

import {
  baseUrlOf,
  Code,
  ConnectError,
  createKeyportClient,
  errorInfo,
  ErrorInfoSchema,
  ErrorReason,
  errorReason,
  fieldViolations,
  isErrorReason,
  KEYPORT_ERROR_DOMAIN,
  type KeyportClient,
  type SessionGrant,
  withSession,
} from "../src/index.js";
import { ErrorReason as ProtoErrorReason } from "../src/gen/keyport/v1/errors_pb.js";
import { createKeyportClient as createKeyportWebClient } from "../src/web.js";
import { failure, uniqueEmail } from "./support/calls.js";
import { type KeyportServer, startKeyport } from "./support/keyport-server.js";

const PASSWORD = "correct horse battery staple";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("@keyport/client against a live keyport", () => {
  let server: KeyportServer;
  let keyport: KeyportClient;
  const opened: KeyportClient[] = [];

  function client(...args: Parameters<typeof createKeyportClient>): KeyportClient {
    const created = createKeyportClient(...args);
    opened.push(created);
    return created;
  }

  async function signUp(label: string): Promise<{ email: string; grant: SessionGrant }> {
    const email = uniqueEmail(label);
    const response = await keyport.users.signUp({ email, password: PASSWORD, name: label });
    assert.ok(response.session, "SignUp returns a session");
    return { email, grant: response.session };
  }

  async function signIn(email: string, password = PASSWORD): Promise<SessionGrant> {
    const response = await keyport.sessions.signIn({ email, password });
    assert.equal(response.outcome.case, "session");
    return response.outcome.value;
  }

  before(async () => {
    server = await startKeyport();
    keyport = client(server.address, { timeoutMs: 10_000 });
  });

  after(async () => {
    for (const created of opened) {
      created.close();
    }
    await server?.stop();
  });

  it("signs up a user and hands out a session", async () => {
    const email = uniqueEmail("ada");
    const { user, session } = await keyport.users.signUp({ email, password: PASSWORD, name: "Ada Lovelace" });
    assert.ok(user && session?.session && session.user);
    assert.match(user.id, UUID);
    assert.equal(user.email, email);
    assert.equal(user.name, "Ada Lovelace");
    assert.equal(user.emailVerified, false);
    assert.deepEqual(user.roles, ["user"]);
    assert.ok(user.createdAt, "created_at is set");
    assert.ok(Math.abs(timestampDate(user.createdAt).getTime() - Date.now()) < 60_000);
    assert.match(session.token, /^kp_[^.]+\.[^.]+$/);
    assert.equal(session.user.id, user.id);
    assert.equal(session.session.userId, user.id);
    assert.ok(session.session.id.length > 0);
    assert.ok(session.token.includes(session.session.id), "the token embeds its session id");
  });

  it("normalises the email and refuses a second account for it (EMAIL_TAKEN)", async () => {
    const local = `Grace-${randomUUID()}`;
    const { user } = await keyport.users.signUp({ email: `  ${local}@EXAMPLE.com `, password: PASSWORD, name: "" });
    // The server trims and lower-cases the whole address.
    const normalised = `${local.toLowerCase()}@example.com`;
    assert.equal(user?.email, normalised);
    const grant = await signIn(`${local.toUpperCase()}@Example.Com`);
    assert.equal(grant.user?.id, user?.id);
    const err = await failure(() =>
      keyport.users.signUp({ email: normalised, password: PASSWORD, name: "" }),
    );
    assert.equal(err.code, Code.AlreadyExists);
    assert.equal(errorReason(err), "EMAIL_TAKEN");
  });

  it("rejects a short password with WEAK_PASSWORD and bad input with field violations", async () => {
    const weak = await failure(() =>
      keyport.users.signUp({ email: uniqueEmail("weak"), password: "short", name: "" }),
    );
    assert.equal(weak.code, Code.InvalidArgument);
    assert.equal(errorReason(weak), "WEAK_PASSWORD");

    const invalid = await failure(() => keyport.users.signUp({ email: "", password: PASSWORD, name: "" }));
    assert.equal(invalid.code, Code.InvalidArgument);
    assert.equal(errorReason(invalid), "INVALID_ARGUMENT");
    assert.deepEqual(
      fieldViolations(invalid).map((violation) => violation.field),
      ["email"],
    );
  });

  it("signs in with the right password", async () => {
    const { email, grant: signedUp } = await signUp("signin");
    const grant = await signIn(email);
    assert.equal(grant.user?.id, signedUp.user?.id);
    assert.equal(grant.user?.email, email);
    assert.equal(grant.session?.userId, signedUp.user?.id);
    assert.notEqual(grant.session?.id, signedUp.session?.id, "a sign-in makes a new session");
    assert.notEqual(grant.token, signedUp.token);
  });

  it("refuses a wrong password and an unknown email alike (INVALID_CREDENTIALS)", async () => {
    const { email } = await signUp("wrongpw");
    const wrong = await failure(() => keyport.sessions.signIn({ email, password: "not the password" }));
    assert.equal(wrong.code, Code.Unauthenticated);
    assert.equal(errorReason(wrong), "INVALID_CREDENTIALS");
    const info = errorInfo(wrong);
    assert.equal(info?.domain, KEYPORT_ERROR_DOMAIN);
    assert.equal(info?.domain, "keyport.dev");

    const unknown = await failure(() =>
      keyport.sessions.signIn({ email: uniqueEmail("nobody"), password: PASSWORD }),
    );
    assert.equal(unknown.code, Code.Unauthenticated);
    assert.equal(errorReason(unknown), "INVALID_CREDENTIALS");
  });

  it("validates a token with GetSession", async () => {
    const { email, grant } = await signUp("getsession");
    const response = await keyport.sessions.getSession({ token: grant.token });
    assert.equal(response.session?.id, grant.session?.id);
    assert.equal(response.session?.userId, grant.user?.id);
    assert.equal(response.user?.id, grant.user?.id);
    assert.equal(response.user?.email, email);
    assert.equal(response.refreshed, false, "a fresh session needs no refresh");
    assert.ok(response.session?.expiresAt && response.session.absoluteExpiresAt);
    assert.ok(timestampDate(response.session.expiresAt) > new Date());
    assert.ok(timestampDate(response.session.absoluteExpiresAt) >= timestampDate(response.session.expiresAt));
  });

  it("lists the caller's sessions, newest first, and marks the current one", async () => {
    const { email, grant: first } = await signUp("list");
    const second = await signIn(email);
    const third = await signIn(email);
    // Another user's session must not show up.
    await signUp("someone-else");

    const { sessions } = await keyport.sessions.listSessions({}, withSession(second.token));
    assert.equal(sessions.length, 3);
    assert.deepEqual(
      new Set(sessions.map((session) => session.id)),
      new Set([first.session?.id, second.session?.id, third.session?.id]),
    );
    assert.ok(sessions.every((session) => session.userId === first.user?.id));
    assert.deepEqual(
      sessions.filter((session) => session.current).map((session) => session.id),
      [second.session?.id],
    );
    const created = sessions.map((session) => timestampDate(session.createdAt!).getTime());
    assert.deepEqual(created, [...created].sort((a, b) => b - a), "newest first");
  });

  it("revokes one session at once", async () => {
    const { email, grant: phone } = await signUp("revoke");
    const laptop = await signIn(email);

    await keyport.sessions.revokeSession({ sessionId: phone.session!.id }, withSession(laptop.token));

    const { sessions } = await keyport.sessions.listSessions({}, withSession(laptop.token));
    assert.deepEqual(
      sessions.map((session) => session.id),
      [laptop.session?.id],
    );
    const revoked = await failure(() => keyport.sessions.getSession({ token: phone.token }));
    assert.equal(revoked.code, Code.Unauthenticated);
    assert.equal(errorReason(revoked), "UNAUTHENTICATED");

    const again = await failure(() =>
      keyport.sessions.revokeSession({ sessionId: phone.session!.id }, withSession(laptop.token)),
    );
    assert.equal(again.code, Code.NotFound);
    assert.equal(errorReason(again), "SESSION_NOT_FOUND");
  });

  it("signs out: the token stops working, other sessions keep working", async () => {
    const { email, grant: staying } = await signUp("signout");
    const leaving = await signIn(email);

    await keyport.sessions.signOut({}, withSession(leaving.token));

    const gone = await failure(() => keyport.sessions.getSession({ token: leaving.token }));
    assert.equal(errorReason(gone), "UNAUTHENTICATED");
    const listGone = await failure(() => keyport.sessions.listSessions({}, withSession(leaving.token)));
    assert.equal(listGone.code, Code.Unauthenticated);
    assert.equal(errorReason(listGone), "UNAUTHENTICATED");

    const { sessions } = await keyport.sessions.listSessions({}, withSession(staying.token));
    assert.deepEqual(
      sessions.map((session) => session.id),
      [staying.session?.id],
    );
  });

  it("answers a malformed or missing token with UNAUTHENTICATED", async () => {
    for (const token of ["not-a-token", "kp_", "kp_abc.def", "Bearer"]) {
      const inMetadata = await failure(() => keyport.sessions.listSessions({}, withSession(token)));
      assert.equal(inMetadata.code, Code.Unauthenticated, token);
      assert.equal(errorReason(inMetadata), "UNAUTHENTICATED", token);

      const inBody = await failure(() => keyport.sessions.getSession({ token }));
      assert.equal(errorReason(inBody), "UNAUTHENTICATED", token);
    }
    const none = await failure(() => keyport.users.getCurrentUser({}));
    assert.equal(none.code, Code.Unauthenticated);
    assert.equal(errorReason(none), "UNAUTHENTICATED");
  });

  it("answers the mail flows of a server without mail (MAIL_DISABLED, EMAIL_TOKEN_INVALID)", async () => {
    const reset = await failure(() => keyport.users.requestPasswordReset({ email: uniqueEmail("reset") }));
    assert.equal(reset.code, Code.FailedPrecondition);
    assert.equal(errorReason(reset), "MAIL_DISABLED");

    const verify = await failure(() => keyport.users.verifyEmail({ token: "kpm_not-a-token" }));
    assert.equal(verify.code, Code.InvalidArgument);
    assert.equal(errorReason(verify), "EMAIL_TOKEN_INVALID");
  });

  it("sends a token given in the client options on every call", async () => {
    const { email, grant } = await signUp("tokenoption");
    let token: string | undefined = grant.token;
    const authed = client(server.address, { token: () => token });
    const { user } = await authed.users.getCurrentUser({});
    assert.equal(user?.email, email);

    // A per-call token wins over the client's.
    const other = await signUp("tokenoption-other");
    const viaCall = await authed.users.getCurrentUser({}, withSession(other.grant.token));
    assert.equal(viaCall.user?.email, other.email);

    token = undefined;
    const anonymous = await failure(() => authed.users.getCurrentUser({}));
    assert.equal(errorReason(anonymous), "UNAUTHENTICATED");
  });

  it("speaks gRPC-web from the browser entry point (connect-web over fetch)", async () => {
    const web = createKeyportWebClient(`http://${server.address}`, { timeoutMs: 10_000 });
    const email = uniqueEmail("web");
    const { user, session } = await web.users.signUp({ email, password: PASSWORD, name: "Web" });
    assert.equal(user?.email, email);
    assert.ok(session);
    const signedIn = await web.sessions.signIn({ email, password: PASSWORD });
    assert.equal(signedIn.outcome.case, "session");
    const { sessions } = await web.sessions.listSessions({}, withSession(session.token));
    assert.equal(sessions.length, 2);
    assert.ok(sessions.every((listed) => listed.userId === user?.id));

    // Error details travel in gRPC-web trailers too.
    const wrong = await failure(() => web.sessions.signIn({ email, password: "wrong password!" }));
    assert.equal(wrong.code, Code.Unauthenticated);
    assert.equal(errorReason(wrong), "INVALID_CREDENTIALS");
  });

  it("speaks gRPC-web over HTTP/1.1 from Node (transport: grpc-web)", async () => {
    const web = client(server.address, { transport: "grpc-web" });
    const { email, grant } = await signUp("nodeweb");
    const response = await web.sessions.getSession({ token: grant.token });
    assert.equal(response.user?.email, email);
    assert.equal(response.session?.id, grant.session?.id);
    const bad = await failure(() => web.users.getCurrentUser({}, withSession("kp_nope.nope")));
    assert.equal(errorReason(bad), "UNAUTHENTICATED");
  });
});

describe("@keyport/client without a server", () => {
  it("gives up at the deadline from the client options", async () => {
    // A peer that accepts connections and never answers.
    const sockets = new Set<Socket>();
    const silent: Server = createServer((socket) => {
      sockets.add(socket);
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as { port: number };
    try {
      for (const transport of ["grpc", "grpc-web"] as const) {
        const keyport = createKeyportClient(`127.0.0.1:${port}`, { transport, timeoutMs: 200 });
        const started = Date.now();
        const err = await failure(() => keyport.sessions.getSession({ token: "kp_x.y" }));
        const elapsed = Date.now() - started;
        assert.equal(err.code, Code.DeadlineExceeded, transport);
        assert.ok(elapsed >= 150 && elapsed < 5_000, `${transport}: gave up after ${elapsed} ms`);
        assert.equal(errorReason(err), undefined);
        keyport.close();
      }
    } finally {
      for (const socket of sockets) {
        socket.destroy();
      }
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it("reads no reason from errors that are not Keyport's", () => {
    assert.equal(errorReason(new Error("boom")), undefined);
    assert.equal(errorReason(undefined), undefined);
    assert.equal(errorReason(new ConnectError("no details", Code.Internal)), undefined);
    assert.deepEqual(fieldViolations("nope"), []);
  });

  it("narrows reasons to ErrorReason: a reason it does not know is UNSPECIFIED, yet in errorInfo", () => {
    const withReason = (reason: string, domain = KEYPORT_ERROR_DOMAIN) =>
      new ConnectError("x", Code.FailedPrecondition, undefined, [{ desc: ErrorInfoSchema, value: { reason, domain } }]);
    assert.equal(errorReason(withReason("LAST_SIGN_IN_METHOD")), "LAST_SIGN_IN_METHOD");
    assert.equal(errorReason(withReason("A_REASON_FROM_A_NEWER_SERVER")), "UNSPECIFIED");
    assert.equal(errorInfo(withReason("A_REASON_FROM_A_NEWER_SERVER"))?.reason, "A_REASON_FROM_A_NEWER_SERVER");
    assert.equal(errorReason(withReason("LAST_SIGN_IN_METHOD", "example.com")), undefined);
    assert.equal(isErrorReason("OAUTH_STATE_INVALID"), true);
    assert.equal(isErrorReason("oauth_state_invalid"), false);
  });

  it("lists every reason of the proto's ErrorReason enum, and no other (UNSPECIFIED, its 0, is the fallback)", () => {
    // A numeric TypeScript enum maps names to numbers and numbers back to names.
    const proto = Object.keys(ProtoErrorReason).filter((name) => Number.isNaN(Number(name)));
    assert.ok(proto.length > 20, `found the proto's reasons: ${proto.join(", ")}`);
    assert.ok(proto.includes("UNSPECIFIED") && proto.includes("ORGANIZATION_NOT_FOUND"));
    assert.deepEqual(Object.values(ErrorReason).sort(), proto.sort());
    assert.deepEqual(Object.keys(ErrorReason), Object.values(ErrorReason));
  });

  it("accepts host:port and http(s) URLs, and nothing else", () => {
    assert.throws(() => createKeyportClient(""), /empty address/);
    assert.throws(() => createKeyportClient("ftp://example.com"), /unsupported address scheme/);
    assert.doesNotThrow(() => createKeyportClient("[::1]:50051").close());
    assert.doesNotThrow(() => createKeyportClient("https://auth.example.com/").close());
    assert.equal(baseUrlOf("127.0.0.1:50051"), "http://127.0.0.1:50051");
    assert.equal(baseUrlOf("auth.internal:443", true), "https://auth.internal:443");
    assert.equal(baseUrlOf("HTTPS://auth.example.com/keyport/"), "HTTPS://auth.example.com/keyport");
  });
});
