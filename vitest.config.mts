import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Tests load the built bundles, so build them once before any test file runs.
    globalSetup: ["test/support/build-once.ts"],
    // One test per runtime waits out the real 4.5 s deadline against a server that never answers.
    testTimeout: 15_000,
    // Vitest takes one worker on a 2-core machine; most of these files wait on sockets, timers and
    // child processes rather than on the CPU, so two run side by side.
    maxWorkers: 2,
    reporters: ["default", "./test/support/count-reporter.ts"],
  },
});
