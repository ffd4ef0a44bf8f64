/** The `gantry` command line. */
import * as path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { ApiClient, ApiClientError } from './api-client';
import {
  deleteEnvironmentCommand,
  environmentsCommand,
  promoteCommand,
  ROLLOUT_ACTIONS,
  rolloutCommand,
  writeEnvironmentCommand,
  type SettingsFlags,
} from './commands/environments';
import { deploymentsCommand, logsCommand, modelsCommand } from './commands/inspect';
import { deleteDeploymentCommand, switchDeploymentCommand, updateDeploymentCommand, usageCommand } from './commands/lifecycle';
import { predictCommand } from './commands/predict';
import { asyncCancelCommand, asyncPredictCommand, asyncStatusCommand, wakeCommand } from './commands/async';
import { pushCommand } from './commands/push';
import { deleteSecretCommand, listSecretsCommand, setSecretCommand } from './commands/secrets';
import { resolveCredentials, saveCredentials } from './credentials';

/** Parses a whole-number option value. */
function integer(value: string): number {
  if (!/^-?\d+$/.test(value)) throw new InvalidArgumentError('must be a whole number');
  return Number(value);
}

const outputOption = (): Option => new Option('-o, --output <format>', "text for people, or json: the API's JSON as it answered").choices(['text', 'json']).default('text');

/** Runs a command body, turning errors into a message and exit code 1. */
function run<A extends unknown[]>(body: (client: ApiClient, ...args: A) => Promise<number>) {
  return async (...args: A): Promise<void> => {
    try {
      process.exitCode = await body(new ApiClient(resolveCredentials()), ...args);
    } catch (error) {
      const message = error instanceof ApiClientError && error.status > 0 ? `${error.status} ${error.code}: ${error.message}` : (error as Error).message;
      console.error(`error: ${message}`);
      process.exitCode = 1;
    }
  };
}

