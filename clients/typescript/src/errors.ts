/**
 * Reading Keyport's rich errors: `google.rpc.ErrorInfo` (a stable `reason`),
 * `google.rpc.BadRequest` (field violations) and `google.rpc.RetryInfo` (how
 * long to wait) from a failed call.
 *
 * @packageDocumentation
 */

import { durationMs } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";

import {
  BadRequestSchema,
  type BadRequest_FieldViolation,
  type ErrorInfo,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";
import type { ErrorReason as ProtoErrorReason } from "./gen/keyport/v1/errors_pb.js";

/** `ErrorInfo.domain` of every error Keyport sends. */
export const KEYPORT_ERROR_DOMAIN = "keyport.dev";

/** The reason names of the proto's `keyport.v1.ErrorReason`, `UNSPECIFIED` included. */
type ProtoReasonName = keyof typeof ProtoErrorReason;

/**
 * The stable error reasons Keyport sends in `ErrorInfo.reason`: one per value
 * of the proto's `keyport.v1.ErrorReason` (`proto/keyport/v1/errors.proto`),
 * which the compiler checks, so a reason added there does not build until it
 * is named here. Branch on these, never on messages.
 *
 * A newer server may send a reason not listed here; {@link errorReason}
 * returns `UNSPECIFIED` for it (the proto's value 0, which Keyport itself
 * never sends), so a `switch` that handles `UNSPECIFIED` (or has a
 * `default`) handles it; `errorInfo(err)?.reason` has the raw string.
 */
export const ErrorReason = {
  /**
   * The fallback: Keyport sent a reason this version of the SDK does not know
   * (a newer server's). Handle it by the gRPC code (`ConnectError.code`).
   */
  UNSPECIFIED: "UNSPECIFIED",
  /** Malformed, empty or oversized input; see {@link fieldViolations}. */
  INVALID_ARGUMENT: "INVALID_ARGUMENT",
  /** The password is shorter than the server's minimum. */
  WEAK_PASSWORD: "WEAK_PASSWORD",
  /** The password is longer than the server's maximum. */
  PASSWORD_TOO_LONG: "PASSWORD_TOO_LONG",
  /** The new password is one of the 100,000 most common passwords. */
  PASSWORD_TOO_COMMON: "PASSWORD_TOO_COMMON",
  /** The new password is, or contains, the account's email address. */
  PASSWORD_CONTAINS_EMAIL: "PASSWORD_CONTAINS_EMAIL",
  /** Sign-up with an email address that already has an account. */
  EMAIL_TAKEN: "EMAIL_TAKEN",
  /** Unknown email or wrong password (deliberately indistinguishable). */
  INVALID_CREDENTIALS: "INVALID_CREDENTIALS",
  /** No, malformed, unknown or revoked session token. */
  UNAUTHENTICATED: "UNAUTHENTICATED",
  /** The session token was valid but its session has expired. */
  SESSION_EXPIRED: "SESSION_EXPIRED",
  /** The caller is authenticated but not allowed to do this. */
  PERMISSION_DENIED: "PERMISSION_DENIED",
  /** No such session of the calling user. */
  SESSION_NOT_FOUND: "SESSION_NOT_FOUND",
  /** The request message is not valid protobuf for its RPC. */
  MALFORMED_REQUEST: "MALFORMED_REQUEST",
  /** Too many failed attempts; the status also carries `RetryInfo`. */
  RATE_LIMITED: "RATE_LIMITED",
  /** The server is overloaded (e.g. password hashing saturated); retry later. */
  RESOURCE_EXHAUSTED: "RESOURCE_EXHAUSTED",
  /** The server cannot reach its database; retry later. */
  UNAVAILABLE: "UNAVAILABLE",
  /** An internal error; the cause is only in the server's logs. */
  INTERNAL: "INTERNAL",
  /** `StartOAuth` with a provider id that is not configured. */
  OAUTH_PROVIDER_UNKNOWN: "OAUTH_PROVIDER_UNKNOWN",
  /** The redirect URI is not exactly in the server's list, or not the one the flow started with. */
  REDIRECT_URI_NOT_ALLOWED: "REDIRECT_URI_NOT_ALLOWED",
  /** `FinishOAuth` with a missing, wrong, replayed or expired state or binding: start again. */
  OAUTH_STATE_INVALID: "OAUTH_STATE_INVALID",
  /** The provider refused (e.g. the user cancelled) or was unreachable, or the code exchange failed. */
  OAUTH_PROVIDER_ERROR: "OAUTH_PROVIDER_ERROR",
  /** The provider's id_token failed verification. */
  OAUTH_ID_TOKEN_INVALID: "OAUTH_ID_TOKEN_INVALID",
  /** The email has a Keyport account that may not be joined automatically: sign in and link. */
  ACCOUNT_LINK_REFUSED: "ACCOUNT_LINK_REFUSED",
  /** The provider identity is linked to another user. */
  ALREADY_LINKED: "ALREADY_LINKED",
  /** `UnlinkAccount` of an identity the caller does not have. */
  LINKED_ACCOUNT_NOT_FOUND: "LINKED_ACCOUNT_NOT_FOUND",
  /** `UnlinkAccount` of the caller's only way to sign in. */
  LAST_SIGN_IN_METHOD: "LAST_SIGN_IN_METHOD",
  /** A verification or password-reset link's token is unknown, used, replaced or expired: request a new link. */
  EMAIL_TOKEN_INVALID: "EMAIL_TOKEN_INVALID",
  /** The call needs to send mail and the server has no mail delivery configured. */
  MAIL_DISABLED: "MAIL_DISABLED",
  /** `SignIn` with the right password for an unverified address, on a server that requires verified addresses. */
  EMAIL_NOT_VERIFIED: "EMAIL_NOT_VERIFIED",
  /** A sensitive change from an account without a password needs a recent sign-in. */
  REAUTHENTICATION_REQUIRED: "REAUTHENTICATION_REQUIRED",
  /** `CompleteSignIn` with a challenge that is empty, malformed, unknown, used, expired or out of answers: sign in again from the first factor. */
  SIGN_IN_CHALLENGE_INVALID: "SIGN_IN_CHALLENGE_INVALID",
  /** A second factor's answer (a TOTP or backup code, or a passkey's answer to a sign-in challenge) is wrong, reused or malformed. */
  SECOND_FACTOR_INVALID: "SECOND_FACTOR_INVALID",
  /** A sensitive call from a user with a second factor needs a fresh `AAL2` session: pass a factor with `StepUp` and retry. */
  STEP_UP_REQUIRED: "STEP_UP_REQUIRED",
  /** `EnrollTotp` for a user whose authenticator app is already on: disable it first. */
  SECOND_FACTOR_ALREADY_ENROLLED: "SECOND_FACTOR_ALREADY_ENROLLED",
  /** The call needs a second factor the user does not have on. */
  SECOND_FACTOR_NOT_ENROLLED: "SECOND_FACTOR_NOT_ENROLLED",
  /** The server has no `[passkeys]` section, so passkey calls are off. */
  PASSKEYS_DISABLED: "PASSKEYS_DISABLED",
  /** A passkey ceremony is empty, malformed, unknown, used, expired or another session's, or the authenticator's answer does not verify: start a new ceremony. */
  PASSKEY_INVALID: "PASSKEY_INVALID",
  /** `RenamePasskey` or `DeletePasskey` with an id that is not one of the caller's passkeys. */
  PASSKEY_NOT_FOUND: "PASSKEY_NOT_FOUND",
  /** `Authorize` named a permission outside the server's catalogue, or one that is not `resource:action`: fix the name, or add it to the catalogue. */
  PERMISSION_UNKNOWN: "PERMISSION_UNKNOWN",
  /** The credentials were right, but an admin banned the account: no sign-in succeeds while the ban lasts (`AdminService.BanUser`). */
  USER_BANNED: "USER_BANNED",
  /** An admin call named a well-formed user id that no user has. */
  USER_NOT_FOUND: "USER_NOT_FOUND",
  /** `RevokeApiKey` or `RotateApiKey` named a key that is not one of the caller's (or the named service account's): another owner's key answers the same as an unknown one. */
  API_KEY_NOT_FOUND: "API_KEY_NOT_FOUND",
  /** An API key past its expiry was presented: create a new one. */
  API_KEY_EXPIRED: "API_KEY_EXPIRED",
  /** A call named a well-formed service account id that no service account has. */
  SERVICE_ACCOUNT_NOT_FOUND: "SERVICE_ACCOUNT_NOT_FOUND",
  /** An API key was presented where only a session is accepted (`getSession`, the user's own account, sessions, factors and keys): check keys with `authorize`. */
  API_KEY_NOT_ACCEPTED: "API_KEY_NOT_ACCEPTED",
  /** No such organization among the caller's: one they are not a member of answers the same as an unknown one. */
  ORGANIZATION_NOT_FOUND: "ORGANIZATION_NOT_FOUND",
  /** The user named is not a member of the organization. */
  MEMBER_NOT_FOUND: "MEMBER_NOT_FOUND",
  /** The invitation is unknown, revoked, used, expired, or for another address than the caller's verified one: ask for a new one. */
  INVITATION_INVALID: "INVITATION_INVALID",
  /** The organization's owner cannot leave it or be removed, nor delete their account while they own one (`deleteCurrentUser`): transfer the ownership first (`transferOwnership`), or delete it. */
  LAST_OWNER: "LAST_OWNER",
  /** Another organization has this slug. */
  SLUG_TAKEN: "SLUG_TAKEN",
  /** This server issues no access tokens (`[access_tokens]` has no `issuer`). */
  ACCESS_TOKENS_DISABLED: "ACCESS_TOKENS_DISABLED",
  /** The audience asked of `issueAccessToken` is not one of the server's `access_tokens.audiences`. */
  AUDIENCE_NOT_ALLOWED: "AUDIENCE_NOT_ALLOWED",
  /** `WatchSessionEvents` ended because events may have been lost: flush and subscribe again. */
  EVENTS_LOST: "EVENTS_LOST",
} as const satisfies { readonly [Name in ProtoReasonName]: Name };

/** One of the reasons in {@link ErrorReason}. */
export type ErrorReason = (typeof ErrorReason)[keyof typeof ErrorReason];

const knownReasons: ReadonlySet<string> = new Set(Object.values(ErrorReason));

/**
 * Whether `value` is a member of {@link ErrorReason}: one of the reasons this
 * version of the SDK knows, or `UNSPECIFIED`.
 *
 * @param value - Any string, e.g. `errorInfo(err)?.reason`.
 * @returns `true` for a member of {@link ErrorReason}.
 */
export function isErrorReason(value: string): value is ErrorReason {
  return knownReasons.has(value);
}

/**
 * The `google.rpc.ErrorInfo` that Keyport attached to a failed call (the one
 * with domain {@link KEYPORT_ERROR_DOMAIN}), decoded from the
 * `grpc-status-details-bin` trailer.
 *
 * @param err - Anything caught from a client call.
 * @returns The ErrorInfo, or `undefined` when `err` is not a
 *   `ConnectError` or carries no Keyport ErrorInfo (e.g. a transport failure
 *   or a deadline that expired on the client).
 */
export function errorInfo(err: unknown): ErrorInfo | undefined {
  if (!(err instanceof ConnectError)) {
    return undefined;
  }
  return err.findDetails(ErrorInfoSchema).find((info) => info.domain === KEYPORT_ERROR_DOMAIN);
}

/**
 * The stable reason of a Keyport error, e.g. `"INVALID_CREDENTIALS"`,
 * `"EMAIL_TAKEN"`, `"WEAK_PASSWORD"`, `"UNAUTHENTICATED"` or
 * `"SESSION_EXPIRED"` (see {@link ErrorReason}). The result is typed as the
 * {@link ErrorReason} union, so the compiler checks the reasons it is
 * compared with (a misspelt one does not build) and a `switch` over it.
 *
 * @example
 * ```ts
 * try {
 *   await keyport.sessions.signIn({ email, password });
 * } catch (err) {
 *   if (errorReason(err) === "INVALID_CREDENTIALS") showWrongPassword();
 *   else throw err;
 * }
 * ```
 *
 * @param err - Anything caught from a client call.
 * @returns `ErrorInfo.reason` of the Keyport ErrorInfo detail; `"UNSPECIFIED"`
 *   when that reason is not one this SDK knows (a newer server's;
 *   `errorInfo(err)?.reason` has the raw string); `undefined` when there is
 *   no Keyport ErrorInfo (see {@link errorInfo}).
 */
export function errorReason(err: unknown): ErrorReason | undefined {
  const info = errorInfo(err);
  if (info === undefined) {
    return undefined;
  }
  return isErrorReason(info.reason) ? info.reason : ErrorReason.UNSPECIFIED;
}

/**
 * How long to wait before trying again, from the `google.rpc.RetryInfo` that
 * Keyport attaches to a `RATE_LIMITED` error.
 *
 * @example
 * ```ts
 * } catch (err) {
 *   const delayMs = retryDelay(err);
 *   if (delayMs === undefined) throw err;
 *   await new Promise((resolve) => setTimeout(resolve, delayMs));
 * }
 * ```
 *
 * @param err - Anything caught from a client call.
 * @returns The `retry_delay` of the first RetryInfo detail, in milliseconds;
 *   `undefined` when `err` is not a `ConnectError` or carries no RetryInfo
 *   with a delay (every reason but `RATE_LIMITED`).
 */
export function retryDelay(err: unknown): number | undefined {
  if (!(err instanceof ConnectError)) {
    return undefined;
  }
  const delay = err.findDetails(RetryInfoSchema).find((info) => info.retryDelay !== undefined)?.retryDelay;
  return delay === undefined ? undefined : durationMs(delay);
}

/**
 * The field violations (`google.rpc.BadRequest`) that Keyport attaches to an
 * `INVALID_ARGUMENT` error, e.g. `[{ field: "email", description: "..." }]`.
 *
 * @param err - Anything caught from a client call.
 * @returns Every field violation of every BadRequest detail; empty when there
 *   are none.
 */
export function fieldViolations(err: unknown): BadRequest_FieldViolation[] {
  if (!(err instanceof ConnectError)) {
    return [];
  }
  return err.findDetails(BadRequestSchema).flatMap((badRequest) => badRequest.fieldViolations);
}
