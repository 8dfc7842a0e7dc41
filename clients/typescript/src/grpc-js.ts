/**
 * `@keyport/client/grpc-js`: {@link keyportServerInterceptor}, a server
 * interceptor for `@grpc/grpc-js` (1.10 or later: `new Server({ interceptors })`)
 * that authenticates every call's end user through Keyport, as
 * {@link keyportInterceptor} does for Connect services. `@grpc/grpc-js` is an
 * optional peer dependency: this module uses the `grpc` module you pass it.
 *
 * grpc-js handlers have no context to carry objects, so the principal
 * reaches them as metadata the interceptor sets after deleting any the
 * caller sent: `keyport-user-id`, `keyport-session-id` (read them with
 * {@link principalIdsOf}).
 *
 * @packageDocumentation
 */

import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type * as grpc from "@grpc/grpc-js";

import { refusalError } from "./grpc.js";
import type { Authenticator, Refusal } from "./guard.js";

/** The metadata key that carries the authenticated user's id to the handler. */
export const USER_ID_METADATA = "keyport-user-id";
/** The metadata key that carries the authenticated session's id to the handler. */
export const SESSION_ID_METADATA = "keyport-session-id";

/** Options of {@link keyportServerInterceptor}. */
export interface KeyportServerInterceptorOptions {
  /** Permissions (`resource:action`) every call needs, decided by Keyport. */
  permissions?: readonly string[];
}

/**
 * A grpc-js server interceptor: every call needs a valid session in its
 * `authorization: Bearer` metadata (and the permissions, if given); a
 * refused call ends with `UNAUTHENTICATED`, `PERMISSION_DENIED` or
 * `UNAVAILABLE` and Keyport's reason in `grpc-status-details-bin`.
 *
 * @param grpcModule - `import * as grpc from "@grpc/grpc-js"`.
 */
export function keyportServerInterceptor(
  grpcModule: typeof grpc,
  guard: Authenticator,
  options: KeyportServerInterceptorOptions = {},
): grpc.ServerInterceptor {
  const check = { permissions: options.permissions ?? [] };
  return (_method, call) =>
    new grpcModule.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, forward) {
            const authorization = metadata.get("authorization")[0];
            const userAgent = metadata.get("user-agent")[0];
            metadata.remove(USER_ID_METADATA);
            metadata.remove(SESSION_ID_METADATA);
            void guard
              .authenticate({ authorization: text(authorization), userAgent: text(userAgent) }, check)
              .then((result) => {
                if (!result.ok) {
                  call.sendStatus(statusOf(grpcModule, result.refusal));
                  return;
                }
                metadata.set(USER_ID_METADATA, result.principal.user.id);
                metadata.set(SESSION_ID_METADATA, result.principal.session.id);
                forward(metadata);
              });
          },
        });
      },
    });
}

/** The user and session ids the interceptor put in a call's metadata. */
export function principalIdsOf(metadata: grpc.Metadata): { userId: string; sessionId: string } | undefined {
  const userId = text(metadata.get(USER_ID_METADATA)[0]);
  const sessionId = text(metadata.get(SESSION_ID_METADATA)[0]);
  return userId === undefined || sessionId === undefined ? undefined : { userId, sessionId };
}

function statusOf(grpcModule: typeof grpc, refusal: Refusal): grpc.StatusObject {
  const error = refusalError(refusal);
  // Connect writes the google.rpc.Status (with the ErrorInfo) exactly as
  // Keyport and every gRPC client expect it.
  const trailer = setTrailerStatus(new Headers(), error);
  const metadata = new grpcModule.Metadata();
  const details = trailer.get("grpc-status-details-bin");
  if (details !== null) metadata.set("grpc-status-details-bin", Buffer.from(details, "base64"));
  // Connect's codes are gRPC's numbers.
  return { code: error.code as number as grpc.status, details: refusal.message, metadata };
}

function text(value: grpc.MetadataValue | undefined): string | undefined {
  return typeof value === "string" ? value : undefined;
}

