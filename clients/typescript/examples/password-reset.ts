import { errorReason, type KeyportClient, tokenFromLink } from "@keyport/client";

/** POST /forgot-password (form field `email`): the answer is the same whether or not an account has the address. */
export async function forgotPassword(keyport: KeyportClient, request: Request): Promise<Response> {
  const email = String((await request.formData()).get("email") ?? "");
  try {
    await keyport.users.requestPasswordReset({ email });
    return new Response("If an account has this address, we mailed it a link.");
  } catch (err) {
    if (errorReason(err) !== "INVALID_ARGUMENT") throw err; // MAIL_DISABLED, RATE_LIMITED, ...
    return new Response("Please enter your email address.", { status: 400 });
  }
}

/** POST /reset-password?token=kpm_... (the page the mailed link opens; form field `password`). */
export async function resetPassword(keyport: KeyportClient, request: Request): Promise<Response> {
  const token = tokenFromLink(request.url);
  if (token === undefined) return new Response("This link is incomplete: ask for a new one.", { status: 400 });
  const newPassword = String((await request.formData()).get("password") ?? "");
  try {
    await keyport.users.resetPassword({ token, newPassword });
    // Every session of the account ended, and nobody is signed in: on to the sign-in page.
    return new Response(null, { status: 303, headers: { location: "/sign-in" } });
  } catch (err) {
    switch (errorReason(err)) {
      case "EMAIL_TOKEN_INVALID":
        return new Response("This link was used, replaced or has expired: ask for a new one.", { status: 400 });
      case "WEAK_PASSWORD":
      case "PASSWORD_TOO_LONG":
      case "PASSWORD_TOO_COMMON":
      case "PASSWORD_CONTAINS_EMAIL":
        return new Response("Please choose another password.", { status: 400 }); // the link still works
      default:
        throw err;
    }
  }
}
