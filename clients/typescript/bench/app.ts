/**
 * The benchmark's app, run in its own process so that the load generator
 * does not share its event loop: an Express hello-world route, bare or
 * behind `keyportMiddleware` (`BENCH_MODE` = `bare`, `cached` or
 * `uncached`, against the keyport at `KEYPORT_ADDRESS`). Prints its URL on
 * the first line once it listens (and, with a guard, once its cache is live).
 */

import type { AddressInfo } from "node:net";

import express from "express";

import { createKeyportClient, KeyportGuard } from "../src/index.js";
import { keyportMiddleware } from "../src/express.js";

const mode = process.env.BENCH_MODE ?? "bare";
const app = express();
app.set("etag", false);
app.set("x-powered-by", false);
if (mode !== "bare") {
  const guard = new KeyportGuard(createKeyportClient(process.env.KEYPORT_ADDRESS!), {
    cache: mode === "cached" ? {} : false,
  });
  await guard.cache?.whenLive();
  app.use(keyportMiddleware(guard));
}
app.get("/hello", (_req, res) => {
  res.type("text").send("hello");
});
const server = app.listen(0, "127.0.0.1", () => {
  const { port } = server.address() as AddressInfo;
  console.log(`http://127.0.0.1:${port}`);
});
process.on("SIGTERM", () => process.exit(0));
