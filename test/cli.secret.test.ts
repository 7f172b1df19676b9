// `refiner-destination secret`, run as the built command against a loopback stand-in of Secrets
// Manager's protocol: it creates the stage's secret from answers on standard input, keeps values
// on an empty answer, rotates, and never prints the API key or the shared secret. On a terminal
// (a pseudo-terminal from util-linux's `script`) what is typed is not echoed; without a region or
// credentials it says in one line what to set.

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type LocalSecrets, startLocalSecrets } from "../local/secrets-emulator.ts";
import { CLI } from "./support/cli.ts";
import { startNode } from "./support/command.ts";

const KEY = "rfk_live_9a8b7c6d5e4f3a2b";
const SHARED = "whsec_shared_1f2e3d4c";

let secrets: LocalSecrets;
beforeAll(async () => {
  secrets = await startLocalSecrets();
});
afterAll(() => secrets.stop());
beforeEach(() => {
  secrets.secrets.clear();
  secrets.calls.length = 0;
});

/** No configuration of this machine's own: an empty home, no AWS files, no instance metadata. */
const BARE = {
  PATH: process.env.PATH,
  HOME: mkdtempSync(join(tmpdir(), "refiner-secret-home-")),
  AWS_CONFIG_FILE: "/nonexistent/aws-config",
  AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/aws-credentials",
  AWS_EC2_METADATA_DISABLED: "true",
};

const local = () => ({
  ...BARE,
  AWS_REGION: "us-east-1",
  AWS_ACCESS_KEY_ID: "local",
  AWS_SECRET_ACCESS_KEY: "local",
  AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.endpoint,
});

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const child of children) child.kill("SIGKILL");
  children.clear();
  secrets.failWith = undefined;
});

/** Starts the command; `done` resolves with what it printed. */
function start(args: string[], env: Record<string, string | undefined>) {
  const { child, output, done } = startNode(CLI, ["secret", ...args], { env });
  return {
    child,
    result: output,
    done: done.then(({ code, stdout, stderr }): Result => ({ status: code, stdout, stderr })),
  };
}

/** Runs the command with these lines on standard input. */
function secret(
  args: string[],
  input: string[],
  env: Record<string, string | undefined> = local(),
) {
  const { child, done } = start(args, env);
  child.stdin.end(input.map((line) => `${line}\n`).join(""));
  return done;
}

/** Resolves once `read()` contains `text`: the command is waiting for that answer. */
async function prompted(read: () => string, text: string): Promise<void> {
  while (!read().includes(text)) await new Promise((resolve) => setTimeout(resolve, 10));
}

const stored = (stage = "prod") =>
  JSON.parse(secrets.secrets.get(`refiner-destination/${stage}`) ?? "null") as Record<
    string,
    string
  >;

