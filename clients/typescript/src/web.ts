/**
 * Keyport's TypeScript client for browsers (`@keyport/client/web`): typed
 * `UserService`, `SessionService`, `TwoFactorService`, `PasskeyService`,
 * `AuthorizationService`, `AdminService`, `ApiKeyService` and
 * `OrganizationService` clients over gRPC-web with `fetch`.
 *
 * Keyport serves gRPC-web on its gRPC port (HTTP/1.1 or HTTP/2). A page on
 * another origin needs that origin in the server's allowed CORS origins.
 *
 * @packageDocumentation
 */

import { createGrpcWebTransport } from "@connectrpc/connect-web";

import {
  baseUrlOf,
  type CommonClientOptions,
  interceptorsOf,
  type KeyportClient,
  keyportClientFor,
  withUnaryDeadline,
} from "./common.js";

export * from "./api.js";

/** Options of the browser {@link createKeyportClient}. */
export interface KeyportWebClientOptions extends CommonClientOptions {
  /** The wire protocol: browsers can only speak `"grpc-web"` (the default). */
  transport?: "grpc-web";
  /** The `fetch` to use; default `globalThis.fetch`. */
  fetch?: typeof globalThis.fetch;
}

/**
 * Creates typed clients for a Keyport server, over gRPC-web with `fetch`.
 *
 * @example
 * ```ts
 * const keyport = createKeyportClient("https://auth.example.com", { timeoutMs: 5_000 });
 * const { user } = await keyport.users.getCurrentUser({}, withSession(token));
 * ```
 *
 * @param address - An `https://` (or `http://`) URL; a bare `host:port`
 *   means `http://host:port`.
 * @param options - Default deadline, session token, `fetch`.
 * @returns Clients for `UserService`, `SessionService`, `TwoFactorService`,
 *   `PasskeyService`, `AuthorizationService`, `AdminService`,
 *   `ApiKeyService` and `OrganizationService`.
 * @throws Error on an empty address or a scheme other than http(s).
 */
export function createKeyportClient(address: string, options: KeyportWebClientOptions = {}): KeyportClient {
  const transport = createGrpcWebTransport({
    baseUrl: baseUrlOf(address),
    interceptors: interceptorsOf(options),
    ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
  });
  return keyportClientFor(withUnaryDeadline(transport, options.timeoutMs));
}
