// `npm start`'s local server (dist/dev/start.js, built by the test setup): webhook on a free port,
// forwarding to the embedded Refiner emulator, with no account anywhere.

import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..");
let server: ChildProcess;
let output = "";
let url: string;

function waitFor(pattern: RegExp): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${pattern} in:\n${output}`)), 10_000);
    const check = () => {
      const match = output.match(pattern);
      if (match) {
        clearTimeout(timer);
        server.stdout?.off("data", check);
        resolve(match);
      }
    };
    server.stdout?.on("data", check);
    check();
  });
}

beforeAll(async () => {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(REFINER_|SEGMENT_|ALLOW_)/.test(name)),
  );
  server = spawn(process.execPath, ["dist/dev/start.js"], {
    cwd: ROOT,
    env: { ...env, PORT: "0" },
  });
  server.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk;
  });
  server.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk;
  });
  url = (await waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+\/)/))[1] as string;
});
afterAll(() => {
  server.kill();
});

it("serves the webhook and prints each Refiner call it makes", async () => {
  const body = readFileSync(join(ROOT, "events", "identify.json"));
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  expect(response.status).toBe(200);
  expect(await response.json()).toEqual({ status: 200 });
  const [line] = await waitFor(/Refiner ← POST \/identify-user .*\n/);
  expect(JSON.parse(line.slice(line.indexOf("{")))).toEqual(
    expect.objectContaining({ id: "userId123", email: "john.doe@example.com", first_name: "John" }),
  );
});

it("prints where the pasteable function is and a ready curl line", () => {
  expect(output).toContain("No REFINER_API_KEY: forwarding to an embedded Refiner emulator");
  expect(output).toContain("dist/segment-function.js");
  expect(output).toContain(
    `curl -sS ${url} -H 'Content-Type: application/json' --data-binary @events/identify.json`,
  );
});
