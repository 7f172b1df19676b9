import { defineConfig } from "vitest/config";
import { shared } from "./vitest.config.mts";

// `npm run test:volume`: the full-size runs. The files that take their sizes from
// test/support/volume.ts run again at full size, and test/volume/ holds what waits real time.
export default defineConfig({
  test: {
    ...shared,
    include: [
      "test/volume/**/*.test.ts",
      "test/queue.test.ts",
      "test/cli.send.test.ts",
      "test/lambda.webhook.volume.test.ts",
      "test/unchanged.test.ts",
      "test/differential.test.ts",
    ],
    env: { REFINER_TEST_VOLUME: "full" },
    // Full-size runs load the machine more: two at a time, each file in a worker of its own (the
    // heap is measured here), as time is no goal.
    maxWorkers: 2,
    isolate: true,
    testTimeout: 120_000,
  },
});
