import { errorReason, type KeyportClient, type SessionGrant, signInChallenge } from "@keyport/client";

/**
 * Signs in with a password and, for a user with a second factor, a code that
 * `askForCode` gets from them: the authenticator app's six digits, or a backup
 * code. (A web app asks on a page of its own, and keeps the challenge in that
 * browser in between: `challengeCookie(challenge)` sets the cookie, the code
 * page reads it with `challengeFromCookie`, and `clearChallengeCookie()`
 * deletes it once signed in.)
 */
export async function signIn(
  keyport: KeyportClient,
  email: string,
  password: string,
  askForCode: () => Promise<string>,
): Promise<SessionGrant> {
  const response = await keyport.sessions.signIn({ email, password });
  const challenge = signInChallenge(response);
  if (challenge === undefined) {
    if (response.outcome.case !== "session") throw new Error("a sign-in step this app does not know");
    return response.outcome.value; // no second factor: an AAL1 session
  }
  for (let tries = 3; ; tries--) {
    const code = await askForCode();
    const answer = /^\d{6}$/.test(code.replace(/\s/g, ""))
      ? ({ case: "totpCode", value: code } as const)
      : ({ case: "backupCode", value: code } as const); // xxxx-xxxx-xxxx-xxxx
    try {
      const { session } = await keyport.sessions.completeSignIn({ challenge: challenge.challenge, answer });
      return session!; // an AAL2 session
    } catch (err) {
      // SIGN_IN_CHALLENGE_INVALID (expired, used, out of answers): sign in again.
      if (errorReason(err) !== "SECOND_FACTOR_INVALID" || tries === 1) throw err;
    }
  }
}
