import { errorReason, type KeyportClient, type User } from "@keyport/client";

/**
 * Lets a request through when the holder of its session `token` has every one of `permissions`:
 * answers the user, or the response to send instead (401: sign in again, 403: not allowed).
 */
export async function authorize(keyport: KeyportClient, token: string, permissions: string[]): Promise<User | Response> {
  try {
    const { allowed, decisions, user } = await keyport.authorization.authorize({ token, permissions });
    if (allowed) return user!;
    const denied = decisions.filter((decision) => !decision.allowed).map((decision) => decision.permission);
    return new Response(`Not allowed: ${denied.join(", ")}`, { status: 403 });
  } catch (err) {
    const reason = errorReason(err);
    if (reason === "UNAUTHENTICATED" || reason === "SESSION_EXPIRED") {
      return new Response("Sign in again.", { status: 401 });
    }
    throw err; // PERMISSION_UNKNOWN: a name outside the server's catalogue, a bug in the app
  }
}
