// The classic script's entry (build.mjs → `dist/browser/refiner.js`): defines
// `window.RefinerSegment = { refinerPlugin }` for pages that load it with a script tag.

import { refinerPlugin } from "./plugin.ts";

Object(globalThis).RefinerSegment = { refinerPlugin };