describe("refiner-destination secret", () => {
  it("creates the stage's secret from the answers, with a new webhook token, printing no secret", async () => {
    const result = await secret(["--stage", "prod"], [KEY, SHARED]);
    expect(result.status).toBe(0);
    const values = stored();
    expect(Object.keys(values).sort()).toEqual([
      "REFINER_API_KEY",
      "SEGMENT_SHARED_SECRET",
      "SEGMENT_WEBHOOK_TOKEN",
    ]);
    expect(values.REFINER_API_KEY).toBe(KEY);
    expect(values.SEGMENT_SHARED_SECRET).toBe(SHARED);
    expect(values.SEGMENT_WEBHOOK_TOKEN).toMatch(/^[0-9a-f]{64}$/);
    expect(result.stdout).toContain(`?token=${values.SEGMENT_WEBHOOK_TOKEN}`);
    expect(result.stdout).toContain(
      "Created the secret refiner-destination/prod with REFINER_API_KEY, SEGMENT_SHARED_SECRET, SEGMENT_WEBHOOK_TOKEN.",
    );
    expect(result.stdout + result.stderr).not.toContain(KEY);
    expect(result.stdout + result.stderr).not.toContain(SHARED);
  });

  it("keeps every value on empty answers, and changes only the key given", async () => {
    await secret(["--stage", "prod"], [KEY, SHARED]);
    const first = stored();
    const result = await secret(["--stage", "prod"], ["rfk_live_new_key_0001", ""]);
    expect(result.status).toBe(0);
    expect(stored()).toEqual({ ...first, REFINER_API_KEY: "rfk_live_new_key_0001" });
    expect(result.stdout).toContain("no deploy is needed");
    expect(result.stdout).not.toContain("token=");
  });

  it("rotates: new token and shared secret, the old ones kept beside them until --end-rotation", async () => {
    await secret(["--stage", "prod"], [KEY, SHARED]);
    const first = stored();
    await secret(["--stage", "prod", "--rotate"], ["", "whsec_shared_new_9z"]);
    const rotating = stored();
    expect(rotating).toEqual({
      REFINER_API_KEY: KEY,
      SEGMENT_SHARED_SECRET: "whsec_shared_new_9z",
      SEGMENT_SHARED_SECRET_PREVIOUS: SHARED,
      SEGMENT_WEBHOOK_TOKEN: expect.stringMatching(/^[0-9a-f]{64}$/),
      SEGMENT_WEBHOOK_TOKEN_PREVIOUS: first.SEGMENT_WEBHOOK_TOKEN,
    });
    expect(rotating.SEGMENT_WEBHOOK_TOKEN).not.toBe(first.SEGMENT_WEBHOOK_TOKEN);
    await secret(["--stage", "prod", "--end-rotation"], []);
    expect(stored()).toEqual({
      REFINER_API_KEY: KEY,
      SEGMENT_SHARED_SECRET: "whsec_shared_new_9z",
      SEGMENT_WEBHOOK_TOKEN: rotating.SEGMENT_WEBHOOK_TOKEN,
    });
  }, 60_000);

  it("writes nothing without an API key, and needs --stage", async () => {
    const empty = await secret(["--stage", "prod"], ["", ""]);
    expect(empty.status).toBe(2);
    expect(empty.stdout).toContain("A Refiner API key is required");
    expect(secrets.secrets.size).toBe(0);
    const noStage = await secret([], [KEY]);
    expect(noStage.status).toBe(2);
    expect(noStage.stderr).toContain("give --stage STAGE");
  });

  it("names the cause when Secrets Manager refuses", async () => {
    secrets.failWith = "AccessDeniedException";
    try {
      const result = await secret(["--stage", "prod"], [KEY, SHARED]);
      expect(result.status).toBe(1);
      expect(result.stderr).toContain("AccessDeniedException");
      expect(result.stderr).not.toContain(KEY);
    } finally {
      secrets.failWith = undefined;
    }
  });

  it("refuses a second --rotate before --end-rotation, so the token Segment still sends keeps working", async () => {
    await secret(["--stage", "prod"], [KEY, SHARED]);
    await secret(["--stage", "prod", "--rotate"], ["", "whsec_shared_new_9z"]);
    const rotating = stored();
    const again = await secret(["--stage", "prod", "--rotate"], ["", "whsec_shared_third"]);
    expect(again.status).toBe(2);
    expect(again.stdout).toBe(
      "A rotation is under way: refiner-destination/prod still keeps the previous values beside the new ones, and Segment may still send them. Once Segment sends only the new ones, run --end-rotation, then --rotate again. Nothing was written.\n",
    );
    // Refused before any question was asked.
    expect(again.stderr).toBe("");
    expect(stored()).toEqual(rotating);

    await secret(["--stage", "prod", "--end-rotation"], []);
    const next = await secret(["--stage", "prod", "--rotate"], ["", ""]);
    expect(next.status).toBe(0);
    expect(stored().SEGMENT_WEBHOOK_TOKEN_PREVIOUS).toBe(rotating.SEGMENT_WEBHOOK_TOKEN);
  }, 60_000);

  it("prints a new token only after the write succeeded", async () => {
    const { child, result, done } = start(["--stage", "prod"], local());
    await prompted(() => result.stderr, "Refiner API key");
    // The secret was read (there is none yet); now Secrets Manager refuses the write.
    secrets.failWith = "AccessDeniedException";
    child.stdin.end(`${KEY}\n${SHARED}\n`);
    const failed = await done;
    expect(failed.status).toBe(1);
    expect(failed.stderr).toContain(
      "refiner-destination secret: AccessDeniedException: refused by the local stand-in",
    );
    expect(failed.stdout).toBe("");
    expect(secrets.secrets.size).toBe(0);
  });

  it("says in one line to set a region when there is none, without the SDK's warnings", async () => {
    const { AWS_REGION: _, ...noRegion } = local();
    const result = await secret(["--stage", "prod"], [KEY, SHARED], noRegion);
    expect(result.status).toBe(1);
    expect(result.stderr).toBe(
      "refiner-destination secret: no AWS region: set AWS_REGION (e.g. AWS_REGION=us-east-1), or AWS_PROFILE to a profile that has one.\n",
    );
    expect(result.stdout).toBe("");
  });

  it("says in one line to set credentials when there are none, without the SDK's warnings", async () => {
    const { AWS_ACCESS_KEY_ID: _, AWS_SECRET_ACCESS_KEY: __, ...noCredentials } = local();
    const result = await secret(["--stage", "prod"], [KEY, SHARED], noCredentials);
    expect(result.status).toBe(1);
    expect(result.stderr).toBe(
      "refiner-destination secret: no AWS credentials: set AWS_PROFILE (after aws sso login, if it uses SSO), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.\n",
    );
    expect(secrets.calls).not.toContain("CreateSecret");
  });

  it("does not echo the answers on a terminal", async () => {
    // util-linux's `script` runs the command on a pseudo-terminal and copies our input to it; its
    // output is everything that terminal showed, echo included.
    const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} secret --stage prod`;
    const child = spawn("script", ["-qec", command, "/dev/null"], { env: local() });
    children.add(child);
    let screen = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      screen += chunk;
    });
    const closed = new Promise<number | null>((resolve) => child.on("close", resolve));
    await prompted(() => screen, "Refiner API key: ");
    child.stdin.write(`${KEY}\r`);
    await prompted(() => screen, "shared secret, or Enter for none: ");
    // Typed with a mistake, erased with Backspace.
    child.stdin.write(`${SHARED}x\u007f\r`);
    await prompted(() => screen, "Now deploy");
    child.stdin.end();
    expect(await closed).toBe(0);
    expect(stored().REFINER_API_KEY).toBe(KEY);
    expect(stored().SEGMENT_SHARED_SECRET).toBe(SHARED);
    expect(screen).not.toContain(KEY);
    expect(screen).not.toContain("whsec");
    expect(screen).toContain(`?token=${stored().SEGMENT_WEBHOOK_TOKEN}`);
  }, 60_000);
});
