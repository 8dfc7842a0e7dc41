/**
 * {@link KeyportGuard}: decides whether one HTTP request (or gRPC call) has a
 * valid Keyport session, through a {@link SessionCache}. The framework
 * adapters (`@keyport/client/express`, `@keyport/client/fastify`, the Connect
 * and gRPC interceptors) are thin layers over {@link KeyportGuard.authenticate}.
 *
 * Only a bearer token (`Authorization: Bearer kp_...`) or the session cookie
 * (`__Host-keyport_session`) is a credential here; API keys (`kpa_...`) are
 * for permission checks (`authorization.authorize`), never a session. The
 * guard fails closed: when Keyport cannot be reached it refuses with
 * `AUTH_UNAVAILABLE` (503), never letting the request through.
 *
 * @packageDocumentation
 */

import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";

import { isApiKey } from "./api-keys.js";
import { withSession } from "./auth.js";
import { type ClientInfo, type Principal, SessionCache, type SessionCacheOptions, forwardedHeaders } from "./cache.js";
import type { KeyportClient } from "./common.js";
import { cookieValue } from "./cookies.js";
import { errorReason } from "./errors.js";

/** The session cookie's default name, as the Rust middleware writes it. */
export const SESSION_COOKIE_NAME = "__Host-keyport_session";

/** How the session cookie is written; the defaults are the Rust middleware's. */
export interface SessionCookieOptions {
  /** Default `__Host-keyport_session` (the prefix makes browsers insist on `Secure`, `Path=/`, no `Domain`). */
  name?: string;
  /** Send only over HTTPS (and to `localhost`); default true. */
  secure?: boolean;
  /** Hide from JavaScript; default true. */
  httpOnly?: boolean;
  /** Default `Lax`. */
  sameSite?: "Lax" | "Strict" | "None";
  /** Default `/`. */
  path?: string;
}

/** What the guard reads from a request; every adapter fills it from its framework's request. */
export interface RequestCredentials {
  /** The `Authorization` header (`Bearer <token>`). */
  readonly authorization?: string | null | undefined;
  /** The `Cookie` header. */
  readonly cookie?: string | null | undefined;
  /** The TCP peer's address (forwarded to Keyport as the end user's). */
  readonly peerIp?: string | null | undefined;
  /** The `X-Forwarded-For` header, used only with `trustForwardedFor`. */
  readonly forwardedFor?: string | null | undefined;
  /** The `User-Agent` header (forwarded to Keyport). */
  readonly userAgent?: string | null | undefined;
}

/** The stable reasons of a guard's refusals, as sent in JSON bodies (the Rust middleware's). */
export type RefusalReason =
  | "UNAUTHENTICATED"
  | "SESSION_EXPIRED"
  | "API_KEY_NOT_ACCEPTED"
  | "FORBIDDEN"
  | "PERMISSION_UNKNOWN"
  | "AUTH_UNAVAILABLE";

/** Why the guard refused a request. */
export interface Refusal {
  /**
   * `missing` (no credential), `invalid` (Keyport refused it: malformed,
   * unknown, revoked, expired, or an API key), `forbidden` (a permission is
   * missing), `misconfigured` (a permission outside Keyport's catalogue),
   * `unavailable` (Keyport did not answer: failing closed).
   */
  readonly kind: "missing" | "invalid" | "forbidden" | "misconfigured" | "unavailable";
  /** The stable reason: Keyport's for `invalid`, else the guard's own. */
  readonly reason: RefusalReason;
  /** The HTTP status to answer with: 401, 403, 500 or 503. */
  readonly status: 401 | 403 | 500 | 503;
  /** A message for logs and API clients. */
  readonly message: string;
}

/** What {@link KeyportGuard.authenticate} decided. */
export type AuthResult =
  | {
      readonly ok: true;
      /** Who is calling. */
      readonly principal: Principal;
      /** Where the token came from. */
      readonly source: "bearer" | "cookie";
      /** The token itself (to call Keyport on the user's behalf). */
      readonly token: string;
      /** A `Set-Cookie` value to add to the response: the expiry slid. */
      readonly setCookie: string | undefined;
    }
  | {
      readonly ok: false;
      /** Why not. */
      readonly refusal: Refusal;
      /** A `Set-Cookie` value to add to the response: deleting a dead session cookie. */
      readonly setCookie: string | undefined;
    };

