/**
 * What the Node and browser entry points share: the client shape, options
 * common to every transport, and address handling.
 *
 * @packageDocumentation
 */

import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";

import { sessionInterceptor, type TokenSource } from "./auth.js";
import { AdminService } from "./gen/keyport/v1/admin_service_pb.js";
import { ApiKeyService } from "./gen/keyport/v1/api_key_service_pb.js";
import { AuthorizationService } from "./gen/keyport/v1/authorization_service_pb.js";
import { OrganizationService } from "./gen/keyport/v1/organization_service_pb.js";
import { PasskeyService } from "./gen/keyport/v1/passkey_service_pb.js";
import { SessionService } from "./gen/keyport/v1/session_service_pb.js";
import { TwoFactorService } from "./gen/keyport/v1/two_factor_service_pb.js";
import { UserService } from "./gen/keyport/v1/user_service_pb.js";

/** Typed clients for Keyport's services over one transport. */
export interface KeyportClient {
  /**
   * `keyport.v1.UserService`: sign-up, the signed-in user's profile,
   * password and account, and the flows through the mailbox: verifying the
   * address (`RequestEmailVerification`, `VerifyEmail` with a link's token or
   * the mailed code), a forgotten password (`RequestPasswordReset`,
   * `ResetPassword`), a change of address (`RequestEmailChange`,
   * `ConfirmEmailChange`) and a first password for an account without one
   * (`RequestPasswordSetup`, `SetPassword`). See `tokenFromLink`.
   */
  readonly users: Client<typeof UserService>;
  /**
   * `keyport.v1.SessionService`: sign-in with a password or by email
   * (`StartEmailSignIn`, `FinishEmailSignIn` with the mailed code or link;
   * see `emailSignInCookie`), with a passkey alone (`StartPasskeySignIn`,
   * `FinishPasskeySignIn`; see `passkeyCeremonyCookie`), the second step of
   * a sign-in that answered a `challenge` (`CompleteSignIn`), token
   * validation, the user's sessions.
   */
  readonly sessions: Client<typeof SessionService>;
  /**
   * `keyport.v1.TwoFactorService`: the signed-in user's second factors, an
   * authenticator app (`EnrollTotp`, `ConfirmTotp`, `DisableTotp`) with
   * single-use backup codes (`RegenerateBackupCodes`), `ListFactors`, and
   * `StepUp` (with a code, or a passkey after `StartPasskeyStepUp`), which
   * raises the calling session to `AAL2` for sensitive calls that answer
   * `STEP_UP_REQUIRED`.
   */
  readonly twoFactor: Client<typeof TwoFactorService>;
  /**
   * `keyport.v1.PasskeyService`: the signed-in user's passkeys (WebAuthn):
   * register (`StartPasskeyRegistration`, `FinishPasskeyRegistration`),
   * list, rename and delete. A server without `[passkeys]` answers
   * `PASSKEYS_DISABLED`.
   */
  readonly passkeys: Client<typeof PasskeyService>;
  /**
   * `keyport.v1.AuthorizationService`: `Authorize`, which decides the
   * permissions a request needs for the holder of a session token (in the
   * body, as for `getSession`) and answers a decision per permission, the
   * session and its user. A name outside the server's catalogue answers
   * `PERMISSION_UNKNOWN`. The token may be an API key (`kpa_...`): the
   * answer then names the key (`apiKey`) and its owner (`user`, with no
   * `session`, or `serviceAccount`). With an `organizationId` (or else the
   * session's active organization) a session is also allowed what the
   * user's role there grants (`organizationId`, `organizationRole`).
   */
  readonly authorization: Client<typeof AuthorizationService>;
  /**
   * `keyport.v1.AdminService`, for admins: `listUsers` (see
   * `listAllUsers` for every page), `getUser`, `createUser`,
   * `setUserRoles`, `banUser`, `unbanUser`, `revokeUserSessions` and
   * `deleteUser`, and the service accounts that own API keys
   * (`createServiceAccount`, `listServiceAccounts`,
   * `setServiceAccountRoles`, `deleteServiceAccount`). Each call takes the
   * admin's session token (`withSession(token)`, or the client's `token`),
   * or an API key whose scopes grant the permission, and needs a
   * permission their roles grant (`users:read`, `users:write` or
   * `sessions:revoke`; the `admin` role grants all), else
   * `PERMISSION_DENIED`. An unknown user id answers `USER_NOT_FOUND`, an
   * unknown service account id `SERVICE_ACCOUNT_NOT_FOUND`.
   */
  readonly admin: Client<typeof AdminService>;
  /**
   * `keyport.v1.ApiKeyService`: the API keys (`kpa_<id>.<secret>`) of the
   * signed-in user, or of a service account (`serviceAccountId`, for an
   * admin): `createApiKey` (its answer's `secret` is shown this once),
   * `listApiKeys` (never a secret), `revokeApiKey` and `rotateApiKey`
   * (a new key and secret; the old key keeps working for `grace`). Each
   * call takes a session token (`withSession(token)`); an API key as the
   * bearer answers `API_KEY_NOT_ACCEPTED`. Another owner's or an unknown
   * key id answers `API_KEY_NOT_FOUND`. See `isApiKey`.
   */
  readonly apiKeys: Client<typeof ApiKeyService>;
  /**
   * `keyport.v1.OrganizationService`: the caller's organizations
   * (`createOrganization`, `listMyOrganizations`, `renameOrganization`,
   * `deleteOrganization`), their members (`listMembers`, `setMemberRole`,
   * `removeMember`, `leaveOrganization`, `transferOwnership`), invitations
   * (`createInvitation`, `listInvitations`, `revokeInvitation`,
   * `acceptInvitation`) and the session's active organization
   * (`setActiveOrganization`). Each call takes a session token
   * (`withSession(token)`; an API key answers `API_KEY_NOT_ACCEPTED`). An
   * organization the caller is not a member of answers
   * `ORGANIZATION_NOT_FOUND`, as an unknown one.
   */
  readonly organizations: Client<typeof OrganizationService>;
  /** The underlying Connect transport, for clients of other services. */
  readonly transport: Transport;
  /**
   * Closes the client's connection (HTTP/2 only; a no-op otherwise). Calls
   * made afterwards open a new connection. Idle connections do not keep a
   * Node process alive, so calling this is optional.
   */
  close(): void;
}

