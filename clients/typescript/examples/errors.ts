import { errorReason, fieldViolations, type KeyportClient } from "@keyport/client";

/** Signs a user up, or says what went wrong in words a person understands. */
export async function register(keyport: KeyportClient, email: string, password: string): Promise<string> {
  try {
    const { user } = await keyport.users.signUp({ email, password, name: "" });
    return `Welcome, ${user?.email}!`;
  } catch (err) {
    switch (errorReason(err)) {
      case "EMAIL_TAKEN":
        return "That address already has an account.";
      case "WEAK_PASSWORD":
        return "Choose a longer password.";
      case "INVALID_ARGUMENT":
        return fieldViolations(err).map((v) => `${v.field}: ${v.description}`).join("; ");
      default:
        throw err; // UNAVAILABLE, RESOURCE_EXHAUSTED, a deadline, a network error, ...
    }
  }
}