/** Options of {@link KeyportGuard}. */
export interface KeyportGuardOptions {
  /**
   * The session cache: a started {@link SessionCache}, options for a new
   * one, or `false` to ask Keyport on every request. Default: a new cache
   * with the Rust client's defaults.
   */
  cache?: SessionCache | SessionCacheOptions | false;
  /** The session cookie. */
  cookie?: SessionCookieOptions;
  /**
   * Take the end user's address from the right-most `X-Forwarded-For`
   * entry (the one your own proxy appended); only behind a proxy that sets
   * it. Default false: the TCP peer.
   */
  trustForwardedFor?: boolean;
}

/** Options of one check. */
export interface AuthenticateOptions {
  /** Permissions (`resource:action`) the request needs, all of them, decided by Keyport's `Authorize`. */
  readonly permissions?: readonly string[];
}

/**
 * What the adapters need of a guard: {@link KeyportGuard} is one; a test of
 * an app's handlers may pass its own (fixed principals, no Keyport).
 */
export interface Authenticator {
  /** Decides whether `request` has a valid session; never throws. */
  authenticate(request: RequestCredentials, options?: AuthenticateOptions): Promise<AuthResult>;
}

/** The shape of a token Keyport issues: `kp_<id>.<secret>`, base64url. Anything else is refused without a call. */
const SESSION_TOKEN = /^kp_[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,128}$/;

/**
 * Authenticates requests against Keyport through a revocation-aware cache.
 *
 * @example
 * ```ts
 * const guard = new KeyportGuard(createKeyportClient("127.0.0.1:50051"));
 * const result = await guard.authenticate({ authorization: req.headers.authorization, cookie: req.headers.cookie });
 * if (!result.ok) return reply(result.refusal.status, refusalBody(result.refusal));
 * ```
 */
export class KeyportGuard implements Authenticator {
  /** The client behind the guard. */
  readonly client: KeyportClient;
  /** The session cache; `undefined` when the guard was made with `cache: false`. */
  readonly cache: SessionCache | undefined;
  readonly #ownsCache: boolean;
  readonly #cookie: Required<SessionCookieOptions>;
  readonly #trustForwardedFor: boolean;

