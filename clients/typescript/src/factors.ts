/**
 * Helpers for second factors (`docs/second-factors.md`). A user with an
 * authenticator app on gets no session from a first factor alone: `SignIn`,
 * `FinishEmailSignIn` and `FinishOAuth` answer a `SignInChallenge`, and
 * `CompleteSignIn` with the challenge and a TOTP or backup code issues the
 * (`AAL2`) session. {@link signInChallenge} tells the two answers apart.
 *
 * It does not call Keyport: the RPCs stay the generated ones on
 * `KeyportClient` (`sessions.completeSignIn`, and `twoFactor` for
 * enrolment and `StepUp`).
 *
 * @packageDocumentation
 */

import type { FinishOAuthResponse } from "./gen/keyport/v1/oauth_service_pb.js";
import type { SignInChallenge } from "./gen/keyport/v1/session_pb.js";
import type { FinishEmailSignInResponse, SignInResponse } from "./gen/keyport/v1/session_service_pb.js";

/**
 * The second-factor challenge of a sign-in's answer, if it is one: the user
 * has a second factor, and the sign-in finishes with `CompleteSignIn`.
 *
 * @example
 * ```ts
 * const response = await keyport.sessions.signIn({ email, password });
 * const challenge = signInChallenge(response);
 * if (challenge !== undefined) {
 *   // Keep challenge.challenge in an HttpOnly cookie of this browser, and ask for the code.
 *   const { session } = await keyport.sessions.completeSignIn({
 *     challenge: challenge.challenge,
 *     answer: { case: "totpCode", value: code },
 *   });
 * }
 * ```
 *
 * @param response - The response of `SignIn`, `FinishEmailSignIn` or
 *   `FinishOAuth`.
 * @returns The challenge (`challenge` is `"kpc_..."`, `factors` the factors
 *   the user can answer with, `expiresAt` when it stops working), or
 *   `undefined` when the response is not a challenge: it holds a session
 *   (or, for `FinishOAuth`, a linked account).
 */
export function signInChallenge(
  response: SignInResponse | FinishEmailSignInResponse | FinishOAuthResponse,
): SignInChallenge | undefined {
  if ("outcome" in response) {
    return response.outcome.case === "challenge" ? response.outcome.value : undefined;
  }
  return response.challenge;
}
