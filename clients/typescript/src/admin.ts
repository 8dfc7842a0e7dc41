/**
 * Helpers for `AdminService` (`docs/admin.md`): {@link listAllUsers} walks
 * every page of `ListUsers`. The RPCs themselves stay the generated ones on
 * `KeyportClient.admin` (`listUsers`, `getUser`, `createUser`,
 * `setUserRoles`, `banUser`, `unbanUser`, `revokeUserSessions`,
 * `deleteUser`, and the service accounts' `createServiceAccount`,
 * `listServiceAccounts`, `setServiceAccountRoles` and
 * `deleteServiceAccount`), each with the admin's session token in its call
 * options (`withSession(token)`), or an API key whose scopes grant the
 * call's permission (`withSession(key)`).
 *
 * @packageDocumentation
 */

import type { MessageInitShape } from "@bufbuild/protobuf";
import type { CallOptions } from "@connectrpc/connect";

import type { KeyportClient } from "./common.js";
import type { ListUsersRequestSchema, ManagedUser } from "./gen/keyport/v1/admin_service_pb.js";

/**
 * Every user `ListUsers` lists for `request`'s filters, newest first, one
 * page after another: the next page is asked for only when the loop has
 * used up the one before, with the `nextPageToken` of that page, until a
 * page answers none. Users created meanwhile do not shift later pages (the
 * token is a cursor), and are not listed once the walk is past where they
 * would be.
 *
 * @example
 * ```ts
 * for await (const { user, ban } of listAllUsers(keyport, { emailPrefix: "ann", pageSize: 200 }, withSession(token))) {
 *   console.log(user?.email, ban ? `banned: ${ban.reason}` : "");
 * }
 * ```
 *
 * @param keyport - A client (its `admin` service).
 * @param request - The filters (`emailPrefix`, `createdAfter`,
 *   `createdBefore`, `role`, `ban`) and `pageSize` (1-200; 0 means 50) of
 *   every page; a `pageToken` starts the walk there instead of at the
 *   first page.
 * @param options - Call options of every page's call: the admin's session
 *   token (`withSession(token)`, unless the client has a `token`), and
 *   `timeoutMs` (per page) or `signal` (for the whole walk).
 * @returns An async iterator of the users (with their `ban` in force, if
 *   any).
 * @throws ConnectError of the failed page's call, e.g. `PERMISSION_DENIED`
 *   (the caller's roles do not grant `users:read`), `UNAUTHENTICATED` or
 *   `INVALID_ARGUMENT` (a malformed filter or page size); users of the
 *   pages before were yielded already.
 * @throws Error when the server answers the page token it was asked with
 *   again (it would never end).
 */
export async function* listAllUsers(
  keyport: Pick<KeyportClient, "admin">,
  request: MessageInitShape<typeof ListUsersRequestSchema> = {},
  options?: CallOptions,
): AsyncGenerator<ManagedUser, void, undefined> {
  let pageToken = request.pageToken ?? "";
  for (;;) {
    const page = await keyport.admin.listUsers({ ...request, pageToken }, options);
    yield* page.users;
    if (page.nextPageToken === "") {
      return;
    }
    if (page.nextPageToken === pageToken) {
      throw new Error("keyport: ListUsers answered the page token it was asked with");
    }
    pageToken = page.nextPageToken;
  }
}
