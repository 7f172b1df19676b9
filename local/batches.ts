// Sample data for the tests and the bench: batches like the ones Segment's Webhooks destination
// sends with batching on, analytics.js events with their full context (about 1.2 KB each), so
// that 1,000 of them make a 1.2 MB body.

export type Step = [type: "identify" | "group" | "page" | "track", name: string];

export interface AnalyticsBatchOptions {
  users: number;
  /** Makes messageIds and names distinct between batches. */
  seed?: string;
  /** Each user's events, in order (default: identify, page, track, page, track). */
  session?: Step[];
}

/**
 * A realistic session: an identify on several page loads, a group, five pages and a track. The
 * fewest Refiner requests it needs are 7 of its 10 events: one identify with the account, and one
 * event per page or track.
 */
export const REALISTIC_SESSION: Step[] = [
  ["identify", ""],
  ["page", "Home"],
  ["identify", ""],
  ["page", "Pricing"],
  ["group", ""],
  ["page", "Docs"],
  ["track", "Trial Started"],
  ["identify", ""],
  ["page", "Settings"],
  ["page", "Billing"],
];

/**
 * Five events per user, in the order a session produces them: identify, page, track, page, track.
 * Every (user, event name) pair is distinct, so a track or page that reaches Refiner twice shows.
 */
export function analyticsBatch({
  users,
  seed = "b1",
  session,
}: AnalyticsBatchOptions): Record<string, unknown>[] {
  const events: Record<string, unknown>[] = [];
  const start = Date.parse("2026-11-30T09:00:00.000Z");
  for (let user = 0; user < users; user++) {
    const userId = `user-${seed}-${user}`;
    const email = `person${user}.${seed}@example.com`;
    const anonymousId = `5f1c${hex(user, 4)}-9a2b-4c3d-8e4f-${hex(user * 7919, 12)}`;
    const steps: Step[] = session ?? [
      ["identify", ""],
      ["page", "Pricing"],
      ["track", "Trial Started"],
      ["page", "Docs"],
      ["track", `Report ${seed} Created`],
    ];
    steps.forEach(([type, name], step) => {
      const at = new Date(start + user * 60_000 + step * 7_000).toISOString();
      const path = name ? `/${name.toLowerCase().replace(/\s+/g, "-")}` : "/account";
      const event: Record<string, unknown> = {
        anonymousId,
        context: {
          campaign: { medium: "cpc", name: "winter-trial", source: "google" },
          ip: `203.0.113.${user % 250}`,
          library: { name: "analytics.js", version: "npm:next-1.72.0" },
          locale: "en-US",
          page: {
            path,
            referrer: "https://www.google.com/",
            search: "?utm_source=google&utm_medium=cpc&utm_campaign=winter-trial",
            title: `${name || "Account"} – Example App`,
            url: `https://app.example.com${path}?utm_source=google&utm_medium=cpc&utm_campaign=winter-trial`,
          },
          timezone: "Europe/Berlin",
          traits: { email },
          userAgent:
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
          userAgentData: {
            brands: [
              { brand: "Google Chrome", version: "131" },
              { brand: "Chromium", version: "131" },
              { brand: "Not_A Brand", version: "24" },
            ],
            mobile: false,
            platform: "macOS",
          },
        },
        integrations: {},
        messageId: `ajs-next-${seed}-${hex(user, 8)}${hex(step, 4)}${hex(user * 31 + step, 20)}`,
        originalTimestamp: at,
        receivedAt: at,
        sentAt: at,
        timestamp: at,
        type,
        userId,
        writeKey: "Wq8zT3vN5bX1cK7mR2pL9sD4fG6hJ0aE",
      };
      if (type === "identify") {
        event.traits = {
          email,
          firstName: `Person${user}`,
          lastName: "Example",
          plan: user % 3 ? "trial" : "pro",
          createdAt: "2026-10-01T08:00:00.000Z",
          company: { id: `acct-${seed}-${user % 40}`, name: `Company ${user % 40}` },
        };
      } else if (type === "group") {
        event.groupId = `acct-${seed}-${user % 40}`;
        event.traits = { name: `Company ${user % 40}`, plan: "enterprise", employees: 120 };
      } else if (type === "page") {
        event.name = name;
        event.properties = {
          name,
          path,
          referrer: "https://www.google.com/",
          title: `${name} – Example App`,
          url: `https://app.example.com${path}`,
        };
      } else {
        event.event = name;
        event.properties = { plan: "trial", source: "onboarding", step: step + 1 };
      }
      events.push(event);
    });
  }
  return events;
}

function hex(value: number, width: number): string {
  return (value >>> 0).toString(16).padStart(width, "0").slice(-width);
}
