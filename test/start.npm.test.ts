// `npm start` as a user runs it, through npm (test/start.test.ts runs the built server directly):
// it prints the embedded emulator's API key (which `send` needs to be tried against it), says which
// requests the emulator took and which it refused, and stops cleanly on SIGTERM sent to npm itself:
// the signal reaches the server, and its port is free afterwards.

import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..");

let npm: ChildProcess | undefined;
afterEach(() => {
  npm?.kill("SIGKILL");
  npm = undefined;
});

/** Resolves once the output so far matches, with the match. */
async function waitFor(read: () => string, pattern: RegExp): Promise<RegExpMatchArray> {
  for (;;) {
    const match = read().match(pattern);
    if (match) return match;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Whether this process can listen on the port: nothing else holds it. */
function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

describe("npm start", () => {
  it("prints the emulator's key, tells taken from refused requests, and stops on SIGTERM to npm", async () => {
    const env = Object.fromEntries(
      Object.entries(process.env).filter(
        ([name]) => !name.startsWith("REFINER_") && !name.startsWith("SEGMENT_"),
      ),
    );
    const child = spawn("npm", ["start", "--", "--direct"], {
      cwd: ROOT,
      env: { ...env, PORT: "0" },
    });
    npm = child;
    let output = "";
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
    // "close" comes once every holder of npm's output pipes is gone, the server included.
    const closed = new Promise<void>((resolve) => child.on("close", () => resolve()));

    const [, port] = await waitFor(() => output, /listening on http:\/\/127\.0\.0\.1:(\d+)\//);
    const [, emulator] = await waitFor(() => output, /Refiner emulator at (http:\S+)/);
    expect(output).toContain(
      "  its API key: local-emulator-key (a local stand-in, not a secret). A backfill against it:",
    );
    expect(output).toContain(
      `  REFINER_API_KEY=local-emulator-key REFINER_API_BASE_URL=${emulator} npx refiner-destination send events/*.json`,
    );

    // Taken: an identify through the webhook.
    const identify = readFileSync(join(ROOT, "events", "identify.json"));
    const answer = await fetch(`http://127.0.0.1:${port}/`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: identify,
    });
    expect(answer.status).toBe(200);
    await waitFor(() => output, /Refiner ← POST \/identify-user \{/);
    // Refused: a request to the emulator with another key.
    const refused = await fetch(`${emulator}/track-event`, {
      method: "POST",
      headers: { authorization: "Bearer not-the-key", "content-type": "application/json" },
      body: JSON.stringify({ id: "u1", event: "Tried" }),
    });
    expect(refused.status).toBe(404);
    await waitFor(() => output, /Refiner refused/);
    expect(output).toContain(
      '  Refiner refused POST /track-event with 404 {"message":"API key not valid or does not exist"}',
    );
    expect(output).not.toContain("Refiner ← POST /track-event");

    child.kill("SIGTERM"); // to npm, not to the server it started
    await exited;
    // A process still holding npm's output would keep this waiting until the test's timeout.
    await closed;
    expect(output).toContain("SIGTERM: stopping.");
    expect(await portIsFree(Number(port))).toBe(true);
  }, 90_000);
});
