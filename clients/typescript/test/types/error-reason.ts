/**
 * Type-level tests, checked by `npm run typecheck` (tsc) and never run: they
 * hold when this file compiles. They import the built package, as an app
 * does.
 */

import { ErrorReason, errorReason, isErrorReason, retryDelay } from "@keyport/client";
import { errorReason as webErrorReason, retryDelay as webRetryDelay } from "@keyport/client/web";

/** `true` when `A` and `B` are the same type (not merely assignable). */
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

// errorReason returns the union, not `string`, from both entry points.
export const nodeReturnType: Equals<ReturnType<typeof errorReason>, ErrorReason | undefined> = true;
export const webReturnType: Equals<ReturnType<typeof webErrorReason>, ErrorReason | undefined> = true;

// The union names the social sign-in reasons too.
export const oauthReason: ErrorReason = "OAUTH_STATE_INVALID";
export const linkReason: ErrorReason = ErrorReason.LAST_SIGN_IN_METHOD;
// And the administration ones.
export const bannedReason: ErrorReason = "USER_BANNED";
export const notFoundReason: ErrorReason = ErrorReason.USER_NOT_FOUND;
// And the API keys' ones.
export const keyRefusedReason: ErrorReason = "API_KEY_NOT_ACCEPTED";
export const accountNotFoundReason: ErrorReason = ErrorReason.SERVICE_ACCOUNT_NOT_FOUND;
// And the organizations' ones.
export const lastOwnerReason: ErrorReason = "LAST_OWNER";
export const organizationNotFoundReason: ErrorReason = ErrorReason.ORGANIZATION_NOT_FOUND;

// @ts-expect-error: a reason Keyport never sends is not an ErrorReason.
export const notAReason: ErrorReason = "WRONG_PASSWORD";

// A reason from a newer server reads as the fallback member.
export const fallbackReason: ErrorReason = ErrorReason.UNSPECIFIED;

// The union is what `errorReason` answers, so a misspelt reason in a
// comparison does not build. (Were it `string`, these comparisons would
// compile, and the unused `@ts-expect-error`s would fail this file.)
export function isRateLimited(err: unknown): boolean {
  // @ts-expect-error: "RATE_LIMTED" is no reason; the types have no overlap.
  return errorReason(err) === "RATE_LIMTED";
}
export function isNotUnauthenticated(err: unknown): boolean {
  // @ts-expect-error: "UNAUTHENTICATD" is no reason, from the web entry point either.
  return webErrorReason(err) !== "UNAUTHENTICATD";
}
export function isExpired(err: unknown): boolean {
  switch (errorReason(err)) {
    // @ts-expect-error: a misspelt case is not comparable to the union.
    case "SESION_EXPIRED":
      return true;
    default:
      return false;
  }
}
// The same comparisons, spelt right, build.
export const spelledRight = (err: unknown): boolean =>
  errorReason(err) === "RATE_LIMITED" || webErrorReason(err) === ErrorReason.SESSION_EXPIRED;

// retryDelay answers milliseconds, or undefined without RetryInfo.
export const retryDelayType: Equals<ReturnType<typeof retryDelay>, number | undefined> = true;
export const webRetryDelayType: Equals<ReturnType<typeof webRetryDelay>, number | undefined> = true;

export function narrowsAString(raw: string): ErrorReason | undefined {
  return isErrorReason(raw) ? raw : undefined;
}

/**
 * A `switch` over every reason: if a reason is added to `ErrorReason` without
 * a case here, `reason` is not `never` in the default branch and this file
 * stops compiling.
 */
export function describe(err: unknown): string {
  const reason = errorReason(err);
  switch (reason) {
    case undefined:
      return "not from Keyport";
    case "UNSPECIFIED":
      return "from a newer Keyport";
    case "INVALID_ARGUMENT":
    case "WEAK_PASSWORD":
    case "PASSWORD_TOO_LONG":
    case "PASSWORD_TOO_COMMON":
    case "PASSWORD_CONTAINS_EMAIL":
    case "MALFORMED_REQUEST":
    case "REDIRECT_URI_NOT_ALLOWED":
    case "OAUTH_STATE_INVALID":
    case "EMAIL_TOKEN_INVALID":
    case "SIGN_IN_CHALLENGE_INVALID":
    case "SECOND_FACTOR_INVALID":
    case "PASSKEY_INVALID":
    case "PERMISSION_UNKNOWN":
    case "AUDIENCE_NOT_ALLOWED":
      return "bad input";
    case "SLUG_TAKEN":
      return "exists";
    case "EMAIL_TAKEN":
    case "ALREADY_LINKED":
    case "SECOND_FACTOR_ALREADY_ENROLLED":
      return "exists";
    case "INVALID_CREDENTIALS":
    case "UNAUTHENTICATED":
    case "SESSION_EXPIRED":
    case "OAUTH_PROVIDER_ERROR":
    case "OAUTH_ID_TOKEN_INVALID":
    case "API_KEY_EXPIRED":
    case "API_KEY_NOT_ACCEPTED":
      return "sign in again";
    case "PERMISSION_DENIED":
    case "USER_BANNED":
      return "forbidden";
    case "SESSION_NOT_FOUND":
    case "OAUTH_PROVIDER_UNKNOWN":
    case "LINKED_ACCOUNT_NOT_FOUND":
    case "PASSKEY_NOT_FOUND":
    case "USER_NOT_FOUND":
    case "API_KEY_NOT_FOUND":
    case "SERVICE_ACCOUNT_NOT_FOUND":
    case "ORGANIZATION_NOT_FOUND":
    case "MEMBER_NOT_FOUND":
      return "not found";
    case "ACCOUNT_LINK_REFUSED":
    case "LAST_SIGN_IN_METHOD":
    case "MAIL_DISABLED":
    case "EMAIL_NOT_VERIFIED":
    case "REAUTHENTICATION_REQUIRED":
    case "STEP_UP_REQUIRED":
    case "SECOND_FACTOR_NOT_ENROLLED":
    case "PASSKEYS_DISABLED":
    case "ACCESS_TOKENS_DISABLED":
    case "INVITATION_INVALID":
    case "LAST_OWNER":
      return "refused";
    case "RATE_LIMITED":
    case "RESOURCE_EXHAUSTED":
    case "UNAVAILABLE":
    case "EVENTS_LOST":
      return "retry later";
    case "INTERNAL":
      return "server error";
    default: {
      const unhandled: never = reason;
      return unhandled;
    }
  }
}
