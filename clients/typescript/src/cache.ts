/**
 * {@link SessionCache}: validated sessions kept in memory, dropped the moment
 * Keyport says they were revoked (the Rust client's `SessionCache`).
 *
 * The cache serves entries only while its `WatchSessionEvents` stream is
 * live. When the stream ends, fails or falls silent it flushes and stops
 * serving (every check goes to Keyport), waits, subscribes again, and starts
 * empty after the next `ready`: a missed event can never leave a revoked
 * session valid. An answer that was in flight while any event arrived is not
 * cached, since it may predate that event.
 *
 * `Authorize` answers ride on the same entries: an answer caches the session
 * with every permission its roles grant, so later checks of that session are
 * decided here, and drop with it. A permission name is decided here only once
 * Keyport decided it (an unknown name stays an error, never a silent deny).
 *
 * @packageDocumentation
 */

import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";

import { API_KEY_PREFIX } from "./api-keys.js";
import type { KeyportClient } from "./common.js";
import { errorReason } from "./errors.js";
import type { Session } from "./gen/keyport/v1/session_pb.js";
import type { WatchSessionEventsResponse } from "./gen/keyport/v1/session_service_pb.js";
import type { User } from "./gen/keyport/v1/user_pb.js";

/** Who a valid session token belongs to: the session and its user. */
export interface Principal {
  /** The session (id, expiry, assurance level, ...). */
  readonly session: Session;
  /** The session's user (email, roles, ...). */
  readonly user: User;
}

/** How the end user reached the app, forwarded to Keyport with each check. */
export interface ClientInfo {
  /** The end user's IP address (`x-keyport-client-ip`). */
  readonly ipAddress?: string | undefined;
  /** The end user's user agent (`x-keyport-user-agent`). */
  readonly userAgent?: string | undefined;
}

/** A session Keyport (or the cache) found valid. */
export interface ValidatedSession {
  /** Who the token belongs to (shared with the cache entry: do not mutate). */
  readonly principal: Principal;
  /** Keyport pushed the expiry forward on this check: re-issue the cookie. */
  readonly refreshed: boolean;
}

/** A permission check answered by {@link SessionCache.authorize}. */
export interface Decision {
  /** Who is asking. */
  readonly principal: Principal;
  /** Per asked permission, in the order asked: allowed or not. */
  readonly allowed: readonly boolean[];
  /** Whether every asked permission is allowed. */
  readonly all: boolean;
  /** Keyport pushed the expiry forward on this check: re-issue the cookie. */
  readonly refreshed: boolean;
}

/** How a {@link SessionCache} behaves; every field has the Rust client's default. */
export interface SessionCacheOptions {
  /** Sessions kept at most; default 100,000. */
  maxEntries?: number;
  /** Longest an entry is served whatever the server's hint, in ms; default 60,000. */
  maxTtlMs?: number;
  /**
   * A stream silent this long counts as dead, in ms; default 40,000 (the
   * server sends a heartbeat every 15 s).
   */
  heartbeatTimeoutMs?: number;
  /** Pause before subscribing again after the stream ends, in ms; default 250. */
  reconnectDelayMs?: number;
  /**
   * How long a token Keyport refused as unknown, revoked or expired is
   * refused again without a call, in ms (it cannot become valid); default
   * 30,000; 0 to always ask.
   */
  refusalTtlMs?: number;
  /** Refused tokens remembered at most; default 10,000. */
  maxRefusals?: number;
}

/** A snapshot of what a cache holds and has done, for metrics. */
export interface SessionCacheStats {
  /** Sessions cached now. */
  readonly entries: number;
  /** Refused tokens remembered now. */
  readonly refusals: number;
  /** Whether the event stream is up (entries are served only then). */
  readonly live: boolean;
  /** Answers served from the cache. */
  readonly hits: number;
  /** Tokens Keyport was asked about. */
  readonly misses: number;
  /** Refusals served without asking Keyport. */
  readonly refusalHits: number;
  /** Times the stream went live (1 + resubscriptions). */
  readonly subscriptions: number;
  /** Events applied (revocations, user, role and key changes; not heartbeats). */
  readonly events: number;
  /** Subscriptions that ended before `ready` (Keyport down, or refusing this peer). */
  readonly subscribeFailures: number;
}

