/**
 * The conformance app: the same routes built with each HTTP adapter (Express
 * middleware, the Fastify plugin and hook, and `authenticateRequest` on a
 * web-standard `Request` served by node:http as Next.js or Astro would hand
 * it over), so that one suite checks every adapter.
 *
 * Routes:
 * - `GET /me` (a session needed) → `{"email", "sessionId"}`
 * - `GET /public` (optional) → `public:<email|anonymous>`
 * - `GET /write` (`posts:write` needed; `user` has only `posts:read`) → `write:<email>`
 * - `GET /read` (`posts:read` needed) → `read:<email>`
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

import express from "express";
import Fastify from "fastify";

import { type AuthResult, type KeyportGuard, refusalResponse } from "../../src/index.js";
import { keyportMiddleware } from "../../src/express.js";
import { keyportOnRequest, keyportPlugin } from "../../src/fastify.js";

/** A running conformance app. */
export interface App {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Stops it. */
  close(): Promise<void>;
}

/** Starts the conformance app with one adapter in front of `guard`. */
export type StartApp = (guard: KeyportGuard) => Promise<App>;

/** The adapters under test, by name. */
export const ADAPTERS: Readonly<Record<string, StartApp>> = {
  express: startExpress,
  fastify: startFastify,
  "web Request": startWebStandard,
};

async function startExpress(guard: KeyportGuard): Promise<App> {
  const app = express();
  app.get("/me", keyportMiddleware(guard), (req, res) => {
    res.json({ email: req.auth?.user.email, sessionId: res.locals.auth?.session.id });
  });
  app.get("/public", keyportMiddleware(guard, { optional: true }), (req, res) => {
    res.type("text").send(`public:${req.auth?.user.email ?? "anonymous"}`);
  });
  app.get("/write", keyportMiddleware(guard, { permissions: ["posts:write"] }), (req, res) => {
    res.type("text").send(`write:${req.auth?.user.email}`);
  });
  app.get("/read", keyportMiddleware(guard, { permissions: ["posts:read"] }), (req, res) => {
    res.type("text").send(`read:${req.auth?.user.email}`);
  });
  return listening(createServer(app));
}

async function startFastify(guard: KeyportGuard): Promise<App> {
  const app = Fastify();
  // The plugin guards every route of a scope; the hook one route each.
  await app.register(async (scope) => {
    await scope.register(keyportPlugin, { guard });
    scope.get("/me", async (request) => ({ email: request.auth?.user.email, sessionId: request.auth?.session.id }));
  });
  app.decorateRequest("auth", undefined);
  app.get("/public", { onRequest: keyportOnRequest({ guard, optional: true }) }, async (request, reply) =>
    reply.type("text/plain").send(`public:${request.auth?.user.email ?? "anonymous"}`),
  );
  app.get("/write", { onRequest: keyportOnRequest({ guard, permissions: ["posts:write"] }) }, async (request, reply) =>
    reply.type("text/plain").send(`write:${request.auth?.user.email}`),
  );
  app.get("/read", { onRequest: keyportOnRequest({ guard, permissions: ["posts:read"] }) }, async (request, reply) =>
    reply.type("text/plain").send(`read:${request.auth?.user.email}`),
  );
  await app.listen({ host: "127.0.0.1", port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => app.close() };
}

/** Route handlers written against `Request` and `Response` only, as in Next.js. */
async function webRoute(guard: KeyportGuard, request: Request, peerIp: string | undefined): Promise<Response> {
  const path = new URL(request.url).pathname;
  const permissions = path === "/write" ? ["posts:write"] : path === "/read" ? ["posts:read"] : [];
  const result: AuthResult = await guard.authenticateRequest(request, { peerIp, permissions });
  const headers = new Headers({ "content-type": "text/plain" });
  if (result.setCookie !== undefined) headers.append("set-cookie", result.setCookie);
  if (path === "/public") {
    const who = result.ok ? result.principal.user.email : "anonymous";
    if (!result.ok && (result.refusal.kind === "forbidden" || result.refusal.kind === "misconfigured")) {
      return refusalResponse(result);
    }
    return new Response(`public:${who}`, { headers });
  }
  if (!result.ok) return refusalResponse(result);
  const { user, session } = result.principal;
  switch (path) {
    case "/me":
      headers.set("content-type", "application/json");
      return new Response(JSON.stringify({ email: user.email, sessionId: session.id }), { headers });
    case "/write":
      return new Response(`write:${user.email}`, { headers });
    case "/read":
      return new Response(`read:${user.email}`, { headers });
    default:
      return new Response("not found", { status: 404 });
  }
}

async function startWebStandard(guard: KeyportGuard): Promise<App> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (typeof value === "string") headers.set(name, value);
      else if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    }
    const request = new Request(`http://${req.headers.host ?? "localhost"}${req.url ?? "/"}`, {
      method: req.method,
      headers,
    });
    webRoute(guard, request, req.socket.remoteAddress)
      .then(async (response) => {
        const cookies = response.headers.getSetCookie();
        const rest = [...response.headers].filter(([name]) => name !== "set-cookie");
        res.writeHead(response.status, [...rest.flat(), ...cookies.flatMap((c) => ["set-cookie", c])]);
        res.end(Buffer.from(await response.arrayBuffer()));
      })
      .catch((err: unknown) => {
        res.writeHead(500).end(String(err));
      });
  });
  return listening(server);
}

async function listening(server: Server): Promise<App> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
