import { createKeyportClient, withSession } from "@keyport/client";

/** Ends the session of `token`: the token goes with this one call only. */
export async function signOut(address: string, token: string): Promise<void> {
  const keyport = createKeyportClient(address);
  await keyport.sessions.signOut({}, withSession(token));
  keyport.close();
}

/** A client that sends the token the app holds at the time of each call. */
export function clientFor(address: string, currentToken: () => string | undefined) {
  return createKeyportClient(address, { token: currentToken });
}