const DEFAULTS: Required<SessionCacheOptions> = {
  maxEntries: 100_000,
  maxTtlMs: 60_000,
  heartbeatTimeoutMs: 40_000,
  reconnectDelayMs: 250,
  refusalTtlMs: 30_000,
  maxRefusals: 10_000,
};

/** The metadata that forwards the end user's address. */
export const CLIENT_IP_HEADER = "x-keyport-client-ip";
/** The metadata that forwards the end user's user agent. */
export const USER_AGENT_HEADER = "x-keyport-user-agent";

interface Entry {
  readonly token: string;
  readonly principal: Principal;
  readonly validUntil: number;
  /** Every permission the session's roles grant; `undefined` from `GetSession`, which does not say. */
  readonly granted: ReadonlySet<string> | undefined;
}

/**
 * A revocation-aware cache of `GetSession` and `Authorize` answers in front
 * of a client. It subscribes to `WatchSessionEvents` when created, which
 * Keyport answers only to peers in its `server.trusted_proxies`; call
 * {@link SessionCache.close} to stop it (an open stream keeps Node running).
 *
 * @example
 * ```ts
 * const cache = new SessionCache(createKeyportClient("127.0.0.1:50051"));
 * const { principal } = await cache.getSession(token, { ipAddress, userAgent });
 * ```
 */
export class SessionCache {
  /** The client the cache asks on a miss (and subscribes with). */
  readonly client: KeyportClient;
  readonly #options: Required<SessionCacheOptions>;
  #live = false;
  /** Bumped by every event and every change of `live`: answers read under an older value are stale. */
  #epoch = 0;
  readonly #bySession = new Map<string, Entry>();
  readonly #byUser = new Map<string, Set<string>>();
  /** Permission names Keyport decided since the stream went live. */
  readonly #known = new Set<string>();
  readonly #refusals = new Map<string, { readonly error: ConnectError; readonly until: number }>();
  readonly #counters = { hits: 0, misses: 0, refusalHits: 0, subscriptions: 0, subscribeFailures: 0, events: 0 };
  readonly #closed = new AbortController();
  /** Aborts the current subscription (a call found Keyport down). */
  #stream: AbortController | undefined;
  #liveWaiters: Array<() => void> = [];

  /**
   * A cache in front of `client`, subscribing in the background until
   * {@link SessionCache.close}.
   */
  constructor(client: KeyportClient, options: SessionCacheOptions = {}) {
    this.client = client;
    this.#options = { ...DEFAULTS, ...definedOnly(options) };
    void this.#watch();
  }

  /** Whether the event stream is up, so that entries are being served. */
  get live(): boolean {
    return this.#live;
  }

  /**
   * Resolves once the stream is live (at once if it is), e.g. before a
   * benchmark or a test; rejects after `timeoutMs`.
   */
  whenLive(timeoutMs = 10_000): Promise<void> {
    if (this.#live) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`keyport: the session cache was not live within ${timeoutMs} ms`)), timeoutMs);
      this.#liveWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /**
   * Validates `token`: from the cache when possible, else by asking Keyport
   * (`GetSession`, forwarding `client`). A token Keyport refused as unknown,
   * revoked or expired is refused again without a call for `refusalTtlMs`.
   *
   * @throws ConnectError Keyport's refusal (`Code.Unauthenticated`, reason
   *   `UNAUTHENTICATED` or `SESSION_EXPIRED`), or the failure to reach it.
   */
  async getSession(token: string, client: ClientInfo = {}): Promise<ValidatedSession> {
    const principal = this.lookup(token);
    if (principal !== undefined) return { principal, refreshed: false };
    const ticket = this.#ask(token);
    const answer = await this.#called(token, () =>
      this.client.sessions.getSession({ token }, { headers: forwardedHeaders(client) }),
    );
    const validated = { principal: principalOf(answer.session, answer.user), refreshed: answer.refreshed };
    this.#insert(token, validated.principal, ttlOf(answer.cacheTtl), undefined, [], ticket);
    return validated;
  }

