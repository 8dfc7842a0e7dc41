/**
 * `@keyport/client/fastify`: the Fastify adapter of {@link KeyportGuard}, as
 * a plugin ({@link keyportPlugin}, for every route of the instance it is
 * registered on) or a hook ({@link keyportOnRequest}, for chosen routes).
 * Fastify itself is an optional peer dependency: this module imports only
 * its types.
 *
 * @example
 * ```ts
 * import Fastify from "fastify";
 * import { keyportPlugin } from "@keyport/client/fastify";
 *
 * const app = Fastify();
 * await app.register(keyportPlugin, { guard });
 * app.get("/me", async (request) => ({ email: request.auth?.user.email }));
 * ```
 *
 * @packageDocumentation
 */

import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from "fastify";

import type { Principal } from "./cache.js";
import { type Authenticator, refusalBody, refusalHeaders } from "./guard.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The caller's session and user, set by the Keyport hook; `undefined` when signed out (optional auth). */
    auth: Principal | undefined;
  }
}

/** Options of {@link keyportPlugin} and {@link keyportOnRequest}. */
export interface KeyportFastifyOptions {
  /** The guard that checks each request. */
  guard: Authenticator;
  /**
   * Let requests without a valid session through, signed out
   * (`request.auth === undefined`); a dead cookie is still deleted, and
   * Keyport unreachable counts as signed out. Default false: refused.
   */
  optional?: boolean;
  /** Permissions (`resource:action`) every request needs, decided by Keyport; refused with 403 otherwise. */
  permissions?: readonly string[];
}

/**
 * An `onRequest` hook that authenticates the request (bearer token or
 * session cookie) through the guard, sets `request.auth`, adds the
 * `Set-Cookie` of a slid expiry, and otherwise answers the refusal's status
 * (401, 403, 503) with a JSON body `{"error": reason, "message": ...}`.
 * Use it per route (`{ onRequest: keyportOnRequest({ guard }) }`) on an
 * instance where {@link keyportPlugin} or `decorateRequest("auth", undefined)` ran.
 */
export function keyportOnRequest(options: KeyportFastifyOptions): onRequestAsyncHookHandler {
  const { guard, optional = false } = options;
  const check = { permissions: options.permissions ?? [] };
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const result = await guard.authenticate(
      {
        authorization: request.headers.authorization,
        cookie: request.headers.cookie,
        peerIp: request.socket.remoteAddress,
        forwardedFor: header(request.headers["x-forwarded-for"]),
        userAgent: request.headers["user-agent"],
      },
      check,
    );
    if (result.setCookie !== undefined) reply.header("set-cookie", result.setCookie);
    if (result.ok) {
      request.auth = result.principal;
      return;
    }
    const { refusal } = result;
    request.auth = undefined;
    if (optional && refusal.kind !== "forbidden" && refusal.kind !== "misconfigured") return;
    await reply.code(refusal.status).headers(refusalHeaders(refusal)).send(JSON.stringify(refusalBody(refusal)));
  };
}

/**
 * A plugin that adds {@link keyportOnRequest} to every route of the instance
 * it is registered on (it is not encapsulated, like one wrapped in
 * `fastify-plugin`), and the `request.auth` decorator.
 */
export async function keyportPlugin(fastify: FastifyInstance, options: KeyportFastifyOptions): Promise<void> {
  if (!fastify.hasRequestDecorator("auth")) fastify.decorateRequest("auth", undefined);
  fastify.addHook("onRequest", keyportOnRequest(options));
}
// Fastify's own marker (what `fastify-plugin` sets): the hook applies to the
// registering instance, not to a child context only.
Object.assign(keyportPlugin, { [Symbol.for("skip-override")]: true });

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(",") : value;
}
