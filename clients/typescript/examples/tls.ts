import { readFileSync } from "node:fs";
import { join } from "node:path";

import { createKeyportClient } from "@keyport/client";

/**
 * A client for a Keyport that serves TLS with a certificate from a private CA
 * and, with `tls_client_ca_file` set, asks this service for its own (mTLS).
 */
export function mutualTlsClient(address: string, certDir: string) {
  return createKeyportClient(address, {
    timeoutMs: 5_000,
    tls: {
      ca: readFileSync(join(certDir, "ca.pem")), // the CA that signed Keyport's tls_cert_file
      cert: readFileSync(join(certDir, "client.pem")), // this service's certificate (mTLS only)
      key: readFileSync(join(certDir, "client.key")),
    },
  });
}
