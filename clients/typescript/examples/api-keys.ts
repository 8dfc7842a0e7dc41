import { errorReason, isApiKey, type KeyportClient, withSession } from "@keyport/client";

/** The settings page's "New API key": the secret is shown this once (Keyport keeps only its hash), so show it now. */
export async function newApiKey(keyport: KeyportClient, sessionToken: string, name: string, scopes: string[]): Promise<string> {
  const { secret } = await keyport.apiKeys.createApiKey({ name, scopes }, withSession(sessionToken)); // a recent sign-in
  return secret; // kpa_<id>.<secret>; listApiKeys never shows it again
}

/** An API route's check of `Authorization: Bearer kpa_...`: who calls, or the response to send instead. */
export async function apiCaller(keyport: KeyportClient, authorization: string | null, permissions: string[]): Promise<string | Response> {
  const token = authorization?.replace(/^Bearer\s+/i, "") ?? "";
  if (!isApiKey(token)) return new Response("Send an API key.", { status: 401 });
  try {
    const { allowed, apiKey, user, serviceAccount } = await keyport.authorization.authorize({ token, permissions });
    if (!allowed) return new Response("The key does not allow this.", { status: 403 }); // its scopes, and its owner's roles
    return `${apiKey!.name} of ${user?.email ?? `service account ${serviceAccount!.name}`}`;
  } catch (err) {
    const reason = errorReason(err);
    if (reason === "UNAUTHENTICATED" || reason === "API_KEY_EXPIRED") {
      return new Response("Unknown, revoked or expired key.", { status: 401 });
    }
    throw err; // PERMISSION_UNKNOWN: a name outside the server's catalogue, a bug in the app
  }
}

/** Replaces a key: the old one keeps working for a day, while deployments move to the new secret. */
export async function rotateApiKey(keyport: KeyportClient, sessionToken: string, apiKeyId: string): Promise<string> {
  const { secret } = await keyport.apiKeys.rotateApiKey({ apiKeyId, grace: { seconds: 86_400n } }, withSession(sessionToken));
  return secret; // API_KEY_NOT_FOUND for a key that is not the caller's
}

/** An admin's key for a CI job: a service account with `roles`, and a key of it that may read users. */
export async function serviceAccountKey(keyport: KeyportClient, adminToken: string, name: string, roles: string[]): Promise<string> {
  const asAdmin = withSession(adminToken); // users:write
  const { serviceAccount } = await keyport.admin.createServiceAccount({ name, description: "CI", roles }, asAdmin);
  const request = { name: "ci", scopes: ["users:read"], serviceAccountId: serviceAccount!.id };
  const { secret } = await keyport.apiKeys.createApiKey(request, asAdmin);
  return secret; // keyport.admin.listUsers({}, withSession(secret)) works with it; deleteServiceAccount revokes it
}
