import { createKeyportClient, errorReason, withSession } from "@keyport/client";

const keyport = createKeyportClient(process.env.KEYPORT_ADDRESS ?? "127.0.0.1:50051", { timeoutMs: 5_000 });
try {
  const { outcome } = await keyport.sessions.signIn({ email: "ada@example.com", password: "correct horse battery staple" });
  if (outcome.case !== "session") throw new Error("a second factor is needed");
  const { sessions } = await keyport.sessions.listSessions({}, withSession(outcome.value.token));
  console.log(`signed in as ${outcome.value.user?.email}; ${sessions.length} live session(s)`);
} catch (err) {
  if (errorReason(err) !== "INVALID_CREDENTIALS") throw err;
  console.log("wrong email or password");
}
