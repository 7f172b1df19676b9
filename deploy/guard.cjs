// A serverless plugin (serverless.yml, `plugins`) that keeps secrets out of every artifact: it
// refuses to package or deploy while a secret variable is set in the environment, since such a
// value could end up in the template or the state file, and names the step to use instead. It
// refuses an API base URL with credentials (or any `@`) for the same reason. It also says plainly
// when the alarms will reach nobody, and when no role for Segment's AWS Lambda destination is made.
//
"use strict";

// The secret variables of lib/runtimes/variables.ts, written by `npm run generate`.
// BEGIN GENERATED: secret variables
const SECRET_VARIABLES = [
  "REFINER_API_KEY",
  "SEGMENT_SHARED_SECRET",
  "SEGMENT_WEBHOOK_TOKEN",
  "SEGMENT_SHARED_SECRET_PREVIOUS",
  "SEGMENT_WEBHOOK_TOKEN_PREVIOUS",
];
// END GENERATED: secret variables

class RefinerDestinationGuard {
  constructor(serverless, options, { log } = {}) {
    this.serverless = serverless;
    this.options = options ?? {};
    this.log = log;
    const check = () => this.check();
    this.hooks = {
      "before:package:initialize": check,
      "before:deploy:deploy": check,
    };
  }

  check() {
    const refuse = (message) => {
      throw new this.serverless.classes.Error(message);
    };
    const set = SECRET_VARIABLES.filter((name) => process.env[name]);
    if (set.length) {
      const stage = this.serverless.service.provider.stage;
      refuse(
        `${set.join(", ")} ${set.length === 1 ? "is" : "are"} set in this environment. Secrets never go into the package: unset ${set.length === 1 ? "it" : "them"}, and put the values in the stage's Secrets Manager secret with \`npx refiner-destination secret --stage ${stage}\` (docs/lambda.md, "Secrets"). The functions read it themselves.`,
      );
    }
    // The value itself is never echoed: it may hold a password.
    if (hasCredentials(process.env.REFINER_API_BASE_URL)) {
      refuse(
        "REFINER_API_BASE_URL holds credentials (an @ before its host, or anywhere in it), which would land in the template. The API key is the only credential, and it goes in the secret: give the URL without user or password.",
      );
    }
    const params = [].concat(this.options.param ?? []).map(String);
    if (params.some((param) => param.startsWith("segmentWorkspaceId="))) {
      refuse(
        "--param segmentWorkspaceId is no longer read: give --param segmentExternalId=<the External ID of Segment's AWS Lambda destination> (docs/lambda.md, \"Connect Segment's AWS Lambda destination\").",
      );
    }
    const externalId = String(this.serverless.service.custom.segmentExternalId ?? "");
    if (/\s/.test(externalId) || externalId.split(",").some((id) => externalId && !id)) {
      refuse(
        "--param segmentExternalId takes External IDs separated by commas, with no spaces and none empty.",
      );
    }
    const warn = this.log?.warning ?? console.warn;
    if (!this.serverless.service.custom.alarmEmail) {
      warn(
        "No --param alarmEmail: the alarms notify an SNS topic with no subscriber, so nobody will be told when delivery fails. Deploy with --param alarmEmail=you@example.com, or subscribe to the AlarmTopicArn output.",
      );
    }
    if (!externalId) {
      warn(
        `No --param segmentExternalId: no role is created for Segment's AWS Lambda destination${process.env.SEGMENT_WORKSPACE_ID ? " (SEGMENT_WORKSPACE_ID is set, but the stack does not read it)" : ""}. To use that destination, deploy with --param segmentExternalId=<the External ID its settings show> (docs/lambda.md).`,
      );
    }
  }
}

/** Whether a URL carries a user or a password; anything with an `@` counts, parsed or not. */
function hasCredentials(value) {
  if (!value) return false;
  if (value.includes("@")) return true;
  try {
    const url = new URL(value.trim());
    return Boolean(url.username || url.password);
  } catch {
    return false; // the functions refuse it, and it holds no @
  }
}

module.exports = RefinerDestinationGuard;
