import { defineConfig } from "vitest/config";

// `npm run test:browser`: the browser plugin in Debian's Chromium (/usr/bin/chromium, driven by
// playwright-core) with the real analytics-next, against local stand-ins (local/browser-server.ts).
// Kept out of `npm test`, which needs no browser.
export default defineConfig({
  test: {
    include: ["test/browser/**/*.test.ts"],
    globalSetup: ["test/support/build-once.ts"],
    // One Chromium at a time on a shared 2-core machine; each file launches its own.
    maxWorkers: 1,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ["default", "./test/support/count-reporter.ts"],
  },
});
