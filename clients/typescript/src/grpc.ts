/**
 * {@link keyportInterceptor}: a Connect server interceptor for gRPC services
 * built with `@connectrpc/connect-node` (`connectNodeAdapter`,
 * `http2.createServer`) that authenticates every call's end user through
 * Keyport, as the Rust `KeyportGrpcLayer` does for tonic.
 *
 * It reads the caller's token from the `authorization: Bearer <token>`
 * metadata, checks it through the guard's cache (a revocation reaches the
 * next call at once), decides the permissions it was given, and puts the
 * {@link Principal} in the call's context values
 * (`context.values.get(keyportPrincipal)`). A refused call answers
 * `UNAUTHENTICATED` or `PERMISSION_DENIED` with Keyport's reason in a
 * `google.rpc.ErrorInfo` (domain `keyport.dev`) in `grpc-status-details-bin`;
 * Keyport down answers `UNAVAILABLE`: it fails closed.
 *
 * @packageDocumentation
 */

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";

import type { Principal } from "./cache.js";
import { KEYPORT_ERROR_DOMAIN } from "./errors.js";
import { ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import type { Authenticator, Refusal } from "./guard.js";

/** The context key the interceptor stores the caller's principal under. */
export const keyportPrincipal = createContextKey<Principal | undefined>(undefined, {
  description: "the caller's Keyport session and user",
});

/** Options of {@link keyportInterceptor}. */
export interface KeyportInterceptorOptions {
  /** Permissions (`resource:action`) every call needs, decided by Keyport (`Authorize`). */
  permissions?: readonly string[];
}

/**
 * A Connect interceptor for a server's `interceptors`: every call needs a
 * valid session (bearer metadata only; cookies are for browsers) and, if
 * given, every one of the permissions.
 *
 * @example
 * ```ts
 * http2.createServer(connectNodeAdapter({ routes, interceptors: [keyportInterceptor(guard)] }));
 * // in a handler: const principal = context.values.get(keyportPrincipal);
 * ```
 */
export function keyportInterceptor(guard: Authenticator, options: KeyportInterceptorOptions = {}): Interceptor {
  const check = { permissions: options.permissions ?? [] };
  return (next) => async (req) => {
    const result = await guard.authenticate(
      { authorization: req.header.get("authorization"), userAgent: req.header.get("user-agent") },
      check,
    );
    if (!result.ok) throw refusalError(result.refusal);
    req.contextValues.set(keyportPrincipal, result.principal);
    return next(req);
  };
}

/**
 * The gRPC status of a refusal: `UNAUTHENTICATED`, `PERMISSION_DENIED`
 * (reason `PERMISSION_DENIED`), `UNAVAILABLE` (reason `UNAVAILABLE`) or
 * `INTERNAL` (a permission outside the catalogue), with an `ErrorInfo` that
 * `errorReason` reads on the caller's side.
 */
export function refusalError(refusal: Refusal): ConnectError {
  const [code, reason] = grpcStatusOf(refusal);
  const info = create(ErrorInfoSchema, { reason, domain: KEYPORT_ERROR_DOMAIN });
  return new ConnectError(refusal.message, code, undefined, [{ desc: ErrorInfoSchema, value: info }]);
}

/** The gRPC code and Keyport reason a refusal is answered with. */
export function grpcStatusOf(refusal: Refusal): [Code, string] {
  switch (refusal.kind) {
    case "missing":
    case "invalid":
      return [Code.Unauthenticated, refusal.reason];
    case "forbidden":
      return [Code.PermissionDenied, "PERMISSION_DENIED"];
    case "unavailable":
      return [Code.Unavailable, "UNAVAILABLE"];
    case "misconfigured":
      return [Code.Internal, "PERMISSION_UNKNOWN"];
  }
}
