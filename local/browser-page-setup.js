// Loaded by the pages local/browser-server.ts serves (the tests' page and the demo), after
// analytics-next and the plugin: `startAnalytics(pluginOptions)` loads the real analytics-next with
// the plugin and a second plugin that records what it receives, and sends to the stand-in for
// Segment's API on this same server. The settings are given here (`cdnSettings`), so analytics-next
// fetches none from Segment's CDN, and its own metrics are off: the page requests only 127.0.0.1.
(() => {
  const received = [];
  const record = async (ctx) => {
    const { type, event, userId, groupId, name, context } = ctx.event;
    received.push({
      type,
      event,
      userId,
      groupId,
      name,
      marked: context?.refiner?.webClient === true,
    });
    return ctx;
  };
  const recorder = {
    name: "Recorder",
    type: "destination",
    version: "1.0.0",
    isLoaded: () => true,
    load: async () => undefined,
    identify: record,
    group: record,
    track: record,
    page: record,
    screen: record,
  };
  const segment = { apiKey: "local-write-key", apiHost: `${location.host}/v1`, protocol: "http" };
  window.received = received;
  window.startAnalytics = (pluginOptions) => {
    window.analytics = window.AnalyticsBrowser.load(
      {
        writeKey: segment.apiKey,
        cdnSettings: { integrations: { "Segment.io": segment }, metrics: { sampleRate: 0 } },
        plugins: [window.RefinerSegment.refinerPlugin(pluginOptions), recorder],
      },
      { integrations: { "Segment.io": segment } },
    );
    return window.analytics.then(() => true);
  };
})();
