/**
 * Sending the end user's session token: `authorization: Bearer <token>`.
 *
 * @packageDocumentation
 */

import type { CallOptions, Interceptor } from "@connectrpc/connect";

/** The metadata key that carries the session token. */
export const AUTHORIZATION_HEADER = "authorization";

/**
 * Where a client finds the session token for a call: a fixed token, or a
 * function asked on every call (return `undefined` to send none).
 */
export type TokenSource = string | (() => string | undefined);

/**
 * The `authorization` metadata value for a session token.
 *
 * @param token - A session token from `SignIn` or `SignUp` (`kp_<id>.<secret>`).
 * @returns `Bearer <token>`.
 */
export function bearer(token: string): string {
  return `Bearer ${token}`;
}

/**
 * Call options that send `token` as the caller's session, for user-scoped
 * RPCs (`ListSessions`, `SignOut`, `GetCurrentUser`, ...).
 *
 * @example
 * ```ts
 * const { sessions } = await keyport.sessions.listSessions({}, withSession(token));
 * ```
 *
 * @param token - The session token.
 * @param options - Other call options (`timeoutMs`, `signal`, headers) to
 *   merge; an `authorization` header in them is replaced.
 * @returns Call options for one call.
 */
export function withSession(token: string, options: CallOptions = {}): CallOptions {
  const headers = new Headers(options.headers);
  headers.set(AUTHORIZATION_HEADER, bearer(token));
  return { ...options, headers };
}

/**
 * An interceptor that adds the session token from `source` to every call
 * that does not already carry an `authorization` header (so
 * {@link withSession} on a single call wins).
 *
 * @param source - The token, or a function that returns the current one.
 * @returns A Connect interceptor for a transport's `interceptors`.
 */
export function sessionInterceptor(source: TokenSource): Interceptor {
  return (next) => async (req) => {
    const token = typeof source === "function" ? source() : source;
    if (token !== undefined && token !== "" && !req.header.has(AUTHORIZATION_HEADER)) {
      req.header.set(AUTHORIZATION_HEADER, bearer(token));
    }
    return next(req);
  };
}
