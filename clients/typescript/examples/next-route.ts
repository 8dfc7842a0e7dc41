import { createKeyportClient, KeyportGuard, refusalResponse } from "@keyport/client";

// One guard per process (module scope), so that its cache is shared by every request.
const guard = new KeyportGuard(createKeyportClient(process.env.KEYPORT_ADDRESS ?? "127.0.0.1:50051"), {
  trustForwardedFor: true, // behind the platform's proxy, which appends X-Forwarded-For
});

/** A Next.js route handler (`app/api/me/route.ts`); the same code serves Astro, Remix or Hono. */
export async function GET(request: Request): Promise<Response> {
  const result = await guard.authenticateRequest(request);
  if (!result.ok) return refusalResponse(result); // 401, 403 or 503 with {"error": reason}
  const response = Response.json({ email: result.principal.user.email });
  if (result.setCookie) response.headers.append("set-cookie", result.setCookie); // the expiry slid
  return response;
}