/**
 * The deadline in milliseconds of every unary call that neither the client's
 * `timeoutMs` nor the call's own options set: 2 seconds, the Rust client's
 * default request timeout (and the Go and Python SDKs' default).
 */
export const DEFAULT_TIMEOUT_MS = 2_000;

/** Options that every transport accepts. */
export interface CommonClientOptions {
  /**
   * Default deadline of every unary call in milliseconds, sent as
   * `grpc-timeout` (the server enforces it too): {@link DEFAULT_TIMEOUT_MS}
   * (2 s) unless set; `0` turns it off. A call overrides it with
   * `{ timeoutMs }` in its call options (`0`: no deadline). Server streams
   * (`watchSessionEvents`) never get it: they live long by design, so give
   * one a `signal` or a `timeoutMs` of its own.
   */
  timeoutMs?: number;
  /**
   * Session token to send as `authorization: Bearer <token>` on every call,
   * or a function that returns the current one. Per-call headers (see
   * `withSession`) take precedence.
   */
  token?: TokenSource;
  /** Extra Connect interceptors, run before the session interceptor. */
  interceptors?: Interceptor[];
}

/**
 * Turns an address into a base URL: `host:port` becomes
 * `http://host:port` (or `https://` when `tls` is true); `http://` and
 * `https://` URLs are kept as they are.
 *
 * @param address - `host:port`, `[::1]:port`, or an `http(s)://` URL.
 * @param tls - Whether a scheme-less address should use https.
 * @returns The base URL, without a trailing slash.
 * @throws Error on an empty address or another URL scheme.
 */
export function baseUrlOf(address: string, tls = false): string {
  const trimmed = address.trim();
  if (trimmed === "") {
    throw new Error("keyport: empty address");
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(trimmed)?.[1]?.toLowerCase();
  const url =
    scheme === undefined ? `${tls ? "https" : "http"}://${trimmed}` : trimmed;
  if (scheme !== undefined && scheme !== "http" && scheme !== "https") {
    throw new Error(`keyport: unsupported address scheme "${scheme}://" (use http:// or https://)`);
  }
  return url.replace(/\/+$/, "");
}

/**
 * The interceptors of a transport built from `options`.
 *
 * @param options - The client options.
 * @returns The caller's interceptors, then the session interceptor if a
 *   token source is set.
 */
export function interceptorsOf(options: CommonClientOptions): Interceptor[] {
  const interceptors = [...(options.interceptors ?? [])];
  if (options.token !== undefined) {
    interceptors.push(sessionInterceptor(options.token));
  }
  return interceptors;
}

/**
 * `transport` with a default deadline for its unary calls: a unary call
 * without a `timeoutMs` of its own gets `timeoutMs`; server streams are left
 * as they are. (A transport's own `defaultTimeoutMs` would apply to streams
 * too.)
 *
 * @param transport - A transport without a `defaultTimeoutMs`.
 * @param timeoutMs - The client's `timeoutMs`; `undefined` means
 *   {@link DEFAULT_TIMEOUT_MS}, `0` or less no default deadline.
 * @returns The transport to build the clients on.
 */
export function withUnaryDeadline(transport: Transport, timeoutMs: number | undefined): Transport {
  const defaultMs = timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (defaultMs <= 0) {
    return transport;
  }
  return {
    unary: (method, signal, callTimeoutMs, header, input, contextValues) =>
      transport.unary(method, signal, callTimeoutMs ?? defaultMs, header, input, contextValues),
    stream: (method, signal, callTimeoutMs, header, input, contextValues) =>
      transport.stream(method, signal, callTimeoutMs, header, input, contextValues),
  };
}

/**
 * Typed Keyport clients over an existing Connect transport, for callers that
 * build their own transport.
 *
 * @param transport - Any gRPC or gRPC-web Connect transport.
 * @param close - What {@link KeyportClient.close} does.
 * @returns The clients.
 */
export function keyportClientFor(transport: Transport, close: () => void = () => {}): KeyportClient {
  return {
    users: createClient(UserService, transport),
    sessions: createClient(SessionService, transport),
    twoFactor: createClient(TwoFactorService, transport),
    passkeys: createClient(PasskeyService, transport),
    authorization: createClient(AuthorizationService, transport),
    admin: createClient(AdminService, transport),
    apiKeys: createClient(ApiKeyService, transport),
    organizations: createClient(OrganizationService, transport),
    transport,
    close,
  };
}
