// The real @segment/analytics-next for the pages local/browser-server.ts serves (the browser tests,
// the demo and the bench): bundled by build.mjs into one classic script, so that a page loads it
// from 127.0.0.1 and nothing, not even a lazily loaded chunk, comes from Segment's CDN.

import { AnalyticsBrowser } from "@segment/analytics-next";

Reflect.set(globalThis, "AnalyticsBrowser", AnalyticsBrowser);
