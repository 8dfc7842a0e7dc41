import * as http2 from "node:http2";

import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { type Authenticator, keyportInterceptor } from "@keyport/client";

/**
 * Serves the gRPC services of `routes` on `port`: every call needs the bearer token of a Keyport
 * session allowed `permissions`; handlers read the caller with `context.values.get(keyportPrincipal)`.
 */
export function serveAuthenticated(
  guard: Authenticator,
  routes: (router: ConnectRouter) => void,
  permissions: string[],
  port: number,
): http2.Http2Server {
  const interceptors = [keyportInterceptor(guard, { permissions })];
  return http2.createServer(connectNodeAdapter({ routes, interceptors })).listen(port, "127.0.0.1");
}
