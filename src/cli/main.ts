/** The `gantry` command line. */
import * as path from 'node:path';
import { Command, Option } from 'commander';
import { ApiClient, ApiClientError } from './api-client';
import { deploymentsCommand, logsCommand, modelsCommand } from './commands/inspect';
import { predictCommand } from './commands/predict';
import { pushCommand } from './commands/push';
import { resolveCredentials, saveCredentials } from './credentials';

const outputOption = (): Option => new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text');

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
    .description('Push Python models, serve them, and promote them through environments.')
    .showHelpAfterError()
    .version('0.1.0');

  program
    .command('login')
    .description('save the API URL, gateway URL and API key for later commands')
    .option('--url <url>', 'management API URL')
    .option('--gateway-url <url>', 'inference gateway URL')
    .requiredOption('--api-key <key>', 'API key')
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
    .option('--wait', 'wait until the deployment is ACTIVE or failed; exit non-zero on failure')
    .option('--timeout-seconds <s>', 'how long --wait waits', '1800')
    .addOption(outputOption())
    .action(run((client, dir: string, options) => pushCommand(client, path.resolve(dir), options)));

  program
    .command('models')
    .description('list models')
    .addOption(outputOption())
    .action(run((client, options) => modelsCommand(client, options)));

  program
    .command('deployments')
    .description("list a model's deployments")
    .argument('<model>', 'model id or name')
    .addOption(outputOption())
    .action(run((client, model: string, options) => deploymentsCommand(client, model, options)));

  program
    .command('predict')
    .description('call a model through the gateway (production unless told otherwise)')
    .argument('<model>', 'model id or name')
    .option('-d, --deployment <ref>', 'a deployment id or name')
    .option('-e, --environment <env>', 'an environment (default production)')
    .option('--data <json>', 'the model input: JSON, @file.json, or - for stdin')
    .option('-v, --verbose', 'print the status and the deployment that answered on stderr')
    .action(run((client, model: string, options) => predictCommand(client, model, options)));

  program
    .command('logs')
    .description("print a deployment's build and replica logs")
    .argument('<model>', 'model id or name')
    .argument('<deployment>', 'deployment id, name, production or development')
    .option('-n, --tail <lines>', 'how many lines', '200')
    .addOption(outputOption())
    .action(run((client, model: string, ref: string, options) => logsCommand(client, model, ref, options)));

  return program;
}

buildProgram()
  .parseAsync(process.argv)
  .catch((error) => {
    console.error(`error: ${(error as Error).message}`);
    process.exitCode = 1;
  });
