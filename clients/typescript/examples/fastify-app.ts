import Fastify, { type FastifyInstance } from "fastify";

import { createKeyportClient, KeyportGuard } from "@keyport/client";
import { keyportOnRequest, keyportPlugin } from "@keyport/client/fastify";

/** A Fastify app: every route of the `/api` scope needs a session; `/` takes one if there is one. */
export async function fastifyApp(keyportAddress: string): Promise<FastifyInstance> {
  const guard = new KeyportGuard(createKeyportClient(keyportAddress));
  const app = Fastify();
  await app.register(
    async (api) => {
      await api.register(keyportPlugin, { guard });
      api.get("/me", async (request) => ({ userId: request.auth!.user.id }));
    },
    { prefix: "/api" },
  );
  app.decorateRequest("auth", undefined);
  app.get("/", { onRequest: keyportOnRequest({ guard, optional: true }) }, async (request) =>
    request.auth ? `Hello, ${request.auth.user.email}` : "Hello, stranger",
  );
  return app;
}