  /** A guard asking `client`, with a cache of its own unless `options.cache` says otherwise. */
  constructor(client: KeyportClient, options: KeyportGuardOptions = {}) {
    this.client = client;
    const cache = options.cache ?? {};
    this.cache = cache === false ? undefined : cache instanceof SessionCache ? cache : new SessionCache(client, cache);
    this.#ownsCache = cache !== false && !(cache instanceof SessionCache);
    this.#cookie = {
      name: SESSION_COOKIE_NAME,
      secure: true,
      httpOnly: true,
      sameSite: "Lax",
      path: "/",
      ...Object.fromEntries(Object.entries(options.cookie ?? {}).filter(([, v]) => v !== undefined)),
    };
    this.#trustForwardedFor = options.trustForwardedFor ?? false;
  }

  /** The session cookie's name. */
  get cookieName(): string {
    return this.#cookie.name;
  }

  /**
   * Decides whether `request` has a valid session (and, with
   * `options.permissions`, every one of them). Never throws: Keyport
   * unreachable is a refusal (`AUTH_UNAVAILABLE`, 503).
   */
  async authenticate(request: RequestCredentials, options: AuthenticateOptions = {}): Promise<AuthResult> {
    const bearerToken = bearerOf(request.authorization);
    // A cookie carries a session, never a key: a key in one would be an
    // ambient credential.
    const cookieToken = bearerToken === undefined ? cookieValue(request.cookie, this.#cookie.name) : undefined;
    const source = bearerToken !== undefined ? "bearer" : "cookie";
    const token = bearerToken ?? (cookieToken !== undefined && !isApiKey(cookieToken) ? cookieToken : undefined);
    if (token === undefined || token === "") {
      return refused(missing(request.authorization));
    }
    const dead = source === "cookie" ? this.clearCookie() : undefined;
    if (isApiKey(token)) {
      return refused(invalid("API_KEY_NOT_ACCEPTED", "an API key is not a session"));
    }
    if (!SESSION_TOKEN.test(token)) {
      return refused(invalid("UNAUTHENTICATED", "malformed session token"), dead);
    }
    const permissions = options.permissions ?? [];
    // A hit needs neither the client's details nor another promise.
    const hit = this.#cached(token, permissions);
    if (hit !== undefined) {
      if (!hit.allowed) return refused(FORBIDDEN);
      return { ok: true, principal: hit.principal, source, token, setCookie: undefined };
    }
    const client = this.clientInfo(request);
    try {
      const { principal, refreshed, allowed } = await this.#check(token, permissions, client);
      if (!allowed) return refused(FORBIDDEN);
      const setCookie = refreshed && source === "cookie" ? this.sessionCookie(token, principal) : undefined;
      return { ok: true, principal, source, token, setCookie };
    } catch (err) {
      const error = ConnectError.from(err);
      const reason = errorReason(error);
      if (error.code === Code.Unauthenticated) {
        return refused(invalid(reason === "SESSION_EXPIRED" ? "SESSION_EXPIRED" : "UNAUTHENTICATED", "sign in first"), dead);
      }
      if (reason === "PERMISSION_UNKNOWN") {
        // The app names a permission Keyport does not have: its bug, not the caller's.
        return refused({
          kind: "misconfigured",
          reason: "PERMISSION_UNKNOWN",
          status: 500,
          message: "the route names a permission Keyport does not know",
        });
      }
      return refused(UNAVAILABLE);
    }
  }

  /**
   * {@link KeyportGuard.authenticate} for a web-standard `Request` (Next.js
   * route handlers and middleware, Astro, Remix, Hono, Bun, Deno). A
   * `Request` has no peer address: pass it as `peerIp`, or set
   * `trustForwardedFor` behind a proxy. Bound: `const { authenticateRequest } = guard` works.
   */
  readonly authenticateRequest = (
    request: Request,
    options: AuthenticateOptions & { readonly peerIp?: string } = {},
  ): Promise<AuthResult> =>
    this.authenticate(
      {
        authorization: request.headers.get("authorization"),
        cookie: request.headers.get("cookie"),
        forwardedFor: request.headers.get("x-forwarded-for"),
        userAgent: request.headers.get("user-agent"),
        peerIp: options.peerIp,
      },
      options,
    );

  /** The end user's address and agent, as forwarded to Keyport. */
  clientInfo(request: RequestCredentials): ClientInfo {
    // The right-most entry is the one our own proxy appended; those left of
    // it are whatever the client claimed.
    const forwarded = this.#trustForwardedFor ? request.forwardedFor?.split(",").pop()?.trim() : undefined;
    const ip = forwarded !== undefined && forwarded !== "" ? forwarded : (request.peerIp ?? undefined);
    return { ipAddress: ip === undefined ? undefined : canonicalIp(ip), userAgent: request.userAgent ?? undefined };
  }

  /**
   * Revokes one of the caller's sessions (`RevokeSession` with `token` as
   * the bearer) and drops it from the cache before returning, so that no
   * request this app serves afterwards is let through with it, even before
   * Keyport's event arrives.
   */
  async revokeSession(token: string, sessionId: string): Promise<void> {
    await this.client.sessions.revokeSession({ sessionId }, withSession(token));
    this.cache?.forgetSession(sessionId);
  }

  /**
   * Signs the caller out (`SignOut`), drops the session from the cache, and
   * returns the `Set-Cookie` value that deletes the cookie.
   */
  async signOut(token: string, principal?: Principal): Promise<string> {
    await this.client.sessions.signOut({}, withSession(token));
    const sessionId = principal?.session.id ?? /^kp_([^.]+)\./.exec(token)?.[1];
    if (sessionId !== undefined) this.cache?.forgetSession(sessionId);
    return this.clearCookie();
  }

  /** The `Set-Cookie` value carrying `token` until its session's expiry. */
  sessionCookie(token: string, principal: Principal): string {
    const expiresAt = principal.session.expiresAt;
    const maxAge = expiresAt === undefined ? 0 : Math.max(0, Math.floor((timestampMs(expiresAt) - Date.now()) / 1000));
    return `${this.#cookie.name}=${token}; ${this.#attributes()}; Max-Age=${maxAge}`;
  }

  /** The `Set-Cookie` value that deletes the session cookie. */
  clearCookie(): string {
    return `${this.#cookie.name}=; ${this.#attributes()}; Max-Age=0`;
  }

  /** Stops the cache if the guard made it (a cache passed in is the caller's to close). */
  close(): void {
    if (this.#ownsCache) this.cache?.close();
  }

  #attributes(): string {
    const { path, httpOnly, secure, sameSite } = this.#cookie;
    return [`Path=${path}`, httpOnly ? "HttpOnly" : "", secure ? "Secure" : "", `SameSite=${sameSite}`]
      .filter((attribute) => attribute !== "")
      .join("; ");
  }

  #cached(token: string, permissions: readonly string[]): { principal: Principal; allowed: boolean } | undefined {
    const cache = this.cache;
    if (cache === undefined) return undefined;
    if (permissions.length === 0) {
      const principal = cache.lookup(token);
      return principal === undefined ? undefined : { principal, allowed: true };
    }
    const decision = cache.decideCached(token, permissions);
    return decision === undefined ? undefined : { principal: decision.principal, allowed: decision.all };
  }

  async #check(
    token: string,
    permissions: readonly string[],
    client: ClientInfo,
  ): Promise<{ principal: Principal; refreshed: boolean; allowed: boolean }> {
    const cache = this.cache;
    if (permissions.length === 0) {
      if (cache !== undefined) return { ...(await cache.getSession(token, client)), allowed: true };
      const answer = await this.client.sessions.getSession({ token }, { headers: forwardedHeaders(client) });
      return { principal: principalOf(answer), refreshed: answer.refreshed, allowed: true };
    }
    if (cache !== undefined) {
      const decision = await cache.authorize(token, permissions, client);
      return { principal: decision.principal, refreshed: decision.refreshed, allowed: decision.all };
    }
    const answer = await this.client.authorization.authorize(
      { token, permissions: [...permissions] },
      { headers: forwardedHeaders(client) },
    );
    return { principal: principalOf(answer), refreshed: answer.refreshed, allowed: answer.allowed };
  }
}

