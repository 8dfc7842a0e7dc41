/**
 * Keyport's TypeScript client for Node.js: typed `UserService`,
 * `SessionService`, `TwoFactorService`, `PasskeyService`,
 * `AuthorizationService`, `AdminService`, `ApiKeyService` and
 * `OrganizationService` clients over gRPC (HTTP/2) or gRPC-web (HTTP/1.1).
 *
 * Services also get a revocation-aware session cache (`SessionCache`), a
 * request guard (`KeyportGuard`, with `authenticateRequest` for web-standard
 * `Request`s) and a Connect server interceptor (`keyportInterceptor`); the
 * Express, Fastify and grpc-js adapters are `@keyport/client/express`,
 * `/fastify` and `/grpc-js`.
 *
 * Browsers use `@keyport/client/web` instead, which has the same API over
 * `fetch` and no Node imports.
 *
 * @packageDocumentation
 */

import type * as http2 from "node:http2";
import type * as tls from "node:tls";

import {
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
  type Http2SessionOptions,
} from "@connectrpc/connect-node";

import {
  baseUrlOf,
  type CommonClientOptions,
  interceptorsOf,
  type KeyportClient,
  keyportClientFor,
  withUnaryDeadline,
} from "./common.js";

export * from "./api.js";
export {
  CLIENT_IP_HEADER,
  type ClientInfo,
  type Decision,
  type Principal,
  SessionCache,
  type SessionCacheOptions,
  type SessionCacheStats,
  USER_AGENT_HEADER,
  type ValidatedSession,
} from "./cache.js";
export {
  type AuthenticateOptions,
  type Authenticator,
  type AuthResult,
  bearerOf,
  KeyportGuard,
  type KeyportGuardOptions,
  type Refusal,
  refusalBody,
  refusalHeaders,
  type RefusalReason,
  refusalResponse,
  type RequestCredentials,
  SESSION_COOKIE_NAME,
  type SessionCookieOptions,
} from "./guard.js";
export {
  type AccessTokenAlgorithm,
  type AccessTokenClaims,
  AccessTokenError,
  type AccessTokenFailure,
  AccessTokenVerifier,
  type AccessTokenVerifierOptions,
} from "./jwt.js";
export { grpcStatusOf, keyportInterceptor, type KeyportInterceptorOptions, keyportPrincipal, refusalError } from "./grpc.js";

/**
 * The wire protocol of a client: `"grpc"` (HTTP/2, what services use) or
 * `"grpc-web"` (HTTP/1.1, what browsers and some proxies can speak). Keyport
 * serves both on the same port.
 */
export type TransportKind = "grpc" | "grpc-web";

/**
 * TLS settings for an `https://` address: a private CA, a client certificate
 * for mTLS, or the name to verify. They apply to both transports.
 */
export type KeyportTlsOptions = Pick<
  tls.ConnectionOptions,
  "ca" | "cert" | "key" | "passphrase" | "pfx" | "servername" | "rejectUnauthorized" | "minVersion"
>;

/** Options of {@link createKeyportClient}. */
export interface KeyportClientOptions extends CommonClientOptions {
  /** The wire protocol; default `"grpc"`. */
  transport?: TransportKind;
  /**
   * TLS settings. Setting them makes a scheme-less address use `https://`;
   * an `https://` address uses TLS with the system's CAs without them.
   */
  tls?: KeyportTlsOptions;
  /**
   * Raw options for Node's `http2.connect()` (gRPC transport only), merged
   * over `tls`; for settings this interface does not name.
   */
  http2Options?: http2.ClientSessionOptions | http2.SecureClientSessionOptions;
  /**
   * HTTP/2 keepalive of the connection (gRPC transport only): with
   * `pingIntervalMs`, a PING is sent that often while a call or stream is
   * open, and a connection whose PING is not answered within
   * `pingTimeoutMs` (default 15 s) is closed with its calls. For the client
   * of a `SessionCache`, e.g. `{ pingIntervalMs: 1_000, pingTimeoutMs:
   * 2_000 }`: a frozen Keyport keeps the event stream open and silent, and
   * this closes it within seconds (the cache then stops serving) instead of
   * at the 40 s heartbeat timeout. Default: no PINGs.
   */
  keepalive?: Pick<Http2SessionOptions, "pingIntervalMs" | "pingTimeoutMs">;
}

/**
 * Creates typed clients for a Keyport server.
 *
 * @example
 * ```ts
 * const keyport = createKeyportClient("127.0.0.1:50051", { timeoutMs: 5_000 });
 * const { session } = await keyport.users.signUp({ email, password, name: "Ada" });
 * const { sessions } = await keyport.sessions.listSessions({}, withSession(session!.token));
 * ```
 *
 * @param address - `host:port` (plain text unless `options.tls` is set), or
 *   an `http://` / `https://` URL.
 * @param options - Transport kind, default deadline, session token, TLS.
 * @returns Clients for `UserService`, `SessionService`, `TwoFactorService`,
 *   `PasskeyService`, `AuthorizationService`, `AdminService`,
 *   `ApiKeyService` and `OrganizationService` sharing one connection.
 * @throws Error on an empty address or a scheme other than http(s).
 */
export function createKeyportClient(address: string, options: KeyportClientOptions = {}): KeyportClient {
  const baseUrl = baseUrlOf(address, options.tls !== undefined);
  const interceptors = interceptorsOf(options);
  const kind = options.transport ?? "grpc";
  switch (kind) {
    case "grpc": {
      const sessionManager = new Http2SessionManager(baseUrl, options.keepalive, {
        ...options.tls,
        ...options.http2Options,
      });
      const transport = createGrpcTransport({ baseUrl, sessionManager, interceptors });
      return keyportClientFor(withUnaryDeadline(transport, options.timeoutMs), () => sessionManager.abort());
    }
    case "grpc-web": {
      const transport = createGrpcWebTransport({
        baseUrl,
        httpVersion: "1.1",
        nodeOptions: { ...options.tls },
        interceptors,
      });
      return keyportClientFor(withUnaryDeadline(transport, options.timeoutMs));
    }
    default:
      throw new Error(`keyport: unknown transport kind "${String(kind satisfies never)}"`);
  }
}
