// `npm run deploy:segment` (refiner-destination deploy-segment), run as the built command against a
// loopback server that plays Segment's Public API and checks what it receives.

import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FUNCTION_SETTINGS } from "../cli/deploy-segment.ts";
import { CLI } from "./support/cli.ts";

const ROOT = join(import.meta.dirname, "..");
const CODE = readFileSync(join(ROOT, "dist", "segment-function.js"), "utf8");
const TOKEN = "sgp_public_api_token_5e1b";
const run = promisify(execFile);

interface StoredFunction {
  id: string;
  displayName: string;
  resourceType: string;
  code: string;
  settings: unknown[];
}

/** A small Public API: paged listing, get, create, update; Bearer auth; `data` envelopes. */
class PublicApi {
  functions: StoredFunction[] = [];
  requests: { method: string; url: string; body: unknown; authorization?: string }[] = [];
  server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const body = text ? JSON.parse(text) : undefined;
    this.requests.push({
      method: req.method ?? "",
      url: req.url ?? "",
      body,
      authorization: req.headers.authorization,
    });
    const answer = (status: number, payload: unknown) => {
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(payload));
    };
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      return answer(401, { errors: [{ type: "unauthorized", message: "Unauthorized" }] });
    }
    const url = new URL(req.url ?? "/", "http://localhost");
    const match = url.pathname.match(/^\/functions\/([^/]+)$/);
    const found = match
      ? this.functions.find((fn) => fn.id === decodeURIComponent(match[1] as string))
      : undefined;

    if (req.method === "GET" && url.pathname === "/functions") {
      // Two functions a page, to make the command follow the cursor.
      const start = Number(url.searchParams.get("pagination[cursor]") ?? 0);
      const page = this.functions.filter(
        (fn) => fn.resourceType === url.searchParams.get("resourceType"),
      );
      const next = start + 2 < page.length ? String(start + 2) : null;
      return answer(200, {
        data: {
          functions: page
            .slice(start, start + 2)
            .map(({ id, displayName }) => ({ id, displayName })),
          pagination: { current: String(start), next },
        },
      });
    }
    if (req.method === "POST" && url.pathname === "/functions") {
      const created = { id: `dfn_${this.functions.length + 1}`, ...body };
      this.functions.push(created);
      return answer(200, { data: { function: created } });
    }
    if (req.method === "GET" && found) return answer(200, { data: { function: found } });
    if (req.method === "PATCH" && found) {
      Object.assign(found, body);
      return answer(200, { data: { function: found } });
    }
    return answer(404, { errors: [{ type: "not-found", message: "Not found" }] });
  });
  url = "";
}

let api: PublicApi;
beforeAll(async () => {
  api = new PublicApi();
  await new Promise<void>((resolve) => api.server.listen(0, "127.0.0.1", resolve));
  api.url = `http://127.0.0.1:${(api.server.address() as AddressInfo).port}`;
});
afterAll(() => api.server.close());
beforeEach(() => {
  api.requests = [];
});

/** Runs the command; `null` leaves SEGMENT_TOKEN unset. */
async function deploy(token: string | null = TOKEN) {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith("SEGMENT_")),
  );
  if (token !== null) env.SEGMENT_TOKEN = token;
  env.SEGMENT_API_URL = api.url;
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, "deploy-segment"], { env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    return error as { code: number; stdout: string; stderr: string };
  }
}

const otherFunctions = (): StoredFunction[] =>
  ["Slack alerts", "Warehouse mirror", "Intercom sync"].map((displayName, i) => ({
    id: `dfn_other_${i}`,
    displayName,
    resourceType: "DESTINATION",
    code: "async function onTrack() {}",
    settings: [],
  }));

describe("deploy-segment", () => {
  it("creates the function with its code and declared settings when the workspace has none", async () => {
    api.functions = otherFunctions();
    const result = await deploy();
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('Segment function "Refiner" (dfn_4) created: code and settings.\n');

    const create = api.requests.find((request) => request.method === "POST");
    expect(create?.url).toBe("/functions");
    expect(create?.authorization).toBe(`Bearer ${TOKEN}`);
    expect(create?.body).toEqual({
      code: CODE,
      displayName: "Refiner",
      resourceType: "DESTINATION",
      description: expect.any(String),
      settings: FUNCTION_SETTINGS,
    });
    // The declared settings (lib/settings.ts) as the source builds them, each as the Public API
    // declares a setting; two of them written out.
    expect(create?.body).toMatchObject({
      settings: expect.arrayContaining([
        {
          name: "apiKey",
          label: "API Key",
          type: "STRING",
          description:
            "Your Refiner API key (Refiner → Integrations → Segment, or the REST API key).",
          required: true,
          sensitive: true,
        },
        {
          name: "sendPageViews",
          label: "Send Page Views",
          type: "BOOLEAN",
          description: "Send page and screen calls as events (default true).",
          required: false,
          sensitive: false,
        },
      ]),
    });
    // It looked through every page before deciding the function did not exist.
    expect(
      api.requests.filter((request) => request.method === "GET").map((request) => request.url),
    ).toEqual([
      "/functions?resourceType=DESTINATION&pagination[count]=200",
      "/functions?resourceType=DESTINATION&pagination[count]=200&pagination[cursor]=2",
    ]);
  });

  it("updates only what differs in an existing function, found on a later page", async () => {
    api.functions = [
      ...otherFunctions(),
      {
        id: "dfn_refiner",
        displayName: "Refiner",
        resourceType: "DESTINATION",
        code: "// old",
        settings: [],
      },
    ];
    const result = await deploy();
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      'Segment function "Refiner" (dfn_refiner) updated: code and settings.\n',
    );
    const patch = api.requests.filter((request) => request.method === "PATCH");
    expect(patch).toEqual([
      expect.objectContaining({
        url: "/functions/dfn_refiner",
        body: { code: CODE, settings: FUNCTION_SETTINGS },
      }),
    ]);

    // Once more: nothing to change, nothing sent.
    api.requests = [];
    const again = await deploy();
    expect(again.stdout).toBe(
      'Segment function "Refiner" (dfn_refiner) unchanged: code and settings already match.\n',
    );
    expect(api.requests.some((request) => request.method !== "GET")).toBe(false);

    // A new build: only the code goes.
    api.requests = [];
    (api.functions.at(-1) as StoredFunction).code = "// older build";
    const codeOnly = await deploy();
    expect(codeOnly.stdout).toContain("updated: code.");
    expect(api.requests.find((request) => request.method === "PATCH")?.body).toEqual({
      code: CODE,
    });
  });

  it("stops on an authentication error with a clear message, without printing the token", async () => {
    const result = await deploy("sgp_wrong_token_value");
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      "Segment's Public API answered 401 to GET /functions: Unauthorized.",
    );
    expect(result.stderr).toContain("Check SEGMENT_TOKEN");
    expect(result.stderr + result.stdout).not.toContain("sgp_wrong_token_value");
    expect(api.requests.every((request) => request.method === "GET")).toBe(true);
  });

  it("names the cause when the Public API cannot be reached", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const saved = api.url;
    api.url = `http://127.0.0.1:${port}`;
    try {
      const result = await deploy();
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        `Segment's Public API at http://127.0.0.1:${port} could not be reached for GET /functions: fetch failed: connect ECONNREFUSED 127.0.0.1:${port}`,
      );
    } finally {
      api.url = saved;
    }
  });

  it("asks for SEGMENT_TOKEN when it is missing", async () => {
    const result = await deploy(null);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("set SEGMENT_TOKEN");
    expect(api.requests).toHaveLength(0);
  });
});
