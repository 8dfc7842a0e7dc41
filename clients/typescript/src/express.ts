/**
 * `@keyport/client/express`: {@link keyportMiddleware}, the Express adapter
 * of {@link KeyportGuard}. Express itself is an optional peer dependency of
 * the package: this module imports only its types.
 *
 * @example
 * ```ts
 * import express from "express";
 * import { createKeyportClient, KeyportGuard } from "@keyport/client";
 * import { keyportMiddleware } from "@keyport/client/express";
 *
 * const guard = new KeyportGuard(createKeyportClient("127.0.0.1:50051"));
 * const app = express();
 * app.get("/me", keyportMiddleware(guard), (req, res) => res.json({ email: req.auth?.user.email }));
 * ```
 *
 * @packageDocumentation
 */

import type { NextFunction, Request, RequestHandler, Response } from "express";

import type { Principal } from "./cache.js";
import { type AuthResult, type Authenticator, refusalBody, refusalHeaders } from "./guard.js";

declare global {
  namespace Express {
    interface Request {
      /** The caller's session and user, set by `keyportMiddleware`; `undefined` when signed out (optional auth). */
      auth?: Principal | undefined;
    }
  }
}

/** Options of {@link keyportMiddleware}. */
export interface KeyportMiddlewareOptions {
  /**
   * Let requests without a valid session through, signed out
   * (`req.auth === undefined`), as a public page that shows who is signed in:
   * a dead cookie is still deleted, and Keyport unreachable counts as signed
   * out. Default false: such requests are refused.
   */
  optional?: boolean;
  /** Permissions (`resource:action`) every request needs, decided by Keyport; refused with 403 otherwise. */
  permissions?: readonly string[];
}

/**
 * Express middleware that authenticates each request (bearer token or
 * session cookie) through `guard`, sets `req.auth` and `res.locals.auth` to
 * the principal, adds the `Set-Cookie` of a slid expiry, and refuses
 * otherwise with the refusal's status (401, 403, 503) and a JSON body
 * `{"error": reason, "message": ...}`.
 */
export function keyportMiddleware(guard: Authenticator, options: KeyportMiddlewareOptions = {}): RequestHandler {
  const check = { permissions: options.permissions ?? [] };
  return (req: Request, res: Response, next: NextFunction): void => {
    guard
      .authenticate(
        {
          authorization: req.headers.authorization,
          cookie: req.headers.cookie,
          peerIp: req.socket.remoteAddress,
          forwardedFor: req.get("x-forwarded-for"),
          userAgent: req.headers["user-agent"],
        },
        check,
      )
      .then((result) => answer(result, req, res, next, options.optional ?? false), next);
  };
}

function answer(result: AuthResult, req: Request, res: Response, next: NextFunction, optional: boolean): void {
  if (result.setCookie !== undefined) res.append("Set-Cookie", result.setCookie);
  if (result.ok) {
    req.auth = result.principal;
    res.locals.auth = result.principal;
    next();
    return;
  }
  const { refusal } = result;
  if (optional && refusal.kind !== "forbidden" && refusal.kind !== "misconfigured") {
    req.auth = undefined;
    res.locals.auth = undefined;
    next();
    return;
  }
  res.status(refusal.status).set(refusalHeaders(refusal)).send(JSON.stringify(refusalBody(refusal)));
}
