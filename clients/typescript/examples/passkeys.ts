import {
  clearPasskeyCeremonyCookie,
  errorReason,
  type KeyportClient,
  passkeyCeremonyCookie,
  passkeyCeremonyFromCookie,
  withSession,
} from "@keyport/client";

/** POST /sign-in/passkey/start: the options for `navigator.credentials.get`; the ceremony stays in this browser. */
export async function startPasskeySignIn(keyport: KeyportClient): Promise<Response> {
  const start = await keyport.sessions.startPasskeySignIn({});
  return new Response(start.options, {
    headers: { "content-type": "application/json", "set-cookie": passkeyCeremonyCookie(start) },
  });
}

/** POST /sign-in/passkey (body: the credential's `toJSON()`): signs in at AAL2, no password asked. */
export async function finishPasskeySignIn(keyport: KeyportClient, request: Request): Promise<Response> {
  const ceremony = passkeyCeremonyFromCookie(request.headers.get("cookie")) ?? ""; // none: another browser
  const headers = new Headers({ "set-cookie": clearPasskeyCeremonyCookie() }); // used up, right or wrong
  try {
    const { session } = await keyport.sessions.finishPasskeySignIn({ ceremony, credential: await request.text() });
    headers.append("set-cookie", `session=${session!.token}; Path=/; HttpOnly; Secure; SameSite=Lax`);
    return new Response(null, { status: 204, headers });
  } catch (err) {
    if (errorReason(err) !== "PASSKEY_INVALID") throw err;
    return new Response("That passkey did not work: try again.", { status: 400, headers });
  }
}

/** POST /passkeys/start, for the signed-in user of `token`: the options for `navigator.credentials.create`. */
export async function startRegistration(keyport: KeyportClient, token: string): Promise<Response> {
  // STEP_UP_REQUIRED for a user with a second factor and no recent step-up.
  const { ceremony, options } = await keyport.passkeys.startPasskeyRegistration({}, withSession(token));
  return Response.json({ ceremony, options: JSON.parse(options) }); // bound to the session: the page may keep it
}

/** POST /passkeys (body: `{ ceremony, credential }`, the new credential's `toJSON()`): stores the passkey. */
export async function finishRegistration(keyport: KeyportClient, token: string, request: Request): Promise<Response> {
  const { ceremony, credential } = (await request.json()) as { ceremony: string; credential: unknown };
  try {
    const { passkey } = await keyport.passkeys.finishPasskeyRegistration(
      { ceremony, credential: JSON.stringify(credential), name: "" }, // "": named "Passkey"
      withSession(token),
    );
    return Response.json({ id: passkey!.id, name: passkey!.name }); // the user's other sessions ended
  } catch (err) {
    if (errorReason(err) !== "PASSKEY_INVALID") throw err;
    return new Response("That passkey did not work: start again.", { status: 400 });
  }
}

/** POST /step-up/passkey/start: the options for `navigator.credentials.get`, listing the user's passkeys. */
export async function startStepUp(keyport: KeyportClient, token: string): Promise<Response> {
  // SECOND_FACTOR_NOT_ENROLLED when the user has no passkey.
  const { ceremony, options } = await keyport.twoFactor.startPasskeyStepUp({}, withSession(token));
  return Response.json({ ceremony, options: JSON.parse(options) });
}

/** POST /step-up/passkey (body: `{ ceremony, credential }`): the session is AAL2 again, for sensitive calls. */
export async function finishStepUp(keyport: KeyportClient, token: string, request: Request): Promise<Response> {
  const { ceremony, credential } = (await request.json()) as { ceremony: string; credential: unknown };
  try {
    await keyport.twoFactor.stepUp(
      { answer: { case: "passkey", value: { ceremony, credential: JSON.stringify(credential) } } },
      withSession(token),
    );
    return new Response(null, { status: 204 });
  } catch (err) {
    if (errorReason(err) !== "PASSKEY_INVALID") throw err;
    return new Response("That passkey did not work: start again.", { status: 400 });
  }
}
