import { defineConfig } from "vitest/config";

/** What both runs share: `npm test` (this file) and `npm run test:volume`. */
export const shared = {
  // A few tests load what build.mjs builds (test/code-shape.test.ts names them): build it once,
  // before any test file runs. The others run lib/ and cli/ from source.
  globalSetup: ["test/support/build-once.ts"],
  // Limits, not speeds: a test or hook that hangs fails, but a machine busy with other work (CI
  // often is) may take several times as long as a quiet one.
  testTimeout: 60_000,
  hookTimeout: 60_000,
  // Vitest takes one worker on a 2-core machine; most of these files wait on sockets, timers and
  // child processes rather than on the CPU, so three run side by side (41 s against 51 s with two).
  maxWorkers: 3,
  // The suite is bound by the CPU of 2 cores, and a fresh worker for every file cost it about a
  // sixth of that (measured here: 62 to 72 CPU-seconds against about 75; 32 to 38 s against 39 to
  // 49). So files share their workers: each undoes what it stubs, spies on or fakes after every
  // test (afterEach).
  isolate: false,
  reporters: ["default", "./test/support/count-reporter.ts"],
};

export default defineConfig({
  test: {
    ...shared,
    include: ["test/**/*.test.ts"],
    // Full-size and real-time runs: `npm run test:volume` (vitest.volume.config.mts); the browser
    // tests, which need Chromium: `npm run test:browser` (vitest.browser.config.mts).
    exclude: ["test/volume/**", "test/browser/**", "node_modules/**"],
  },
});
