// A serverless plugin (serverless.yml, `plugins`) that keeps secrets out of every artifact: it
// refuses to package or deploy while a secret variable is set in the environment, since such a
// value could end up in the template or the state file, and names the step to use instead. It also
// says plainly when the alarms will reach nobody.
//
// The names are the secret variables of lib/runtimes/variables.ts (a test keeps them equal).
"use strict";

const SECRET_VARIABLES = [
  "REFINER_API_KEY",
  "SEGMENT_SHARED_SECRET",
  "SEGMENT_WEBHOOK_TOKEN",
  "SEGMENT_SHARED_SECRET_PREVIOUS",
  "SEGMENT_WEBHOOK_TOKEN_PREVIOUS",
];

class RefinerDestinationGuard {
  constructor(serverless, _options, { log } = {}) {
    this.serverless = serverless;
    this.log = log;
    const check = () => this.check();
    this.hooks = {
      "before:package:initialize": check,
      "before:deploy:deploy": check,
    };
  }

  check() {
    const set = SECRET_VARIABLES.filter((name) => process.env[name]);
    if (set.length) {
      const stage = this.serverless.service.provider.stage;
      throw new this.serverless.classes.Error(
        `${set.join(", ")} ${set.length === 1 ? "is" : "are"} set in this environment. Secrets never go into the package: unset ${set.length === 1 ? "it" : "them"}, and put the values in the stage's Secrets Manager secret with \`npx refiner-destination secret --stage ${stage}\` (docs/lambda.md, "Secrets"). The functions read it themselves.`,
      );
    }
    if (!this.serverless.service.custom.alarmEmail) {
      const warn = this.log?.warning ?? console.warn;
      warn(
        "No --param alarmEmail: the alarms notify an SNS topic with no subscriber, so nobody will be told when delivery fails. Deploy with --param alarmEmail=you@example.com, or subscribe to the AlarmTopicArn output.",
      );
    }
  }
}

module.exports = RefinerDestinationGuard;
