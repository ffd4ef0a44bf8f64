/**
 * Fuzzing (`npm run test:fuzz`), on the real stack with examples/echo pushed:
 *  - the gateway's inference paths get random methods, paths, headers and bodies
 *    (test/fuzz/gateway_fuzz.py, Hypothesis): no 5xx beyond the documented 502, 503 and 504;
 *  - Schemathesis runs every operation of GET /v1/openapi.json with the admin key, a bounded
 *    number of examples each, and stateful sequences through the document's links (create,
 *    then read, change, delete): 0 server errors, 0 answers that break their documented status,
 *    content type or schema.
 * Prints one summary line (operations, cases, failures) that docs/testing.md quotes.
 * GANTRY_FUZZ_EXAMPLES (default 10) and GANTRY_FUZZ_SEED set the examples per operation and the seed.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PROJECT_ROOT, PROJECT_VENV_BIN } from '../../src/shared/project-paths';
import { type ProcessResult, runProcess, TestStack } from '../helpers/stack';

const EXAMPLES = Number(process.env.GANTRY_FUZZ_EXAMPLES ?? 10);
const SEED = process.env.GANTRY_FUZZ_SEED;
const GATEWAY_REQUESTS = Number(process.env.GANTRY_FUZZ_GATEWAY_REQUESTS ?? 300);

/** Runs a fuzzer in `cwd`, its output without colours. */
function run(command: string, args: string[], cwd: string): Promise<ProcessResult> {
  return runProcess(command, args, { cwd, env: { ...process.env, NO_COLOR: '1' } });
}

/** The part of Schemathesis' JSON report the summary uses. */
interface SchemathesisReport {
  exit_code: number;
  operations: { total: number; tested: number; errored: number };
  test_cases: { generated: number; with_failures: number; unique_failures: number; errored: number };
  failures: unknown[];
  errors: unknown[];
}

