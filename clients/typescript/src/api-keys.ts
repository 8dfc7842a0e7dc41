/**
 * API keys: long-lived credentials of machine callers, `kpa_<id>.<secret>`.
 * The RPCs are the generated ones on `KeyportClient.apiKeys`
 * (`createApiKey`, `listApiKeys`, `revokeApiKey`, `rotateApiKey`), each
 * with the owner's session token in its call options (`withSession(token)`),
 * or an admin's for a service account's keys (`serviceAccountId`); service
 * accounts themselves are `AdminService` calls on `KeyportClient.admin`
 * (`createServiceAccount`, `listServiceAccounts`,
 * `setServiceAccountRoles`, `deleteServiceAccount`).
 *
 * A key is checked as a session token is, with `authorize({ token: key,
 * permissions })`, and may be the bearer of `AdminService` calls
 * (`withSession(key)`) when its scopes and its owner's roles grant what
 * they need. Every other call wants a session and answers
 * `API_KEY_NOT_ACCEPTED` to a key; {@link isApiKey} tells the two apart
 * before the call.
 *
 * @packageDocumentation
 */

/** The prefix of every API key (`kpa_<id>.<secret>`); session tokens start with `kp_`. */
export const API_KEY_PREFIX = "kpa_";

/**
 * Whether `token` looks like an API key rather than a session token: what
 * decides which check a bearer credential gets (a key: `authorize`; a
 * session: `getSession` too). Not a validation: Keyport still answers
 * `UNAUTHENTICATED` to a malformed, unknown or revoked key.
 *
 * @example
 * ```ts
 * const token = request.headers.get("authorization")?.replace(/^Bearer /i, "") ?? "";
 * const { allowed, apiKey, user, serviceAccount } = await keyport.authorization.authorize({ token, permissions: ["posts:read"] });
 * if (isApiKey(token)) console.log(`key ${apiKey?.name} of ${user?.email ?? serviceAccount?.name}`);
 * ```
 *
 * @param token - A bearer credential, e.g. from an `Authorization` header.
 * @returns `true` when it starts with {@link API_KEY_PREFIX}.
 */
export function isApiKey(token: string): boolean {
  return token.startsWith(API_KEY_PREFIX);
}
