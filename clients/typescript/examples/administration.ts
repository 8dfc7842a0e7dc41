import { BanFilter, errorReason, type KeyportClient, listAllUsers, withSession } from "@keyport/client";

/** Adds a user without a password (they choose one with a password reset), with `roles` besides `user`. */
export async function invite(keyport: KeyportClient, adminToken: string, email: string, roles: string[]): Promise<string> {
  const { user } = await keyport.admin.createUser({ email, name: "", emailVerified: true, roles }, withSession(adminToken));
  return user!.user!.id; // EMAIL_TAKEN when the address has an account
}

/** The admin page's list of banned users, every page of them, newest first: `email: reason`. */
export async function bannedUsers(keyport: KeyportClient, adminToken: string): Promise<string[]> {
  const lines: string[] = [];
  for await (const { user, ban } of listAllUsers(keyport, { ban: BanFilter.BANNED, pageSize: 200 }, withSession(adminToken))) {
    lines.push(`${user!.email}: ${ban!.reason}`);
  }
  return lines;
}

/** POST /admin/users/:id/ban (form field `reason`): every session of the user ends at once, and sign-ins answer USER_BANNED. */
export async function ban(keyport: KeyportClient, adminToken: string, userId: string, reason: string): Promise<Response> {
  try {
    const { user } = await keyport.admin.banUser({ userId, reason }, withSession(adminToken)); // no expiresAt: until unbanUser
    return new Response(`Banned ${user!.user!.email}.`);
  } catch (err) {
    switch (errorReason(err)) {
      case "USER_NOT_FOUND":
        return new Response("No such user.", { status: 404 });
      case "INVALID_ARGUMENT": // no reason, one over 512 characters, or the admin's own id
        return new Response("Give a reason; you cannot ban yourself.", { status: 400 });
      case "PERMISSION_DENIED": // the caller's roles do not grant users:write
        return new Response("Admins only.", { status: 403 });
      default:
        throw err; // UNAUTHENTICATED, SESSION_EXPIRED: sign in again
    }
  }
}
