// The browser artifact's entry (build.mjs): `dist/browser/refiner.mjs` exports refinerPlugin, and
// lib/browser/global.ts the classic script `dist/browser/refiner.js`.

export { refinerPlugin } from "./plugin.ts";