/** Builds the command tree. */
export function buildProgram(): Command {
  const program = new Command('gantry')
    .description('Push Python models, serve them, and promote them through environments with rolling deployments.')
    .showHelpAfterError()
    .version('0.1.0');

  program
    .command('login')
    .description('save the API URL, gateway URL and API key for later commands')
    .option('--url <url>', 'management API URL (default: the one resolved now, see docs/cli.md)')
    .option('--gateway-url <url>', 'inference gateway URL (default: the one resolved now)')
    .requiredOption('--api-key <key>', 'the API key to send (gtk_…; npm start printed the admin key)')
    .action((options: { url?: string; gatewayUrl?: string; apiKey: string }) => {
      const current = resolveCredentials();
      const file = saveCredentials({ apiUrl: options.url ?? current.apiUrl, gatewayUrl: options.gatewayUrl ?? current.gatewayUrl, apiKey: options.apiKey });
      console.log(`saved to ${file}`);
    });

  program
    .command('push')
    .description('push a model directory as a new published deployment')
    .argument('[dir]', 'model directory (config.yaml + model/, or predict.py)', '.')
    .option('--model-name <name>', 'model to push to (default: config.yaml model_name, else the directory name)')
    .option('--deployment-name <name>', 'name the deployment (default deployment-N)')
    .option('--labels <json>', `labels as a JSON object, e.g. '{"team":"ml"}'`)
    .option('--watch', "create or update the model's development deployment and live-reload every saved change")
    .option('--promote', 'once ACTIVE, promote it to production (implies --wait)')
    .option('--environment <env>', 'once ACTIVE, promote it to this environment (implies --wait)')
    .option('--wait', 'wait until the deployment is ACTIVE or failed; exit non-zero on failure')
    .option('--timeout-seconds <s>', 'how long --wait waits', '1800')
    .addOption(outputOption())
    .action(run((client, dir: string, options) => pushCommand(client, path.resolve(dir), options)));

  program
    .command('promote')
    .description('promote a deployment to an environment (a rolling deployment, per the environment settings)')
    .argument('<model>', 'model id or name')
    .argument('<deployment>', 'deployment id or name, or development (publishes its code, then promotes it to production)')
    .option('-e, --environment <env>', 'target environment', 'production')
    .option('-f, --follow', 'draw progress until it ends; exit non-zero unless it SUCCEEDED')
    .addOption(outputOption())
    .action(run((client, model: string, deployment: string, options) => promoteCommand(client, model, deployment, options)));

  const rollout = program.command('rollout').description("show or control an environment's promotion in flight");
  const rolloutActions = ['status', ...(Object.keys(ROLLOUT_ACTIONS) as (keyof typeof ROLLOUT_ACTIONS)[])] as const;
  const rolloutHelp: Record<(typeof rolloutActions)[number], string> = {
    status: 'show the in-flight (or latest) promotion',
    pause: 'pause at the next step boundary; the traffic split stays',
    resume: 'resume a paused promotion',
    cancel: 'ramp back down step by step to the previous deployment',
    'force-cancel': 'send all traffic back to the previous deployment at once',
    'force-complete': "scale the candidate to full size and send it all traffic at once (the API's force_roll_forward)",
  };
  for (const action of rolloutActions) {
    rollout
      .command(action)
      .description(rolloutHelp[action])
      .argument('<model>', 'model id or name')
      .option('-e, --environment <env>', 'the environment whose promotion this is', 'production')
      .option('-f, --follow', 'then follow it until it ends')
      .addOption(outputOption())
      .action(run((client, model: string, options) => rolloutCommand(client, action, model, options)));
  }

  const settingsOptions = (command: Command): Command =>
    command
      .option('--rolling', 'rolling promotions (the default)')
      .option('--no-rolling', 'instant promotions')
      .option('--max-surge-percent <p>', 'candidate replicas added per step, % of N (0-50)')
      .option('--max-unavailable-percent <p>', 'previous replicas removed first per step, % of N (0-50)')
      .option('--stabilization-seconds <s>', 'wait after each step (0-3600)')
      .addOption(new Option('--cleanup <strategy>', 'what happens to the previous deployment').choices(['SCALE_TO_ZERO', 'KEEP', 'DEACTIVATE']))
      .option('--timeout-seconds <s>', 'how long a step may wait for replicas to be ready (10-86400)')
      .addOption(outputOption());

  const environments = program
    .command('environments')
    .description("list a model's environments, or manage them")
    .argument('[model]', 'model id or name (needed to list)')
    .addOption(outputOption())
    .action(
      run(async (client, model: string | undefined, options) => {
        if (!model) throw new Error('give a model: gantry environments MODEL');
        return environmentsCommand(client, model, options);
      }),
    );
  settingsOptions(
    environments
      .command('create')
      .description('create an environment; settings not given take the defaults')
      .argument('<model>', 'model id or name')
      .argument('<name>', 'environment name'),
  ).action(run((client, model: string, name: string, options: SettingsFlags) => writeEnvironmentCommand(client, 'create', model, name, options)));
  settingsOptions(
    environments
      .command('update')
      .description("change an environment's promotion settings; only the ones given change")
      .argument('<model>', 'model id or name')
      .argument('<name>', 'environment name'),
  ).action(run((client, model: string, name: string, options: SettingsFlags) => writeEnvironmentCommand(client, 'update', model, name, options)));
  environments
    .command('delete')
    .description('delete an environment (a promotion in flight is force-cancelled first)')
    .argument('<model>', 'model id or name')
    .argument('<name>', 'environment name')
    .action(run((client, model: string, name: string) => deleteEnvironmentCommand(client, model, name)));

  program
    .command('models')
    .description('list models: id, name, deployments, production deployment, created')
    .addOption(outputOption())
    .action(run((client, options) => modelsCommand(client, options)));

  const deployments = program
    .command('deployments')
    .description("list a model's deployments, or manage one")
    .argument('[model]', 'model id or name (needed to list)')
    .option('-l, --label <key=value>', 'only deployments with this label (repeatable; all must match)', (value: string, all: string[] = []) => [...all, value])
    .addOption(outputOption())
    .action(
      run(async (client, model: string | undefined, options) => {
        if (!model) throw new Error('give a model: gantry deployments MODEL');
        return deploymentsCommand(client, model, options);
      }),
    );
  deployments
    .command('update')
    .description('rename a deployment and/or replace its labels')
    .argument('<model>', 'model id or name')
    .argument('<deployment>', 'deployment id or name')
    .option('--name <name>', 'new name')
    .option('--labels <json>', `new labels, replacing the old, e.g. '{"team":"ml"}'`)
    .addOption(outputOption())
    .action(run((client, model: string, ref: string, options) => updateDeploymentCommand(client, model, ref, options)));
  deployments
    .command('rename')
    .description('rename a deployment')
    .argument('<model>', 'model id or name')
    .argument('<deployment>', 'deployment id or name')
    .argument('<name>', 'new name')
    .addOption(outputOption())
    .action(run((client, model: string, ref: string, name: string, options) => updateDeploymentCommand(client, model, ref, { ...options, name })));
  for (const action of ['deactivate', 'activate'] as const) {
    deployments
      .command(action)
      .description(action === 'deactivate' ? 'stop serving a deployment (404) and release its replicas' : 'bring a deactivated deployment back')
      .argument('<model>', 'model id or name')
      .argument('<deployment>', 'deployment id or name')
      .option('--wait', `wait until it is ${action === 'deactivate' ? 'INACTIVE' : 'ACTIVE'}`)
      .addOption(outputOption())
      .action(run((client, model: string, ref: string, options) => switchDeploymentCommand(client, action, model, ref, options)));
  }
  deployments
    .command('delete')
    .description('delete a deployment no environment uses (it stays in the usage log)')
    .argument('<model>', 'model id or name')
    .argument('<deployment>', 'deployment id or name')
    .action(run((client, model: string, ref: string) => deleteDeploymentCommand(client, model, ref)));

  program
    .command('usage')
    .description('replica-hours and requests per deployment (deleted ones included)')
    .option('--start <time>', 'ISO 8601 start (default: 24 hours before --end)')
    .option('--end <time>', 'ISO 8601 end (default: now)')
    .addOption(outputOption())
    .action(run((client, options) => usageCommand(client, options)));

  program
    .command('predict')
    .description('call a model through the gateway (production unless told otherwise)')
    .argument('<model>', 'model id or name')
    .option('-d, --deployment <ref>', 'a deployment id or name')
    .option('-e, --environment <env>', 'an environment (default production)')
    .option('--data <json>', 'the model input (required): JSON, @file.json, or - for stdin')
    .option('-v, --verbose', 'print the status and the deployment that answered on stderr')
    .option('--async', 'queue an async request (prints its request_id; see gantry async status)')
    .option('--webhook <url>', 'with --async: where the result is POSTed')
    .option('--priority <n>', 'with --async: the request priority (0-2)', integer)
    .option('--max-time-in-queue <seconds>', 'with --async: expire the request after this long in the queue', integer)
    .action(
      run((client, model: string, options) => {
        if (options.async) return asyncPredictCommand(client, model, options);
        if (options.webhook !== undefined || options.priority !== undefined || options.maxTimeInQueue !== undefined) {
          throw new Error('--webhook, --priority and --max-time-in-queue go with --async');
        }
        return predictCommand(client, model, options);
      }),
    );

  const asyncRequests = program.command('async').description('follow or cancel async requests (gantry predict --async)');
  asyncRequests
    .command('status')
    .description("an async request's status, webhook status, times, errors and output")
    .argument('<request-id>', 'the request_id predict --async printed')
    .option('--json', 'print the raw status view')
    .addOption(outputOption())
    .action(run((client, id: string, options) => asyncStatusCommand(client, id, options)));
  asyncRequests
    .command('cancel')
    .description('cancel a queued async request')
    .argument('<request-id>', 'the request_id predict --async printed')
    .requiredOption('-m, --model <model>', 'the model it was sent to (id or name)')
    .action(run((client, id: string, options) => asyncCancelCommand(client, id, options)));

  program
    .command('wake')
    .description('wake a sleeping deployment (production unless told otherwise); returns at once')
    .argument('<model>', 'model id or name')
    .option('-d, --deployment <ref>', 'a deployment id or name')
    .option('-e, --environment <env>', 'an environment (default production): its deployment, and during a promotion both sides')
    .action(run((client, model: string, options) => wakeCommand(client, model, options)));

  program
    .command('logs')
    .description("print a deployment's build and replica logs")
    .argument('<model>', 'model id or name')
    .argument('<deployment>', 'deployment id, name, production or development')
    .option('-n, --tail <lines>', 'how many of the last lines to print', '200')
    .addOption(outputOption())
    .action(run((client, model: string, ref: string, options) => logsCommand(client, model, ref, options)));

  const secrets = program.command('secrets').description('set, list and delete the secrets models declare in config.yaml');
  secrets
    .command('set')
    .description('create or rotate a secret; the value is read from standard input, or a hidden prompt on a terminal')
    .argument('<name>', 'secret name')
    .argument('[value...]', 'refused: a value is never given on the command line')
    .addOption(outputOption())
    .action(run((client, name: string, extra: string[], options) => setSecretCommand(client, name, extra, options)));
  secrets
    .command('list')
    .description('list secrets (names, ids and dates; never values)')
    .addOption(outputOption())
    .action(run((client, options) => listSecretsCommand(client, options)));
  secrets
    .command('delete')
    .description('delete a secret')
    .argument('<name>', 'secret name')
    .action(run((client, name: string) => deleteSecretCommand(client, name)));

  return program;
}

/** Runs the `gantry` command line on `argv` (the process's own arguments by default). */
export async function main(argv: readonly string[] = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    process.exitCode = 1;
  }
}

if (require.main === module) void main();
