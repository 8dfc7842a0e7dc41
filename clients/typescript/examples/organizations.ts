import { errorReason, type KeyportClient, withSession } from "@keyport/client";

/** The "New team" form: the organization's id, the caller its owner, or a 409 when the slug is taken. */
export async function createTeam(keyport: KeyportClient, sessionToken: string, name: string, slug: string): Promise<string | Response> {
  try {
    const { organization } = await keyport.organizations.createOrganization({ name, slug }, withSession(sessionToken));
    return organization!.id;
  } catch (err) {
    if (errorReason(err) === "SLUG_TAKEN") return new Response(`${slug} is taken: choose another.`, { status: 409 });
    throw err; // INVALID_ARGUMENT: a name empty or over 64 characters, a slug not 1-64 of a-z 0-9 -
  }
}

/** An owner's or admin's invitation (an admin may not invite admins: PERMISSION_DENIED); mail its id to the address. */
export async function invite(keyport: KeyportClient, sessionToken: string, organizationId: string, email: string, role: string): Promise<string> {
  const { invitation } = await keyport.organizations.createInvitation({ organizationId, email, role }, withSession(sessionToken));
  return invitation!.id;
}

/** The invitation link's page: works once, for a user whose verified email is the invited address. */
export async function join(keyport: KeyportClient, sessionToken: string, invitationId: string): Promise<Response> {
  try {
    const { membership } = await keyport.organizations.acceptInvitation({ invitationId }, withSession(sessionToken));
    return new Response(`Welcome to ${membership!.organization!.name} (${membership!.role}).`);
  } catch (err) {
    if (errorReason(err) === "INVITATION_INVALID") {
      // Unknown, revoked, used, expired, or for another (or an unverified) address.
      return new Response("This invitation no longer works: ask for a new one.", { status: 410 });
    }
    throw err;
  }
}

/** Whether the holder of a session token may do this in the organization: their own roles, or their role there. */
export async function allowedIn(keyport: KeyportClient, token: string, organizationId: string, permissions: string[]): Promise<boolean> {
  const { allowed } = await keyport.authorization.authorize({ token, permissions, organizationId });
  return allowed; // a non-member gets only their own roles: a deny, not an error
}
