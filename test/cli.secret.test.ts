// `refiner-destination secret`, run as the built command against a loopback stand-in of Secrets
// Manager's protocol: it creates the stage's secret from answers on standard input, keeps values
// on an empty answer, rotates, and never prints the API key or the shared secret.

import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type LocalSecrets, startLocalSecrets } from "../local/secrets-emulator.ts";

const ROOT = join(import.meta.dirname, "..");
const CLI = join(ROOT, "dist", "cli", "refiner-destination.js");
const KEY = "rfk_live_9a8b7c6d5e4f3a2b";
const SHARED = "whsec_shared_1f2e3d4c";

let secrets: LocalSecrets;
beforeAll(async () => {
  secrets = await startLocalSecrets();
});
afterAll(() => secrets.stop());
beforeEach(() => {
  secrets.secrets.clear();
});

/** Runs the command with these lines on standard input. */
function secret(args: string[], input: string[]) {
  return new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [CLI, "secret", ...args], {
      env: {
        PATH: process.env.PATH,
        AWS_REGION: "us-east-1",
        AWS_ACCESS_KEY_ID: "local",
        AWS_SECRET_ACCESS_KEY: "local",
        AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.endpoint,
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
      },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.stdin.end(input.map((line) => `${line}\n`).join(""));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
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
  });

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
});
