/**
 * {@link AccessTokenVerifier}: verifies Keyport's signed access tokens
 * (`SessionService.IssueAccessToken`; RFC 9068 `at+jwt`) offline, against
 * the server's JSON Web Key Set, with `jose`.
 *
 * A verified token proves only that Keyport issued it for this audience and
 * that it has not expired: unlike a session check it does not see a
 * revocation made since it was issued. Keep the server's `ttl_secs` short.
 *
 * @packageDocumentation
 */

import {
  createLocalJWKSet,
  errors,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from "jose";

import type { KeyportClient } from "./common.js";

/** The signing algorithms Keyport uses; no other is ever accepted (never `none`, `HS*` or `RS*`). */
export type AccessTokenAlgorithm = "EdDSA" | "ES256";

/** The claims of a verified access token. */
export interface AccessTokenClaims {
  /** The issuer, the server's `access_tokens.issuer`. */
  readonly iss: string;
  /** The user's id. */
  readonly sub: string;
  /** The audience the token was issued for (one service). */
  readonly aud: string;
  /** Expiry, in seconds since the epoch. */
  readonly exp: number;
  /** Issue time, in seconds since the epoch. */
  readonly iat: number;
  /** Not before, in seconds since the epoch. */
  readonly nbf: number;
  /** The token's unique id. */
  readonly jti: string;
  /** The id of the session it was issued from. */
  readonly sid: string;
  /** The user's roles. */
  readonly roles: readonly string[];
  /** The permissions the roles grant, when the server has `include_permissions`. */
  readonly permissions?: readonly string[];
  /** For an impersonation session: the admin acting as the user. */
  readonly act?: { readonly sub: string };
}

/** Why a token was refused. */
export type AccessTokenFailure =
  | "malformed"
  | "expired"
  | "not_yet_valid"
  | "bad_signature"
  | "wrong_issuer"
  | "wrong_audience"
  | "wrong_type"
  | "algorithm_not_allowed"
  | "unknown_key"
  | "missing_claim"
  | "keys_unavailable";

/** A refused access token: {@link AccessTokenError.failure} says why. */
export class AccessTokenError extends Error {
  /** Why the token was refused. */
  readonly failure: AccessTokenFailure;

  /** An error for `failure`, caused by `cause`. */
  constructor(failure: AccessTokenFailure, message: string, cause?: unknown) {
    super(`keyport: access token refused (${failure}): ${message}`, { cause });
    this.name = "AccessTokenError";
    this.failure = failure;
  }
}

/** Options of {@link AccessTokenVerifier}. */
export interface AccessTokenVerifierOptions {
  /** The issuer tokens must name (`iss`): the server's `access_tokens.issuer`. */
  readonly issuer: string;
  /** The audience tokens must name (`aud`): this service's entry in `access_tokens.audiences`. */
  readonly audience: string;
  /**
   * Where the keys come from: the server's `/.well-known/jwks.json` URL
   * (`http://host:port/.well-known/jwks.json` on its gRPC port), or a
   * client, whose `GetJwks` is asked.
   */
  readonly keys: URL | string | KeyportClient;
  /** Algorithms accepted, a subset of Keyport's; default both. */
  readonly algorithms?: readonly AccessTokenAlgorithm[];
  /**
   * At most one fetch of the keys per this many ms when a token names an
   * unknown key id (a new key, or a forged one); default 30,000.
   */
  readonly refetchCooldownMs?: number;
  /** How long fetched keys are used before fetching them again, in ms; default 300,000. */
  readonly maxAgeMs?: number;
  /** Leeway for `exp` and `nbf`, in seconds (clocks differ); default 30. */
  readonly clockToleranceSec?: number;
}

/**
 * Verifies access tokens: signature (by a key of the JWKS whose type and
 * curve match the algorithm), `typ` `at+jwt`, issuer, audience, `exp` and
 * `nbf`, and the claims Keyport always sets.
 *
 * @example
 * ```ts
 * const verifier = new AccessTokenVerifier({ issuer: "https://auth.example.com", audience: "orders", keys: keyport });
 * const { sub, roles } = await verifier.verify(token);
 * ```
 */
export class AccessTokenVerifier {
  readonly #options: AccessTokenVerifierOptions;
  readonly #getKey: JWTVerifyGetKey;
  /** How often the keys were fetched (for tests and metrics). */
  #fetches = 0;

  /** A verifier with `options`; keys are fetched on the first verification. */
  constructor(options: AccessTokenVerifierOptions) {
    this.#options = options;
    const cooldown = options.refetchCooldownMs ?? 30_000;
    const maxAge = options.maxAgeMs ?? 300_000;
    const keys = options.keys;
    const load =
      typeof keys === "string" || keys instanceof URL
        ? () => fetchJwks(new URL(keys))
        : async () => JSON.parse((await keys.sessions.getJwks({})).jwks) as JSONWebKeySet;
    this.#getKey = cachedKeys(load, cooldown, maxAge, () => this.#fetches++);
  }

  /** How many times the keys were fetched so far. */
  get fetches(): number {
    return this.#fetches;
  }

  /**
   * The claims of `token` if it is valid.
   *
   * @throws AccessTokenError saying why it is not.
   */
  async verify(token: string): Promise<AccessTokenClaims> {
    const { issuer, audience, algorithms = ["EdDSA", "ES256"], clockToleranceSec = 30 } = this.#options;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#getKey, {
        issuer,
        audience,
        algorithms: [...algorithms],
        typ: "at+jwt",
        clockTolerance: clockToleranceSec,
        requiredClaims: ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid"],
      }));
    } catch (err) {
      throw asAccessTokenError(err);
    }
    return claimsOf(payload);
  }
}

