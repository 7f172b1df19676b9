// Sizes for tests whose property holds at any size: small in `npm test`, full in
// `npm run test:volume` (vitest.volume.config.mts sets REFINER_TEST_VOLUME=full), so the main suite
// stays quick and one full-size run of each is kept.

export const FULL_SIZE = process.env.REFINER_TEST_VOLUME === "full";

/** `small` in the main suite, `full` in the volume run. */
export function size<T>(small: T, full: T): T {
  return FULL_SIZE ? full : small;
}