  /** A cached, unexpired principal for `token`, if the stream is live. */
  lookup(token: string): Principal | undefined {
    return this.#hit(token)?.principal;
  }

  /**
   * Decides `permissions` (`resource:action`) for `token`: here when the
   * session's grants are cached and Keyport decided every name before, else
   * with one `Authorize` call, whose answer is cached with the session.
   *
   * @throws ConnectError as {@link SessionCache.getSession},
   *   `PERMISSION_UNKNOWN` for a name outside Keyport's catalogue, and
   *   `Code.InvalidArgument` for an API key (`kpa_...`), which has no
   *   session to cache: call `client.authorization.authorize` for one.
   */
  async authorize(token: string, permissions: readonly string[], client: ClientInfo = {}): Promise<Decision> {
    if (token.startsWith(API_KEY_PREFIX)) {
      // A key's answer has no session to file it under: ask Keyport directly.
      throw new ConnectError("keyport: the session cache decides for session tokens; use client.authorization.authorize for an API key", Code.InvalidArgument);
    }
    const cached = this.decideCached(token, permissions);
    if (cached !== undefined) return cached;
    const ticket = this.#ask(token);
    const answer = await this.#called(token, () =>
      this.client.authorization.authorize(
        { token, permissions: [...permissions] },
        { headers: forwardedHeaders(client) },
      ),
    );
    const principal = principalOf(answer.session, answer.user);
    const decided = answer.decisions.map((decision) => decision.permission);
    this.#insert(token, principal, ttlOf(answer.cacheTtl), new Set(answer.granted), decided, ticket);
    const allowed = answer.decisions.map((decision) => decision.allowed);
    return { principal, allowed, all: allowed.every(Boolean), refreshed: answer.refreshed };
  }

  /**
   * A decision of `permissions` for `token` from the cache alone: the stream
   * is live, the session's grants are cached, and every name is one Keyport
   * decided before.
   */
  decideCached(token: string, permissions: readonly string[]): Decision | undefined {
    if (!permissions.every((permission) => this.#known.has(permission))) return undefined;
    const entry = this.#hit(token);
    if (entry?.granted === undefined) return undefined;
    const granted = entry.granted;
    const allowed = permissions.map((permission) => granted.has(permission));
    return { principal: entry.principal, allowed, all: allowed.every(Boolean), refreshed: false };
  }

  /**
   * Drops a session at once, e.g. right after this app revoked it (so the
   * app's own next request cannot be served before the event arrives).
   * Answers in flight are not cached either.
   */
  forgetSession(sessionId: string): void {
    this.#epoch++;
    this.#removeSession(sessionId);
  }

  /** Drops every session of a user. */
  forgetUser(userId: string): void {
    this.#epoch++;
    this.#removeUser(userId);
  }

  /** What the cache holds and has done. */
  stats(): SessionCacheStats {
    return {
      entries: this.#bySession.size,
      refusals: this.#refusals.size,
      live: this.#live,
      ...this.#counters,
    };
  }

  /** Stops the subscription and empties the cache; it never serves again. */
  close(): void {
    this.#closed.abort();
    this.#setLive(false);
  }

  /** A live, unexpired entry of exactly `token`. */
  #hit(token: string): Entry | undefined {
    if (!this.#live) return undefined;
    const id = entryIdOf(token);
    const entry = id === undefined ? undefined : this.#bySession.get(id);
    if (entry === undefined || !sameSecret(entry.token, token) || Date.now() >= entry.validUntil) return undefined;
    this.#counters.hits++;
    return entry;
  }

  /**
   * A miss: throws the remembered refusal of `token`, else counts the call
   * and returns the epoch ticket taken before it.
   */
  #ask(token: string): number {
    const refused = this.#refusals.get(token);
    if (refused !== undefined) {
      if (Date.now() < refused.until) {
        this.#counters.refusalHits++;
        throw refused.error;
      }
      this.#refusals.delete(token);
    }
    this.#counters.misses++;
    return this.#epoch;
  }

  /** `call`'s answer; a final refusal is remembered, and Keyport found down takes the cache dark. */
  async #called<T>(token: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      const error = ConnectError.from(err);
      if (isFinalRefusal(error)) {
        this.#rememberRefusal(token, error);
      } else if (error.code === Code.Unavailable || error.code === Code.DeadlineExceeded) {
        // The stream may be just as dead without saying so yet (a frozen
        // or partitioned server keeps its connection open).
        this.#stream?.abort();
      }
      throw error;
    }
  }

  #rememberRefusal(token: string, error: ConnectError): void {
    const { refusalTtlMs, maxRefusals } = this.#options;
    if (refusalTtlMs <= 0 || maxRefusals <= 0) return;
    const now = Date.now();
    if (this.#refusals.size >= maxRefusals) {
      for (const [key, { until }] of this.#refusals) if (until <= now) this.#refusals.delete(key);
      // Still full of fresh refusals (a flood of distinct junk): start over
      // rather than grow; each costs one more call at worst.
      if (this.#refusals.size >= maxRefusals) this.#refusals.clear();
    }
    this.#refusals.set(token, { error, until: now + refusalTtlMs });
  }

  /** Caches `principal` for `token` if no event arrived since `ticket` was taken. */
  #insert(
    token: string,
    principal: Principal,
    hintMs: number,
    granted: ReadonlySet<string> | undefined,
    decided: readonly string[],
    ticket: number,
  ): void {
    const ttl = Math.min(hintMs, this.#options.maxTtlMs);
    const id = entryIdOf(token);
    if (ttl <= 0 || !this.#live || ticket !== this.#epoch || id === undefined) return;
    for (const name of decided) this.#known.add(name);
    if (this.#bySession.size >= this.#options.maxEntries && !this.#bySession.has(id)) this.#evict();
    this.#removeSession(id);
    this.#bySession.set(id, { token, principal, validUntil: Date.now() + ttl, granted });
    const userId = principal.user.id;
    let sessions = this.#byUser.get(userId);
    if (sessions === undefined) this.#byUser.set(userId, (sessions = new Set()));
    sessions.add(id);
  }

  /** Makes room: expired entries, else the oldest inserted one. */
  #evict(): void {
    const now = Date.now();
    for (const [id, entry] of this.#bySession) if (entry.validUntil <= now) this.#removeSession(id);
    if (this.#bySession.size >= this.#options.maxEntries) {
      const oldest = this.#bySession.keys().next();
      if (oldest.done !== true) this.#removeSession(oldest.value);
    }
  }

  #removeSession(id: string): void {
    const entry = this.#bySession.get(id);
    if (entry === undefined) return;
    this.#bySession.delete(id);
    const sessions = this.#byUser.get(entry.principal.user.id);
    sessions?.delete(id);
    if (sessions?.size === 0) this.#byUser.delete(entry.principal.user.id);
  }

  #removeUser(userId: string): void {
    for (const id of this.#byUser.get(userId) ?? []) this.#bySession.delete(id);
    this.#byUser.delete(userId);
  }

  #clear(): void {
    this.#bySession.clear();
    this.#byUser.clear();
    this.#known.clear();
  }

  /** Goes live or dark; either way starts from an empty cache. */
  #setLive(live: boolean): void {
    this.#epoch++;
    this.#clear();
    this.#live = live && !this.#closed.signal.aborted;
    if (this.#live) {
      const waiters = this.#liveWaiters;
      this.#liveWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  #apply(event: WatchSessionEventsResponse["event"]): void {
    this.#epoch++;
    switch (event.case) {
      case "sessionRevoked":
        this.#removeSession(event.value.sessionId);
        break;
      case "userChanged":
        this.#removeUser(event.value.userId);
        break;
      case "rolesChanged":
        // Every cached decision may be stale, and an entry is both a
        // session and its decisions: start over.
        this.#clear();
        break;
      case "apiKeysChanged":
        if (event.value.apiKeyId === "") this.#removeUser(event.value.ownerId);
        else this.#removeSession(`${API_KEY_PREFIX}${event.value.apiKeyId}`);
        break;
      default:
        break;
    }
  }

  /** Keeps the cache subscribed until it is closed. */
  async #watch(): Promise<void> {
    const closed = this.#closed.signal;
    while (!closed.aborted) {
      const stream = new AbortController();
      this.#stream = stream;
      const stop = (): void => stream.abort();
      closed.addEventListener("abort", stop);
      let silence: NodeJS.Timeout | undefined;
      const heard = (): void => {
        clearTimeout(silence);
        silence = setTimeout(stop, this.#options.heartbeatTimeoutMs);
        silence.unref();
      };
      let wentLive = false;
      try {
        heard();
        const events = this.client.sessions.watchSessionEvents({}, { signal: stream.signal, timeoutMs: 0 });
        for await (const { event } of events) {
          heard();
          if (event.case === "ready") {
            wentLive = true;
            this.#counters.subscriptions++;
            this.#setLive(true);
          } else if (event.case !== "heartbeat" && event.case !== undefined) {
            this.#counters.events++;
            this.#apply(event);
          }
        }
      } catch {
        // Ended, failed, silent or aborted: all the same to the cache.
      } finally {
        clearTimeout(silence);
        closed.removeEventListener("abort", stop);
        this.#setLive(false);
        if (!wentLive) this.#counters.subscribeFailures++;
      }
      await sleep(this.#options.reconnectDelayMs, closed);
    }
  }
}

/**
 * What an entry is filed under: the session id inside `kp_<id>.<secret>`,
 * or `kpa_<id>` for an API key (a key's entry is apart from sessions').
 */
export function entryIdOf(token: string): string | undefined {
  const dot = token.indexOf(".");
  if (dot < 0) return undefined;
  if (token.startsWith(API_KEY_PREFIX)) return token.slice(0, dot);
  return token.startsWith("kp_") && dot > 3 ? token.slice(3, dot) : undefined;
}

/**
 * Whether two tokens are the same, in constant time: the entry was found by
 * the token's public id, and `===` would tell by its timing how much of a
 * guessed secret is right.
 */
function sameSecret(cached: string, presented: string): boolean {
  if (cached.length !== presented.length) return false;
  // Tokens are ASCII (the guard checks their shape): comparing UTF-16 code
  // units is comparing bytes, without allocating buffers on every hit.
  let difference = 0;
  for (let i = 0; i < cached.length; i++) difference |= cached.charCodeAt(i) ^ presented.charCodeAt(i);
  return difference === 0;
}

/** Unknown, revoked or expired: the token is dead for good. */
function isFinalRefusal(error: ConnectError): boolean {
  const reason = errorReason(error);
  return error.code === Code.Unauthenticated && (reason === "UNAUTHENTICATED" || reason === "SESSION_EXPIRED");
}

/** The metadata that forwards `client` to Keyport. */
export function forwardedHeaders(client: ClientInfo): Headers {
  const headers = new Headers();
  if (client.ipAddress !== undefined && client.ipAddress !== "") headers.set(CLIENT_IP_HEADER, client.ipAddress);
  // A header value cannot hold control characters; such an agent is dropped
  // rather than failing the check.
  if (client.userAgent !== undefined && client.userAgent !== "" && !/[\0-\x1f\x7f]/.test(client.userAgent)) {
    headers.set(USER_AGENT_HEADER, client.userAgent);
  }
  return headers;
}

function principalOf(session: Session | undefined, user: User | undefined): Principal {
  if (session === undefined || user === undefined) {
    // Keyport always sends both for a session; an API key has no session.
    throw new ConnectError("keyport: the answer names no session and user", Code.Unauthenticated);
  }
  return { session, user };
}

function ttlOf(ttl: Parameters<typeof durationMs>[0] | undefined): number {
  return ttl === undefined ? 0 : durationMs(ttl);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}
