import { AccessTokenError, AccessTokenVerifier } from "@keyport/client";

// The keys are fetched once, again when a token names a new key (at most every 30 s).
const verifier = new AccessTokenVerifier({
  issuer: "https://auth.example.com", // [access_tokens] issuer
  audience: "orders", // this service, one of [access_tokens] audiences
  keys: "https://auth.example.com/.well-known/jwks.json", // or a KeyportClient (GetJwks)
});

/** The user id behind a request's `Authorization: Bearer <access token>`, or why not. */
export async function userOf(authorization: string | undefined): Promise<string | AccessTokenError["failure"]> {
  try {
    const claims = await verifier.verify(authorization?.replace(/^Bearer /i, "") ?? "");
    return claims.sub; // also: sid, roles, permissions, exp
  } catch (err) {
    if (err instanceof AccessTokenError) return err.failure; // "expired", "bad_signature", ...
    throw err;
  }
}
