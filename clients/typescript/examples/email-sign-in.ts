import {
  challengeCookie,
  clearEmailSignInCookie,
  emailSignInBinding,
  emailSignInCookie,
  errorReason,
  type KeyportClient,
  signInChallenge,
  tokenFromLink,
} from "@keyport/client";

/** POST /sign-in/email/start (form field `email`): mails a code and a link, bound to this browser. */
export async function startEmailSignIn(keyport: KeyportClient, request: Request): Promise<Response> {
  const email = String((await request.formData()).get("email") ?? "");
  try {
    const start = await keyport.sessions.startEmailSignIn({ email }); // the same answer for every address
    return new Response("Check your mail, and enter the code here.", {
      headers: { "set-cookie": emailSignInCookie(start) },
    });
  } catch (err) {
    if (errorReason(err) !== "INVALID_ARGUMENT") throw err;
    return new Response("Please check the address.", { status: 400 });
  }
}

/** POST /sign-in/email (form field `code`), or GET /sign-in/email?token=kpm_... (the mailed link). */
export async function finishEmailSignIn(keyport: KeyportClient, request: Request): Promise<Response> {
  const binding = emailSignInBinding(request.headers.get("cookie")) ?? ""; // none: another browser
  const token = tokenFromLink(request.url);
  const code = token === undefined ? String((await request.formData()).get("code") ?? "") : "";
  try {
    const response = await keyport.sessions.finishEmailSignIn({
      binding,
      proof: token !== undefined ? { case: "token", value: token } : { case: "code", value: code },
    });
    const headers = new Headers({ location: "/" });
    headers.append("set-cookie", clearEmailSignInCookie());
    const challenge = signInChallenge(response);
    if (challenge !== undefined) {
      // An authenticator app is on: no session yet. Keep the challenge in this browser, and ask for the code.
      headers.set("location", "/sign-in/second-factor");
      headers.append("set-cookie", challengeCookie(challenge)); // until the challenge expires
    } else {
      headers.append("set-cookie", `session=${response.session!.token}; Path=/; HttpOnly; Secure; SameSite=Lax`);
    }
    return new Response(null, { status: 303, headers });
  } catch (err) {
    if (errorReason(err) !== "EMAIL_TOKEN_INVALID") throw err;
    // A wrong, used or expired code or link, or one opened in another browser: one answer for all.
    return new Response("That did not work: start again, in this browser.", { status: 400 });
  }
}
