// Per-run TLS material for the fake API server: a throwaway CA and a server certificate for
// 127.0.0.1 / ::1 / localhost, made with the openssl command (Go's TLS stack, i.e. kubectl,
// insists on subjectAltName, so the server cert carries one).

import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface TestCerts {
  caFile: string;
  certFile: string;
  keyFile: string;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** Locates the openssl binary; throws with a clear message when there is none. */
export async function findOpenssl(): Promise<string> {
  for (const p of ["/usr/bin/openssl", "/usr/local/bin/openssl", "/bin/openssl"]) {
    try {
      await run(p, ["version"]);
      return p;
    } catch {
      // try the next one
    }
  }
  throw new Error("fake kube API: the openssl command is needed to make test certificates");
}

/** Writes ca.crt, server.crt and server.key (EC P-256, valid 2 days) into dir. */
export async function makeTestCerts(dir: string, hosts: string[] = ["localhost"]): Promise<TestCerts> {
  const openssl = await findOpenssl();
  const caKey = join(dir, "ca.key");
  const caFile = join(dir, "ca.crt");
  const keyFile = join(dir, "server.key");
  const csr = join(dir, "server.csr");
  const certFile = join(dir, "server.crt");
  const ext = join(dir, "server.ext");
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await run(openssl, [
    "req", "-x509", ...ec, "-keyout", caKey, "-out", caFile, "-days", "2",
    "-subj", "/CN=krsync-fake-kube-ca",
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  await run(openssl, ["req", ...ec, "-keyout", keyFile, "-out", csr, "-subj", "/CN=krsync-fake-kube-apiserver"]);
  const san = ["IP:127.0.0.1", "IP:::1", ...hosts.map((h) => `DNS:${h}`)].join(",");
  await writeFile(
    ext,
    [
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      `subjectAltName=${san}`,
      "",
    ].join("\n"),
  );
  await run(openssl, [
    "x509", "-req", "-in", csr, "-CA", caFile, "-CAkey", caKey, "-CAcreateserial",
    "-out", certFile, "-days", "2", "-extfile", ext,
  ]);
  const [ca, cert, key] = await Promise.all([readFile(caFile), readFile(certFile), readFile(keyFile)]);
  return { caFile, certFile, keyFile, ca, cert, key };
}
