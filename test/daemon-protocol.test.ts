// The daemon's text exchange as pure functions (src/protocol/daemon.ts): what krsync sends and
// how it reads what a daemon sends. The real daemon's acceptance is in daemon-interop.test.ts.
import { describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import {
  agreeDaemonProtocol,
  authHashInput,
  authResponse,
  base64NoPad,
  chooseAuthDigest,
  classifyDaemonLine,
  daemonGreeting,
  daemonPathArgs,
  decodeDaemonLine,
  encodeDaemonArgs,
  moduleRequest,
  parseDaemonGreeting,
  passwordFromFile,
} from "../src/protocol/daemon.js";
import { authDigest } from "../src/delta/checksum.js";

describe("daemon greeting", () => {
  it("krsync greets with its protocol, subprotocol 0 and rsync's auth digest list", () => {
    expect(daemonGreeting(32)).toBe("@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4\n");
    expect(daemonGreeting(27)).toBe("@RSYNCD: 27.0 sha512 sha256 sha1 md5 md4\n");
  });

  it("reads the daemon's version, subprotocol and digest list", () => {
    expect(parseDaemonGreeting("@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4")).toEqual({ protocol: 32, sub: 0, digests: "sha512 sha256 sha1 md5 md4" });
    // An old daemon: no subprotocol before 30, no list before 32.
    expect(parseDaemonGreeting("@RSYNCD: 29")).toEqual({ protocol: 29, sub: 0, digests: undefined });
    expect(parseDaemonGreeting("@RSYNCD: 31.0")).toEqual({ protocol: 31, sub: 0, digests: undefined });
  });

  it("refuses what is not a greeting, with rsync's words", () => {
    expect(() => parseDaemonGreeting("SSH-2.0-OpenSSH_9.6")).toThrow('server sent "SSH-2.0-OpenSSH_9.6" rather than greeting');
    expect(() => parseDaemonGreeting("@RSYNCD: 30")).toThrow("the server omitted the subprotocol value: @RSYNCD: 30");
    expect(() => parseDaemonGreeting("@RSYNCD: 32.0")).toThrow("the server omitted the digest name list: @RSYNCD: 32.0");
    try {
      parseDaemonGreeting("nope");
    } catch (e) {
      expect((e as { exitCode: number }).exitCode).toBe(5);
    }
  });

  it("agrees on the protocol as exchange_protocols does", () => {
    expect(agreeDaemonProtocol(32, 32, 0)).toBe(32);
    expect(agreeDaemonProtocol(27, 32, 0)).toBe(27);
    expect(agreeDaemonProtocol(32, 30, 0)).toBe(30);
    // A pre-release daemon (subprotocol != 0) speaks one less than it says.
    expect(agreeDaemonProtocol(32, 31, 2)).toBe(30);
    expect(agreeDaemonProtocol(32, 32, 1)).toBe(31);
  });
});

describe("daemon status lines", () => {
  it("classifies start_inband_exchange's lines", () => {
    expect(classifyDaemonLine("@RSYNCD: OK")).toEqual({ kind: "ok" });
    expect(classifyDaemonLine("@RSYNCD: EXIT")).toEqual({ kind: "exit" });
    expect(classifyDaemonLine("@RSYNCD: AUTHREQD abc+/")).toEqual({ kind: "authreqd", challenge: "abc+/" });
    expect(classifyDaemonLine("@ERROR: Unknown module 'x'")).toEqual({ kind: "error", text: "@ERROR: Unknown module 'x'" });
    expect(classifyDaemonLine("ro             \tcomment")).toEqual({ kind: "motd", text: "ro             \tcomment" });
    expect(classifyDaemonLine("@RSYNCD: OKAY")).toEqual({ kind: "motd", text: "@RSYNCD: OKAY" });
  });

  it("drops carriage returns and refuses NUL bytes (io.c read_line_old)", () => {
    expect(decodeDaemonLine(Buffer.from("@RSYNCD: OK\r"))).toBe("@RSYNCD: OK");
    expect(decodeDaemonLine(Buffer.from("a\0b"))).toBeNull();
  });
});

describe("daemon auth", () => {
  it("picks the strongest digest both sides have, md5 for an old daemon from protocol 30", () => {
    expect(chooseAuthDigest("sha512 sha256 sha1 md5 md4", 32)).toBe("sha512");
    expect(chooseAuthDigest("md5 md4", 31)).toBe("md5");
    expect(chooseAuthDigest("md4", 27)).toBe("md4");
    expect(chooseAuthDigest(undefined, 30)).toBe("md5");
    expect(() => chooseAuthDigest(undefined, 29)).toThrow(/md4/);
    expect(() => chooseAuthDigest("crc32", 32)).toThrow(/negotiate/);
  });

  it("answers with USER base64(H(password challenge)), unpadded", async () => {
    const input = authHashInput("pw", "CHAL");
    expect(Buffer.from(input).toString()).toBe("pwCHAL");
    const md5 = await authDigest("md5", input);
    const expected = createHash("md5").update("pwCHAL").digest("base64").replace(/=+$/, "");
    expect(authResponse("alice", md5)).toBe(`alice ${expected}\n`);
    expect(authResponse("", md5)).toBe(`nobody ${expected}\n`);
    // md4 (not in Node's OpenSSL 3) through hash-wasm: RFC 1320's test vector.
    expect(Buffer.from(await authDigest("md4", Buffer.from("abc"))).toString("hex")).toBe("a448017aaf21d8525fc10ae87aa6729d");
    expect((await authDigest("sha512", input)).length).toBe(64);
    expect(base64NoPad(Buffer.from([0xff]))).toBe("/w");
  });

  it("takes the first line of a password file", () => {
    expect(passwordFromFile(Buffer.from("secret\nmore\n"))).toBe("secret");
    expect(passwordFromFile(Buffer.from("with space\r\n"))).toBe("with space");
    expect(passwordFromFile(Buffer.from(""))).toBeUndefined();
  });
});

describe("daemon args", () => {
  it("sends the module as MODULE/ and guards paths as start_inband_exchange does", () => {
    expect(daemonPathArgs("mod", ["mod", "mod/", "mod/a/b", "-x", "mod/a mod/b"])).toEqual(["mod/", "mod/", "mod/a/b", "./-x", "mod/a[ ]mod/b"]);
    expect(moduleRequest("mod")).toBe("mod\n");
    expect(moduleRequest("")).toBe("\n");
  });

  it("terminates args with NUL from protocol 30, with newline before", () => {
    expect(Buffer.from(encodeDaemonArgs(["--server", "-r", ".", "mod/"], 30)).toString()).toBe("--server\0-r\0.\0mod/\0\0");
    expect(Buffer.from(encodeDaemonArgs(["--server", "."], 29)).toString()).toBe("--server\n.\n\n");
  });
});