/** The JSON body of a refusal: `{"error": reason, "message": message}`, as the Rust middleware sends. */
export function refusalBody(refusal: Refusal): { error: RefusalReason; message: string } {
  return { error: refusal.reason, message: refusal.message };
}

/**
 * The headers of a refusal besides `Set-Cookie`: JSON, not cached,
 * `WWW-Authenticate: Bearer` on 401, `Retry-After` on 503.
 */
export function refusalHeaders(refusal: Refusal): Record<string, string> {
  const headers: Record<string, string> = { "content-type": "application/json", "cache-control": "no-store" };
  if (refusal.status === 401) headers["www-authenticate"] = "Bearer";
  if (refusal.status === 503) headers["retry-after"] = "5";
  return headers;
}

/**
 * A web-standard `Response` refusing the request: the status, the JSON body
 * and headers of {@link refusalBody} and {@link refusalHeaders}, and the
 * result's `Set-Cookie`, if any.
 */
export function refusalResponse(result: Extract<AuthResult, { ok: false }>): Response {
  const headers = new Headers(refusalHeaders(result.refusal));
  if (result.setCookie !== undefined) headers.append("set-cookie", result.setCookie);
  return new Response(JSON.stringify(refusalBody(result.refusal)), { status: result.refusal.status, headers });
}

/** The refusal of a session without a permission the request needs. */
const FORBIDDEN: Refusal = { kind: "forbidden", reason: "FORBIDDEN", status: 403, message: "missing permission" };

/** The refusal of a request when Keyport cannot be reached: failing closed. */
export const UNAVAILABLE: Refusal = {
  kind: "unavailable",
  reason: "AUTH_UNAVAILABLE",
  status: 503,
  message: "authentication is unavailable",
};

/** The token of an `Authorization: Bearer <token>` header, if it is one. */
export function bearerOf(header: string | null | undefined): string | undefined {
  if (header === undefined || header === null) return undefined;
  const space = header.indexOf(" ");
  if (space < 0 || header.slice(0, space).toLowerCase() !== "bearer") return undefined;
  return header.slice(space + 1).trim();
}

/** `::ffff:a.b.c.d` is `a.b.c.d`: Keyport compares addresses in canonical form. */
function canonicalIp(ip: string): string {
  return ip.startsWith("::ffff:") && ip.includes(".") ? ip.slice(7) : ip;
}

function missing(authorization: string | null | undefined): Refusal {
  const message = authorization ? "no bearer token or session cookie" : "sign in first";
  return { kind: "missing", reason: "UNAUTHENTICATED", status: 401, message };
}

function invalid(reason: "UNAUTHENTICATED" | "SESSION_EXPIRED" | "API_KEY_NOT_ACCEPTED", message: string): Refusal {
  return { kind: "invalid", reason, status: 401, message };
}

function refused(refusal: Refusal, setCookie?: string): AuthResult {
  return { ok: false, refusal, setCookie };
}

function principalOf(answer: { session?: Principal["session"]; user?: Principal["user"] }): Principal {
  if (answer.session === undefined || answer.user === undefined) {
    throw new ConnectError("keyport: the answer names no session and user", Code.Unauthenticated);
  }
  return { session: answer.session, user: answer.user };
}
