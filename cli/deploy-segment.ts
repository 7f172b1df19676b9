// `npm run deploy:segment`: creates or updates the destination function in a Segment workspace
// through Segment's Public API, so a release needs no copy-paste. Idempotent: it finds the function
// by display name and changes only what differs.

import { describe } from "../lib/outcome.ts";
import type { Fetch } from "../lib/refiner/client.ts";
import { SENT_TYPES } from "../lib/segment/event.ts";
import { SETTING_TEXTS, SETTINGS } from "../lib/settings.ts";

export const DEFAULT_SEGMENT_API_URL = "https://api.segmentapis.com";

/** A Public API call that takes longer than this is given up, rather than hang the release. */
const REQUEST_TIMEOUT_MS = 30_000;

export interface FunctionSetting {
  name: string;
  label: string;
  type: "STRING" | "BOOLEAN" | "ARRAY" | "TEXT_MAP";
  description: string;
  required: boolean;
  sensitive: boolean;
}

/** The settings the pasteable function reads, as the Public API declares them. */
export const FUNCTION_SETTINGS: FunctionSetting[] = SETTINGS.map(
  ({ name, type, required, sensitive }) => ({
    name,
    label: SETTING_TEXTS[name].label,
    type,
    description: SETTING_TEXTS[name].description,
    required,
    sensitive,
  }),
);

export interface DeployOptions {
  token: string;
  apiUrl: string;
  displayName: string;
  code: string;
  fetch: Fetch;
}

export interface DeployResult {
  id: string;
  action: "created" | "updated" | "unchanged";
  /** What differed and was sent: "code", "settings". */
  changed: string[];
}

interface SegmentFunction {
  id: string;
  displayName?: string;
  code?: string;
  settings?: Partial<FunctionSetting>[];
}

export class SegmentApiError extends Error {}

export async function deploySegmentFunction(options: DeployOptions): Promise<DeployResult> {
  const api = publicApi(options);
  const existing = await findByName(api, options.displayName);
  if (!existing) {
    const created = await api("POST", "/functions", {
      code: options.code,
      displayName: options.displayName,
      resourceType: "DESTINATION",
      description: `Sends ${SENT_TYPES.filter((type) => type !== "delete").join(", ")} calls, and deletions, to Refiner.`,
      settings: FUNCTION_SETTINGS,
    });
    return { id: functionIn(created).id, action: "created", changed: ["code", "settings"] };
  }

  const current = functionIn(await api("GET", `/functions/${encodeURIComponent(existing.id)}`));
  const update: { code?: string; settings?: FunctionSetting[] } = {};
  if (current.code !== options.code) update.code = options.code;
  if (!sameSettings(current.settings ?? [], FUNCTION_SETTINGS)) update.settings = FUNCTION_SETTINGS;
  const changed = Object.keys(update);
  if (!changed.length) return { id: current.id, action: "unchanged", changed };
  await api("PATCH", `/functions/${encodeURIComponent(current.id)}`, update);
  return { id: current.id, action: "updated", changed };
}

type Api = (method: string, path: string, body?: unknown) => Promise<unknown>;

function publicApi({ token, apiUrl, fetch }: DeployOptions): Api {
  const base = apiUrl.replace(/\/+$/, "");
  return async (method, path, body) => {
    let response: Awaited<ReturnType<Fetch>>;
    let text: string;
    try {
      response = await fetch(`${base}${path}`, {
        method,
        headers: {
          Accept: "application/json",
          Authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        redirect: "manual",
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      text = await response.text();
    } catch (error) {
      throw new SegmentApiError(
        `Segment's Public API at ${base} could not be reached for ${method} ${path.split("?")[0]}: ${describe(error).split(token).join("[redacted]")}`,
      );
    }
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (response.status >= 200 && response.status < 300)
      return (parsed as { data?: unknown })?.data;
    const reason = errorMessage(parsed) ?? text.slice(0, 200);
    const hint =
      response.status === 401 || response.status === 403
        ? " Check SEGMENT_TOKEN: a Public API token of a workspace owner (and SEGMENT_API_URL for EU workspaces)."
        : "";
    throw new SegmentApiError(
      `Segment's Public API answered ${response.status} to ${method} ${path.split("?")[0]}: ${reason.split(token).join("[redacted]")}.${hint}`,
    );
  };
}

async function findByName(api: Api, displayName: string): Promise<SegmentFunction | undefined> {
  let cursor: string | undefined;
  for (let page = 0; page < 100; page++) {
    const query = `resourceType=DESTINATION&pagination[count]=200${cursor ? `&pagination[cursor]=${encodeURIComponent(cursor)}` : ""}`;
    const data = (await api("GET", `/functions?${query}`)) as {
      functions?: SegmentFunction[];
      pagination?: { next?: string | null };
    };
    const found = data?.functions?.find((fn) => fn.displayName === displayName);
    if (found) return found;
    cursor = data?.pagination?.next ?? undefined;
    if (!cursor) return undefined;
  }
  return undefined;
}

function functionIn(data: unknown): SegmentFunction {
  const fn = (data as { function?: SegmentFunction })?.function;
  if (!fn?.id) throw new SegmentApiError("Segment's Public API answered without a function id.");
  return fn;
}

function sameSettings(current: Partial<FunctionSetting>[], wanted: FunctionSetting[]): boolean {
  if (current.length !== wanted.length) return false;
  return wanted.every((setting) => {
    const other = current.find((candidate) => candidate.name === setting.name);
    return (
      other !== undefined &&
      (Object.keys(setting) as (keyof FunctionSetting)[]).every(
        (key) => other[key] === setting[key],
      )
    );
  });
}

function errorMessage(body: unknown): string | undefined {
  const errors = (body as { errors?: { message?: unknown }[] })?.errors;
  const message = errors?.[0]?.message;
  return typeof message === "string" ? message : undefined;
}
