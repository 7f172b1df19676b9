// `npm start`'s local server (dist/dev/start.js, built by the test setup): webhook on a free port,
// forwarding to the embedded Refiner emulator, with no account anywhere. Then `npm start` as a user
// runs it, through npm: it prints the embedded emulator's API key (which `send` needs to be tried
// against it), says which requests the emulator took and which it refused, and stops cleanly on
// SIGTERM sent to npm itself: the signal reaches the server, and its port is free afterwards.

import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..");
let server: ChildProcess;
let output = "";
let url: string;

/**
 * Resolves with the first match of `pattern` in what `child` printed (`read()`), however long a
 * busy machine takes to print it; rejects if the child ends first.
 */
function waitFor(
  pattern: RegExp,
  child: ChildProcess = server,
  read = () => output,
): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const ended = () => reject(new Error(`no ${pattern} in:\n${read()}`));
    const check = () => {
      const match = read().match(pattern);
      if (match) {
        child.stdout?.off("data", check);
        child.stderr?.off("data", check);
        child.off("close", ended);
        resolve(match);
      }
    };
    child.stdout?.on("data", check);
    child.stderr?.on("data", check);
    child.once("close", ended);
    check();
  });
}

function cleanEnvironment(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(REFINER_|SEGMENT_|ALLOW_)/.test(name)),
  );
}

beforeAll(async () => {
  server = spawn(process.execPath, ["dist/dev/start.js"], {
    cwd: ROOT,
    env: { ...cleanEnvironment(), PORT: "0" },
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
  await waitFor(/queued 1\n/);
  const [line] = await waitFor(/Refiner ← POST \/identify-user .*\n/);
  await waitFor(/delivered 1\n/);
  expect(JSON.parse(line.slice(line.indexOf("{")))).toEqual(
    expect.objectContaining({ id: "userId123", email: "john.doe@example.com", first_name: "John" }),
  );
});

it("takes an event with an emoji and a character SQS refuses raw, and Refiner gets them as sent", async () => {
  const event = {
    type: "track",
    userId: "u-emoji",
    event: "Launched 🚀 \uffff",
    messageId: "start-emoji-1",
  };
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(event),
  });
  expect(response.status).toBe(200);
  const [line] = await waitFor(/Refiner ← POST \/track-event .*u-emoji.*\n/);
  expect(JSON.parse(line.slice(line.indexOf("{")))).toEqual({
    event: "Launched 🚀 \uffff",
    id: "u-emoji",
  });
});

it("prints where the pasteable function is and a ready curl line", () => {
  expect(output).toContain("No REFINER_API_KEY: forwarding to an embedded Refiner emulator");
  expect(output).toContain("dist/segment-function.js");
  expect(output).toContain(
    `curl -sS ${url} -H 'Content-Type: application/json' --data-binary @events/identify.json`,
  );
});

it("survives a client that sends part of a body and goes away", async () => {
  const { hostname, port } = new URL(url);
  // The client ends its side after part of the body; the server closing the connection in turn
  // shows that it took the client's leaving, before the next request is sent.
  await new Promise<void>((resolve) => {
    const socket = connect(Number(port), hostname, () => {
      socket.end(
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"type":',
      );
    });
    socket.resume(); // what the server says before it closes is read and left
    socket.on("close", () => resolve());
  });
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: readFileSync(join(ROOT, "events", "track.json")),
  });
  expect(response.status).toBe(200);
  expect(server.exitCode).toBeNull();
});

it("says which port is in use and how to choose another", async () => {
  const { port } = new URL(url);
  const second = spawn(process.execPath, ["dist/dev/start.js"], {
    cwd: ROOT,
    env: { ...cleanEnvironment(), PORT: port },
  });
  let errors = "";
  second.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    errors += chunk;
  });
  const code = await new Promise((resolve) => second.on("close", resolve));
  expect(code).toBe(1);
  expect(errors).toContain(`Port ${port} on 127.0.0.1 is in use.`);
  expect(errors).toContain("PORT=3001 npm start");
  expect(errors).not.toContain("    at ");
});

it("prints a signed curl line that works as it stands", async () => {
  const signed = spawn(process.execPath, ["dist/dev/start.js"], {
    cwd: ROOT,
    env: { ...cleanEnvironment(), PORT: "0", SEGMENT_SHARED_SECRET: "local secret" },
  });
  let printed = "";
  signed.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    printed += chunk;
  });
  try {
    const [line] = await waitFor(/ {2}curl .*\n/, signed, () => printed);
    const target = line.match(/curl -sS (\S+)/)?.[1] as string;
    const signature = line.match(/X-Signature: ([0-9a-f]+)/)?.[1] as string;
    const response = await fetch(target, {
      method: "POST",
      headers: { "content-type": "application/json", "x-signature": signature },
      body: readFileSync(join(ROOT, "events", "identify.json")),
    });
    expect(response.status).toBe(200);
    expect(line).not.toContain("local secret");
  } finally {
    signed.kill();
  }
});

it("serves the browser plugin's demo page, with the plugin and the stand-in client, and prints its URL", async () => {
  const demo = (
    await waitFor(/Browser plugin demo .*: (http:\/\/127\.0\.0\.1:\d+\/)\n/)
  )[1] as string;
  const page = await fetch(demo);
  expect(page.status).toBe(200);
  expect(await page.text()).toContain('startAnalytics({ projectId: "demo-project"');
  for (const path of ["analytics.js", "refiner.js", "refiner-web-client.js", "page-setup.js"]) {
    const response = await fetch(new URL(path, demo));
    expect([path, response.status, response.headers.get("content-type")]).toEqual([
      path,
      200,
      "text/javascript; charset=utf-8",
    ]);
  }
});

let npm: ChildProcess | undefined;
afterEach(() => {
  npm?.kill("SIGKILL");
  npm = undefined;
});

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

    const [, port] = await waitFor(
      /listening on http:\/\/127\.0\.0\.1:(\d+)\//,
      child,
      () => output,
    );
    const [, emulator] = await waitFor(/Refiner emulator at (http:\S+)/, child, () => output);
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
    await waitFor(/Refiner ← POST \/identify-user \{/, child, () => output);
    // Refused: a request to the emulator with another key.
    const refused = await fetch(`${emulator}/track-event`, {
      method: "POST",
      headers: { authorization: "Bearer not-the-key", "content-type": "application/json" },
      body: JSON.stringify({ id: "u1", event: "Tried" }),
    });
    expect(refused.status).toBe(404);
    await waitFor(/Refiner refused/, child, () => output);
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
