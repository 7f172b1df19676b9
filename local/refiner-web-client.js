// A stand-in for Refiner's web client (https://js.refiner.io/v001/client.js), served from 127.0.0.1
// by local/browser-server.ts for the browser tests, the demo page and the bench. Like the real
// client it replays `window._refinerQueue` in order and then takes `_refiner(…)` calls itself. It
// shows no survey and calls no server: it records every call, in `window.refinerWebClient.calls`,
// and announces each one as a `refiner-call` event on `window` (the demo page lists them).
(() => {
  const calls = [];
  const record = (args) => {
    const [method, ...rest] = Array.from(args);
    const entry = { method, args: JSON.parse(JSON.stringify(rest)) };
    calls.push(entry);
    window.dispatchEvent(new CustomEvent("refiner-call", { detail: entry }));
  };
  const queued = Array.isArray(window._refinerQueue) ? window._refinerQueue.splice(0) : [];
  window._refiner = (...args) => record(args);
  window.refinerWebClient = { calls, replayed: queued.length };
  for (const args of queued) record(args);
})();
