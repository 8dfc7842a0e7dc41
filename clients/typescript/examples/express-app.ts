import express from "express";

import { createKeyportClient, KeyportGuard } from "@keyport/client";
import { keyportMiddleware } from "@keyport/client/express";

/** An Express app whose `/api` routes need a Keyport session, and whose home page shows who is signed in. */
export function expressApp(keyportAddress: string): express.Express {
  const guard = new KeyportGuard(createKeyportClient(keyportAddress));
  const app = express();
  app.get("/", keyportMiddleware(guard, { optional: true }), (req, res) => {
    res.send(req.auth ? `Hello, ${req.auth.user.email}` : "Hello, stranger");
  });
  app.use("/api", keyportMiddleware(guard));
  app.get("/api/me", (req, res) => {
    res.json({ userId: req.auth!.user.id, sessionId: req.auth!.session.id });
  });
  app.post("/api/posts", keyportMiddleware(guard, { permissions: ["posts:write"] }), (_req, res) => {
    res.status(201).end();
  });
  return app;
}
