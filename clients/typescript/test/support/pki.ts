/**
 * A throw-away PKI made with the `openssl` command, as tests/e2e/tls.rs makes
 * one: a CA, a server certificate for 127.0.0.1 and localhost, a client
 * certificate from the same CA, and a stranger's from a second, untrusted CA.
 */

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The PKI's directory: `<name>.pem` and `<name>.key` for ca, other-ca, server, client, stranger. */
export interface Pki {
  readonly dir: string;
  /** The path of a file in {@link dir}. */
  path(name: string): string;
  /** Keyport's environment for TLS, and for mutual TLS when `mutual`. */
  serverEnv(mutual: boolean): Record<string, string>;
  /** Removes the directory. */
  remove(): void;
}

/**
 * Makes the certificates (a second or two).
 *
 * @throws Error when the `openssl` command is missing: the TLS tests need it.
 */
export function createPki(): Pki {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
  } catch {
    throw new Error("the TLS tests need the `openssl` command to make their certificates");
  }
  const dir = mkdtempSync(join(tmpdir(), "keyport-ts-pki-"));
  const path = (name: string): string => join(dir, name);
  const openssl = (...args: string[]): void => {
    execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  for (const ca of ["ca", "other-ca"]) {
    openssl("req", "-x509", ...ec, "-days", "1", "-subj", `/CN=${ca}`, "-keyout", `${ca}.key`, "-out", `${ca}.pem`);
  }
  writeFileSync(path("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  writeFileSync(path("client.ext"), "extendedKeyUsage=clientAuth\n");
  for (const [leaf, ca] of [["server", "ca"], ["client", "ca"], ["stranger", "other-ca"]] as const) {
    openssl("req", ...ec, "-subj", `/CN=${leaf}`, "-keyout", `${leaf}.key`, "-out", `${leaf}.csr`);
    openssl(
      "x509", "-req", "-in", `${leaf}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`, "-CAcreateserial",
      "-days", "1", "-extfile", leaf === "server" ? "server.ext" : "client.ext", "-out", `${leaf}.pem`,
    );
  }
  return {
    dir,
    path,
    serverEnv: (mutual) => ({
      KEYPORT_SERVER__TLS_CERT_FILE: path("server.pem"),
      KEYPORT_SERVER__TLS_KEY_FILE: path("server.key"),
      ...(mutual ? { KEYPORT_SERVER__TLS_CLIENT_CA_FILE: path("ca.pem") } : {}),
    }),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