describe('fuzzing (real stack)', function () {
  this.timeout(600_000);
  let stack: TestStack;
  let modelId = '';
  let deploymentId = '';
  const summary: string[] = [];

  before(async () => {
    stack = await TestStack.create();
    await stack.start();
    const pushed = await stack.cli(['push', path.join(PROJECT_ROOT, 'examples', 'echo'), '--wait', '--output', 'json']);
    assert.equal(pushed.code, 0, pushed.stderr);
    const deployment = JSON.parse(pushed.stdout) as { id: string; model_id: string; status: string };
    assert.equal(deployment.status, 'ACTIVE');
    modelId = deployment.model_id;
    deploymentId = deployment.id;
    assert.equal((await stack.api('POST', `/v1/models/${modelId}/environments`, { name: 'staging' })).status, 201);
  });

  after(async () => {
    if (summary.length > 0) console.log(`      fuzz: ${summary.join('; ')}`);
    await stack?.destroy();
  });

  it("answers random requests on the gateway's inference paths with no 5xx but 502, 503 and 504", async () => {
    const args = [
      path.join(PROJECT_ROOT, 'test', 'fuzz', 'gateway_fuzz.py'),
      ...['--url', stack.gatewayUrl, '--key', stack.apiKey, '--model', modelId, '--deployment', deploymentId],
      ...['--examples', String(GATEWAY_REQUESTS), ...(SEED ? ['--seed', SEED] : [])],
    ];
    const result = await run(path.join(PROJECT_VENV_BIN, 'python'), args, stack.home);
    const line = result.stdout.trim().split('\n').pop() ?? '';
    let report: { requests: number; statuses: Record<string, number>; failure_count: number; failures: unknown[]; error: string | null };
    try {
      report = JSON.parse(line);
    } catch {
      throw new Error(`the gateway fuzzer printed no report (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
    }
    summary.push(
      `gateway ${report.requests} requests (${Object.entries(report.statuses)
        .map(([s, n]) => `${n}×${s}`)
        .join(', ')}), ${report.failure_count} failures`,
    );
    assert.equal(report.error, null, `${report.error}\n${JSON.stringify(report.failures, null, 2)}`);
    assert.equal(report.failure_count, 0, JSON.stringify(report.failures, null, 2));
    assert.ok(report.requests >= GATEWAY_REQUESTS / 2, `only ${report.requests} requests were sent`);
    assert.ok((report.statuses['200'] ?? 0) > 0, 'no request reached the model: the fuzzer is not exercising the proxy');
    assert.equal(result.code, 0, result.stderr);
  });

  it('Schemathesis finds no server error and no answer that breaks the OpenAPI document', async () => {
    const work = path.join(stack.home, 'schemathesis');
    fs.mkdirSync(work, { recursive: true });
    // The real model, deployment and environment in every path that names one, so that the
    // operations act on something; the stateful phase creates (and deletes) the rest.
    const config = `${fs.readFileSync(path.join(PROJECT_ROOT, 'test', 'fuzz', 'schemathesis.toml'), 'utf8')}
[parameters]
"path.model" = "${modelId}"
"path.ref" = "${deploymentId}"
"path.deployment" = "${deploymentId}"
`;
    fs.writeFileSync(path.join(work, 'schemathesis.toml'), config);
    const reportFile = path.join(work, 'report.json');
    const result = await run(
      path.join(PROJECT_VENV_BIN, 'schemathesis'),
      [
        ...['--config-file', path.join(work, 'schemathesis.toml'), '--no-color', 'run', `${stack.apiUrl}/v1/openapi.json`],
        ...['-H', `Authorization: Api-Key ${stack.apiKey}`, '--max-examples', String(EXAMPLES), '--workers', '2'],
        ...['--report', 'json', '--report-json-path', reportFile, ...(SEED ? ['--seed', SEED] : [])],
      ],
      work,
    );
    if (!fs.existsSync(reportFile)) throw new Error(`Schemathesis wrote no report (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
    const report = JSON.parse(fs.readFileSync(reportFile, 'utf8')) as SchemathesisReport;
    // The seed as printed: the report's JSON number is past what a double holds exactly.
    const seed = /^Seed: (\d+)$/m.exec(result.stdout)?.[1] ?? 'unknown';
    const links = /API Links:\s+(\d+) covered \/ (\d+)/.exec(result.stdout);
    summary.unshift(
      `API ${report.operations.tested} operations, ${report.test_cases.generated} cases, ${links ? `${links[1]} of ${links[2]} links followed, ` : ''}${report.test_cases.unique_failures} failures, ${report.errors.length} errors (Schemathesis seed ${seed})`,
    );
    const output = `${result.stdout}\n${result.stderr}`;
    assert.equal(report.test_cases.unique_failures, 0, output);
    assert.deepEqual(report.errors, [], output);
    assert.equal(report.operations.tested, report.operations.total, output);
    assert.equal(report.exit_code, 0, output);
    assert.doesNotMatch(stack.log, /unexpected error/, 'the API answered a 500 (its error handler logs "unexpected error")');
    assert.doesNotMatch(stack.log, /"status":500[,}]/, 'a request was answered 500 (its access log line says so)');
    // The stateful sequences got as far as deleting what they created.
    const audited = async (route: string): Promise<Set<string>> => new Set(((await stack.api('GET', route)).body.audit_logs as { action: string }[]).map((entry) => entry.action));
    const model = await audited(`/v1/models/${modelId}/audit_logs`);
    const secrets = await audited('/v1/audit_logs');
    for (const action of ['CREATE_ENVIRONMENT', 'DELETE_ENVIRONMENT', 'UPDATE_PROMOTION_SETTINGS', 'UPDATE_DEPLOYMENT', 'UPDATE_AUTOSCALING']) {
      assert.ok(model.has(action), `no ${action} in the model's audit log: the fuzzing did not get that far`);
    }
    for (const action of ['SET_SECRET', 'DELETE_SECRET']) assert.ok(secrets.has(action), `no ${action} in the audit log: the fuzzing did not get that far`);
  });
});
