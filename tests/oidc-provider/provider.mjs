// A real OpenID Connect provider (panva/oidc-provider) for Keyport's
// end-to-end tests, driven by tests/src/oidc.rs.
//
// Listens on 127.0.0.1:0 and prints one line `{"issuer":"http://127.0.0.1:PORT"}`
// on stdout once ready. Exits when stdin closes, so it dies with the test
// process that spawned it even if that process is killed.
//
// Environment:
//   REDIRECT_URIS  comma-separated redirect URIs of the one client
//                  (client_id `keyport-test`, secret `keyport-test-secret`).
//
// There is no UI: the interaction route signs in whoever the test set with
// `POST /test/next-login` and grants every requested scope. Control
// endpoints, JSON over HTTP on the same port:
//   POST /test/next-login {sub, email, email_verified, name}
//        who the next authorization signs in (used once; without one the
//        authorization ends with `error=login_required`)
//   POST /test/next-error {error}
//        the next authorization redirects back with `?error=<error>&state=..`
//   POST /test/tamper {kind}   kind: aud | iss | nonce | expired | signature
//        the next token response carries a broken id_token: the one claim
//        changed and re-signed with the provider's own key, or (signature)
//        signed with another key under the same `kid`.

import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';
import { SignJWT, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair } from 'jose';

const CLIENT_ID = 'keyport-test';
const CLIENT_SECRET = 'keyport-test-secret';
const TAMPER_KINDS = new Set(['aud', 'iss', 'nonce', 'expired', 'signature']);

const redirectUris = (process.env.REDIRECT_URIS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
if (redirectUris.length === 0) {
  console.error('provider.mjs: set REDIRECT_URIS (comma-separated)');
  process.exit(2);
}

// The signing key, generated at start; the script keeps the private key to
// re-sign tampered tokens. `otherKey` signs the `signature` tamper.
const KID = 'keyport-test-key';
const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const { privateKey: otherKey } = await generateKeyPair('RS256', { extractable: true });
const signingJwk = { ...(await exportJWK(privateKey)), kid: KID, alg: 'RS256', use: 'sig' };

// Test-controlled state, each used by the next authorization or token response.
const accounts = new Map(); // sub -> {sub, email, email_verified, name}
let nextLogin = null;
let nextError = null;
let nextTamper = null;

// Listen first: the issuer must carry the port.
const server = createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: redirectUris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [signingJwk] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'email', 'profile'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // Put the scope claims (email, name) in the id_token too, as Google does.
  conformIdTokenClaims: false,
  pkce: { methods: ['S256'], required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    const account = accounts.get(sub);
    return account && { accountId: sub, claims: async () => ({ ...account }) };
  },
  async renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
});

// Reads a JSON request body.
async function jsonBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
}

// Control endpoints.
provider.use(async (ctx, next) => {
  if (!ctx.path.startsWith('/test/')) return next();
  try {
    const body = ctx.method === 'POST' ? await jsonBody(ctx.req) : {};
    if (ctx.path === '/test/next-login' && typeof body.sub === 'string' && body.sub) {
      nextLogin = {
        sub: body.sub,
        email: body.email,
        email_verified: Boolean(body.email_verified),
        name: body.name,
      };
    } else if (ctx.path === '/test/next-error' && typeof body.error === 'string' && body.error) {
      nextError = body.error;
    } else if (ctx.path === '/test/tamper' && TAMPER_KINDS.has(body.kind)) {
      nextTamper = body.kind;
    } else {
      ctx.status = 400;
      ctx.body = { error: `bad control request ${ctx.method} ${ctx.path}` };
      return;
    }
    ctx.body = { ok: true };
  } catch (err) {
    ctx.status = 400;
    ctx.body = { error: String(err) };
  }
});

// The interaction "UI": completes at once with the next login and a grant of
// everything requested, or with the next error.
provider.use(async (ctx, next) => {
  if (ctx.method !== 'GET' || !ctx.path.startsWith('/interaction/')) return next();
  const { params } = await provider.interactionDetails(ctx.req, ctx.res);
  let result;
  if (nextError) {
    result = { error: nextError, error_description: 'set by POST /test/next-error' };
    nextError = null;
  } else if (nextLogin) {
    accounts.set(nextLogin.sub, nextLogin);
    const grant = new provider.Grant({ accountId: nextLogin.sub, clientId: params.client_id });
    grant.addOIDCScope(params.scope); // the scope claims come with it
    result = { login: { accountId: nextLogin.sub }, consent: { grantId: await grant.save() } };
    nextLogin = null;
  } else {
    result = { error: 'login_required', error_description: 'no POST /test/next-login before this authorization' };
  }
  ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false }));
});

// Breaks the id_token of the next successful token response.
provider.use(async (ctx, next) => {
  await next();
  if (!nextTamper || ctx.path !== '/token' || ctx.status !== 200 || !ctx.body?.id_token) return;
  const kind = nextTamper;
  nextTamper = null;
  const header = decodeProtectedHeader(ctx.body.id_token);
  const payload = decodeJwt(ctx.body.id_token);
  let key = privateKey;
  switch (kind) {
    case 'aud':
      payload.aud = 'someone-else';
      break;
    case 'iss':
      payload.iss = 'http://127.0.0.1:1';
      break;
    case 'nonce':
      payload.nonce = `not-${payload.nonce}`;
      break;
    case 'expired':
      // Shift the whole lifetime two hours back: well-formed, long expired.
      payload.iat -= 7200;
      payload.exp = payload.iat + 600;
      if (payload.auth_time) payload.auth_time -= 7200;
      break;
    case 'signature':
      key = otherKey; // same header, so same `kid`: only the signature is wrong
      break;
  }
  ctx.body = { ...ctx.body, id_token: await new SignJWT(payload).setProtectedHeader(header).sign(key) };
});

provider.on('server_error', (ctx, err) => console.error('provider.mjs server_error:', err));

server.on('request', provider.callback());
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
process.stdout.write(`${JSON.stringify({ issuer })}\n`);