/** The JWKS document at `url`, within 5 s. */
async function fetchJwks(url: URL): Promise<JSONWebKeySet> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000), headers: { accept: "application/json" } });
  if (!response.ok) throw new Error(`GET ${url.href} answered ${response.status}`);
  return (await response.json()) as JSONWebKeySet;
}

/**
 * Keys from `load`, fetched again when older than `maxAgeMs`, or when a
 * token names a key id they lack, at most once per `cooldownMs` (a forged
 * kid must not turn each request into a fetch).
 */
function cachedKeys(
  load: () => Promise<JSONWebKeySet>,
  cooldownMs: number,
  maxAgeMs: number,
  fetched: () => void,
): JWTVerifyGetKey {
  let keys: ReturnType<typeof createLocalJWKSet> | undefined;
  let fetchedAt = Number.NEGATIVE_INFINITY;
  let pending: Promise<void> | undefined;
  const refresh = (): Promise<void> => {
    // Concurrent verifications share one fetch.
    pending ??= (async () => {
      try {
        fetchedAt = Date.now();
        fetched();
        keys = createLocalJWKSet(await load());
      } catch (err) {
        throw new AccessTokenError("keys_unavailable", "cannot fetch Keyport's keys", err);
      } finally {
        pending = undefined;
      }
    })();
    return pending;
  };
  return async (header, token) => {
    if (keys === undefined) await refresh();
    // Stale keys are refreshed, but still used if Keyport cannot be reached.
    else if (Date.now() - fetchedAt >= maxAgeMs) await refresh().catch(() => undefined);
    try {
      return await keys!(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey) || Date.now() - fetchedAt < cooldownMs) throw err;
      await refresh();
      return keys!(header, token);
    }
  };
}

function asAccessTokenError(err: unknown): AccessTokenError {
  if (err instanceof AccessTokenError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof errors.JWTExpired) return new AccessTokenError("expired", message, err);
  if (err instanceof errors.JWTClaimValidationFailed) {
    const failure: AccessTokenFailure =
      err.claim === "iss"
        ? "wrong_issuer"
        : err.claim === "aud"
          ? "wrong_audience"
          : err.claim === "typ"
            ? "wrong_type"
            : err.claim === "nbf" && err.reason === "check_failed"
              ? "not_yet_valid"
              : "missing_claim";
    return new AccessTokenError(failure, message, err);
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return new AccessTokenError("bad_signature", message, err);
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) {
    return new AccessTokenError("algorithm_not_allowed", message, err);
  }
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) {
    return new AccessTokenError("unknown_key", message, err);
  }
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid || err instanceof TypeError) {
    return new AccessTokenError("keys_unavailable", message, err);
  }
  return new AccessTokenError("malformed", message, err);
}

function claimsOf(payload: JWTPayload): AccessTokenClaims {
  const strings = (value: unknown): string[] | undefined =>
    Array.isArray(value) && value.every((item) => typeof item === "string") ? value : undefined;
  const roles = strings(payload.roles);
  const { iss, sub, aud, exp, iat, nbf, jti } = payload;
  const sid = payload.sid;
  if (
    typeof iss !== "string" ||
    typeof sub !== "string" ||
    typeof aud !== "string" ||
    typeof exp !== "number" ||
    typeof iat !== "number" ||
    typeof nbf !== "number" ||
    typeof jti !== "string" ||
    typeof sid !== "string" ||
    roles === undefined
  ) {
    throw new AccessTokenError("missing_claim", "a claim Keyport always sets is missing or of the wrong type");
  }
  const claims: AccessTokenClaims = { iss, sub, aud, exp, iat, nbf, jti, sid, roles };
  const permissions = strings(payload.permissions);
  const act = payload.act as { sub?: unknown } | undefined;
  return {
    ...claims,
    ...(permissions === undefined ? {} : { permissions }),
    ...(typeof act?.sub === "string" ? { act: { sub: act.sub } } : {}),
  };
}
