/**
 * The dashboard end to end: the real stack, a real headless Chromium (the one the npm package
 * @sparticuz/chromium ships, driven by playwright-core), real replicas and steady load. Every
 * check reads the page as a user sees it, and what the API then says.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { LoadGenerator } from '../../bench/loadgen';
import { PROJECT_ROOT } from '../../src/shared/project-paths';
import { launchBrowser } from '../helpers/browser';
import { eventually } from '../helpers/ports';
import { TestStack } from '../helpers/stack';

const example = (name: string): string => path.join(PROJECT_ROOT, 'examples', name);
/**
 * Where the tests save their screenshots: the README's pictures in docs/images when
 * GANTRY_UPDATE_SCREENSHOTS=1, else a temporary directory, so that `npm test` leaves the
 * checkout as it found it.
 */
const SCREENSHOTS = process.env.GANTRY_UPDATE_SCREENSHOTS === '1' ? path.join(PROJECT_ROOT, 'docs', 'images') : fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-screenshots-'));

describe('dashboard (real stack, real browser)', function () {
  this.timeout(600_000);
  let stack: TestStack;
  let browser: Browser;
  let page: Page;

  async function push(dir: string, ...flags: string[]): Promise<{ id: string; model_id: string; name: string }> {
    const result = await stack.cli(['push', dir, '--output', 'json', ...flags]);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    return JSON.parse(result.stdout);
  }

  async function signIn(key = stack.apiKey): Promise<void> {
    await page.goto(stack.apiUrl);
    await page.getByLabel('API key').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }

  before(async () => {
    // Usage written every 2 s instead of every minute, so that the usage chart has data to show.
    stack = await TestStack.create({ GANTRY_USAGE_FLUSH_SECONDS: '2' });
    await stack.start();
    browser = await launchBrowser();
    // A browser's own locale: the sandbox's (en-US@posix) is not a valid language tag for Intl.
    page = await browser.newPage({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
  });

  after(async () => {
    await browser?.close();
    await stack?.destroy();
  });

  it('says a wrong key is wrong, signs in with the right one, and signs out', async () => {
    assert.match(stack.log, new RegExp(`Dashboard +${stack.apiUrl.replace(/[.]/g, '\\.')}/`), 'npm start prints the dashboard URL');
    await signIn('gtk_not-a-key');
    await page.getByRole('alert').filter({ hasText: 'invalid API key' }).waitFor();
    await signIn();
    await page.getByRole('heading', { name: 'Models' }).waitFor();
    assert.equal(await page.evaluate('sessionStorage.getItem("gantry.api-key")'), stack.apiKey);
    assert.ok(!page.url().includes(stack.apiKey), 'the key is never in the URL');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key').waitFor();
    assert.equal(await page.evaluate('sessionStorage.getItem("gantry.api-key")'), null);
  });

  it('shows a model pushed by the CLI, and it turns ACTIVE without a reload', async () => {
    await signIn();
    await page.getByText('live', { exact: true }).waitFor();
    const pushed = await push(example('echo'), '--model-name', 'echo');
    const row = page.locator('tr[data-model="echo"]');
    await row.locator('[data-column="production"] [data-status="ACTIVE"]').waitFor({ timeout: 120_000 });
    assert.equal(await page.evaluate('performance.getEntriesByType("navigation").length'), 1, 'the page was not reloaded');
    assert.match(await row.innerText(), new RegExp(pushed.name));
    await page.screenshot({ path: path.join(SCREENSHOTS, 'dashboard-models.png') });
  });

  it('renames and relabels a deployment inline, and the API agrees', async () => {
    await page.locator('tr[data-model="echo"] a').click();
    const row = page.locator('tr[data-deployment="deployment-1"]');
    await row.getByRole('button', { name: 'Rename deployment-1' }).click();
    await page.getByLabel('New name of deployment-1').fill('blue');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    const renamed = page.locator('tr[data-deployment="blue"]');
    await renamed.waitFor();
    await renamed.getByRole('button', { name: 'Edit the labels of blue' }).click();
    await page.getByLabel('Labels of blue, one key: value per line').fill('team: ml\ntier: gold');
    await page.getByRole('button', { name: 'Save labels' }).click();
    await renamed.getByText('tier: gold').waitFor();
    const model = (await stack.api('GET', '/v1/models/echo')).body;
    const deployment = (await stack.api('GET', `/v1/models/${model.id}/deployments/blue`)).body;
    assert.deepEqual(deployment.labels, { team: 'ml', tier: 'gold' });
  });

  it('shows the API reason when a delete is refused, and deactivates then activates', async () => {
    const row = page.locator('tr[data-deployment="blue"]');
    await row.getByRole('button', { name: 'Delete blue' }).click();
    await page.getByRole('button', { name: 'Delete blue', exact: true }).last().click();
    await page
      .getByRole('alert')
      .filter({ hasText: /production/ })
      .waitFor();
    await row.getByRole('button', { name: 'Deactivate blue' }).click();
    await row.locator('[data-status="INACTIVE"]').waitFor();
    await row.getByRole('button', { name: 'Activate blue' }).click();
    await row.locator('[data-status="ACTIVE"]').waitFor({ timeout: 60_000 });
  });

  it("tails a deployment's logs live: a line the model printed, filtered, and new lines without a reload", async () => {
    const logs = page.locator('section[aria-labelledby="logs-title"]');
    await logs.scrollIntoViewIfNeeded();
    await logs.getByLabel('Deployment').selectOption({ label: 'blue' });
    await logs.getByLabel('Filter lines').fill('echo model loaded');
    const printed = logs.locator('.log-line', { hasText: "echo model loaded (GREETING='hello')" });
    await printed.first().waitFor();
    const before = await printed.count();
    assert.equal(await logs.locator('.log-line').count(), before, 'the filter leaves only matching lines');
    await logs.screenshot({ path: path.join(SCREENSHOTS, 'dashboard-logs.png') });
    // A replica restarted by deactivate and activate prints the line again: it arrives on its own.
    const model = (await stack.api('GET', '/v1/models/echo')).body;
    assert.equal((await stack.api('POST', `/v1/models/${model.id}/deployments/blue/deactivate`)).status, 200);
    await eventually('the replica stopped', async () => ((await stack.api('GET', `/v1/models/${model.id}/deployments/blue`)).body.replicas.ready === 0 ? true : undefined));
    assert.equal((await stack.api('POST', `/v1/models/${model.id}/deployments/blue/activate`)).status, 200);
    await eventually("the new replica's line", async () => ((await printed.count()) > before ? true : undefined), 60_000, 100);
  });

  it('answers in the predict playground, saying which deployment served', async () => {
    const playground = page.locator('section[aria-labelledby="playground-title"]');
    await playground.scrollIntoViewIfNeeded();
    await playground.getByLabel('Deployment').selectOption({ label: 'blue' });
    await playground.getByLabel('Request body (JSON)').fill('{"text": "from the browser"}');
    await playground.getByRole('button', { name: 'Predict' }).click();
    await playground.getByTestId('predict-status').filter({ hasText: '200' }).waitFor({ timeout: 60_000 });
    assert.equal(await playground.getByTestId('predict-served-by').innerText(), 'blue');
    assert.deepEqual(JSON.parse(await playground.getByTestId('predict-answer').innerText()).echo, { text: 'from the browser' });
    await playground.getByLabel('Request body (JSON)').fill('{not json');
    await playground.getByRole('button', { name: 'Predict' }).click();
    await playground.getByRole('alert').filter({ hasText: 'the body is not JSON' }).waitFor();
  });

  it('pauses, resumes and cancels a rolling promotion with its buttons under load, the traffic bar following', async () => {
    const model = (await stack.api('GET', '/v1/models/echo')).body;
    const settings = await stack.api('PATCH', `/v1/models/${model.id}/environments/production`, {
      promotion_settings: { rolling_deploy_config: { max_surge_percent: 50, stabilization_time_seconds: 3 } },
    });
    assert.equal(settings.status, 200, JSON.stringify(settings.body));
    const scaled = await stack.api('PATCH', `/v1/models/${model.id}/deployments/blue/autoscaling_settings`, { min_replica: 2, max_replica: 2 });
    assert.equal(scaled.status, 200);
    await eventually('two ready replicas', async () => ((await stack.api('GET', `/v1/models/${model.id}/deployments/blue`)).body.replicas.ready === 2 ? true : undefined));
    const candidate = await push(example('echo'), '--model-name', 'echo', '--wait');
    const load = new LoadGenerator({ url: `${stack.gatewayUrl}/models/${model.id}/production/predict`, apiKey: stack.apiKey, rate: 20 });
    load.start();
    let stopped = false;
    try {
      const row = page.locator(`tr[data-deployment="${candidate.name}"]`);
      await row.getByLabel(`Environment to promote ${candidate.name} to`).selectOption('production');
      await row.getByRole('button', { name: `Promote ${candidate.name}` }).click();
      const card = page.locator('article[data-environment="production"]');
      const bar = card.getByRole('meter', { name: 'Traffic to the new deployment' });
      await eventually('50% on the bar', async () => ((await bar.getAttribute('aria-valuenow')) === '50' ? true : undefined), 120_000, 50);
      assert.equal(await card.locator('button[data-action="resume"]').isDisabled(), true, 'resume is refused while ramping up');
      await card.locator('button[data-action="pause"]').click();
      await card.locator('[data-status="PAUSED"]').first().waitFor();
      const workflowLink = card.getByRole('link', { name: 'workflow in Temporal' });
      assert.match(String(await workflowLink.getAttribute('href')), new RegExp(`^http://127\\.0\\.0\\.1:\\d+/namespaces/default/workflows/promotion%3A${model.id}%3Aproduction$`));
      await page.screenshot({ path: path.join(SCREENSHOTS, 'dashboard-promotion.png'), fullPage: true });
      assert.equal(await card.locator('button[data-action="pause"]').isDisabled(), true, 'pause is refused while paused');
      assert.equal((await stack.api('GET', `/v1/models/${model.id}/environments/production/promotion`)).body.status, 'PAUSED');
      await card.locator('button[data-action="resume"]').click();
      await eventually('not paused', async () => ((await card.locator('.promotion').getAttribute('data-status')) !== 'PAUSED' ? true : undefined));
      await card.locator('button[data-action="cancel"]').click();
      await card.getByText('No promotion in flight.').waitFor({ timeout: 120_000 });
      assert.equal(await bar.count(), 0);
      const ended = (await stack.api('GET', `/v1/models/${model.id}/environments/production/promotion`)).body;
      assert.equal(ended.status, 'CANCELED');
      const summary = await load.stop();
      stopped = true;
      assert.equal(summary.failed, 0, `failed requests: ${JSON.stringify(summary.byStatus)}`);
      const audit = (await stack.api('GET', `/v1/models/${model.id}/audit_logs`)).body.audit_logs.map((e: { action: string }) => e.action);
      for (const action of ['PAUSE', 'RESUME', 'GRACEFUL_CANCEL']) assert.ok(audit.includes(action), `${action} is audited`);
      // Where each came from: the buttons (through the Update, recorded by the workflow), the CLI push.
      const entries: { action: string; source: string }[] = (await stack.api('GET', `/v1/models/${model.id}/audit_logs`)).body.audit_logs;
      for (const action of ['PROMOTE', 'PAUSE', 'RESUME', 'GRACEFUL_CANCEL'])
        assert.equal(entries.find((e) => e.action === action)?.source, 'dashboard', `${action} came from the dashboard`);
      assert.equal(entries.find((e) => e.action === 'PUSH')?.source, 'cli');
      const auditTable = page.locator('section[aria-labelledby="audit-title"] table');
      await auditTable.locator('tr', { hasText: 'GRACEFUL_CANCEL' }).getByText('dashboard', { exact: true }).first().waitFor();
    } finally {
      if (!stopped) await load.stop();
    }
  });
  it('starts a canary from the promotion settings form and cancels it with its button', async () => {
    const card = page.locator('article[data-environment="production"]');
    await card.getByRole('button', { name: 'Edit the promotion settings of production' }).click();
    const form = card.getByRole('form', { name: 'Promotion settings of production' });
    await form.getByLabel('Canary: move traffic in 10 equal stages').check();
    await form.getByLabel('Canary duration (s)').fill('600');
    await form.getByRole('button', { name: 'Save settings' }).click();
    await card.getByText(/Canary promotions: traffic in 10 stages over 600 s/).waitFor();
    const model = (await stack.api('GET', '/v1/models/echo')).body;
    const production = (await stack.api('GET', `/v1/models/${model.id}/environments/production`)).body;
    assert.equal(production.promotion_settings.ramp_up_while_promoting, true);
    assert.equal(production.promotion_settings.ramp_up_duration_seconds, 600);

    const row = page.locator('tr[data-deployment="deployment-2"]');
    await row.getByLabel('Environment to promote deployment-2 to').selectOption('production');
    await row.getByRole('button', { name: 'Promote deployment-2' }).click();
    const bar = card.getByRole('meter', { name: 'Traffic to the new deployment' });
    await eventually('the first canary stage', async () => ((await bar.getAttribute('aria-valuenow')) === '10' ? true : undefined), 120_000, 50);
    await card.locator('button[data-action="force_cancel"]').click();
    await card.getByText('No promotion in flight.').waitFor({ timeout: 60_000 });
    assert.equal((await stack.api('GET', `/v1/models/${model.id}/environments/production/promotion`)).body.status, 'CANCELED');
  });

  it('charts replica-hours per deployment, and marks a deleted deployment', async () => {
    const row = page.locator('tr[data-deployment="deployment-2"]');
    await row.getByRole('button', { name: 'Delete deployment-2' }).click();
    await page.getByRole('button', { name: 'Delete deployment-2', exact: true }).last().click();
    await row.waitFor({ state: 'detached' });
    const usage = page.locator('section[aria-labelledby="usage-title"]');
    await usage.scrollIntoViewIfNeeded();
    // The chart loads its data when the range is picked (and once a minute).
    await eventually(
      'usage of both deployments',
      async () => {
        await usage.getByLabel('Range').selectOption({ label: 'Last 7 days' });
        await usage.getByLabel('Range').selectOption({ label: 'Last 24 hours' });
        return (await usage.locator('tr[data-usage-deployment="deployment-2"]').count()) === 1 ? true : undefined;
      },
      60_000,
      1000,
    );
    assert.match(await usage.locator('tr[data-usage-deployment="deployment-2"]').innerText(), /deleted/);
    assert.ok(Number((await usage.locator('tr[data-usage-deployment="blue"] td').first().innerText()).trim()) > 0, 'blue used replica-hours');
    await usage.locator('.chart canvas').waitFor(); // uPlot is loaded with the panel
    assert.equal(await usage.locator('.chart canvas').count(), 1, 'one chart');
    assert.match(await usage.locator('.u-legend').innerText(), /deployment-2 \(deleted\)/);
  });
  it('is readable at 390 px without sideways scrolling, follows the dark setting, and is reachable by keyboard', async () => {
    const model = (await stack.api('GET', '/v1/models/echo')).body;
    for (const route of ['#/', `#/models/${model.id}`]) {
      await page.setViewportSize({ width: 390, height: 844 });
      await page.goto(`${stack.apiUrl}/${route}`);
      await page.locator('.live.live').first().waitFor();
      assert.equal(await page.evaluate('document.documentElement.scrollWidth'), 390, `${route} fits 390 px`);
    }
    await page.screenshot({ path: path.join(SCREENSHOTS, 'dashboard-model-390px.png') });
    const background = (): Promise<unknown> => page.evaluate('getComputedStyle(document.body).backgroundColor');
    await page.emulateMedia({ colorScheme: 'light' });
    const light = await background();
    await page.emulateMedia({ colorScheme: 'dark' });
    assert.notEqual(await background(), light, 'the dark setting changes the page');
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 1280, height: 900 });
    // From the top of the page, Tab reaches sign-out, then the first deployment's Rename.
    await page.getByRole('link', { name: 'Gantry' }).focus();
    const reached: string[] = [];
    for (let i = 0; i < 20 && !reached.includes('Rename'); i++) {
      await page.keyboard.press('Tab');
      reached.push(String(await page.evaluate('document.activeElement?.textContent?.trim()')));
    }
    assert.ok(reached.includes('Sign out') && reached.includes('Rename'), `Tab went through: ${reached.join(' | ')}`);
  });
  it('creates a custom environment and deletes it, after a confirmation', async () => {
    await page.getByLabel('New environment').fill('staging');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    const card = page.locator('article[data-environment="staging"]');
    await card.waitFor();
    const model = (await stack.api('GET', '/v1/models/echo')).body;
    assert.equal((await stack.api('GET', `/v1/models/${model.id}/environments/staging`)).status, 200);
    await page.getByLabel('New environment').fill('Bad_Name');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: /name/ }).first().waitFor();
    await card.getByRole('button', { name: 'Delete environment' }).click();
    await card.getByRole('button', { name: 'Delete staging' }).click();
    await card.waitFor({ state: 'detached' });
    assert.equal((await stack.api('GET', `/v1/models/${model.id}/environments/staging`)).status, 404);
  });

  it('shows a streamed answer in the playground as it arrives', async () => {
    const pushed = await stack.cli(['push', path.join(PROJECT_ROOT, 'test', 'fixtures', 'models', 'streaming'), '--wait', '--output', 'json']);
    assert.equal(pushed.code, 0, `${pushed.stdout}\n${pushed.stderr}`);
    const deployment = JSON.parse(pushed.stdout) as { model_id: string };
    const playground = page.locator('section[aria-labelledby="playground-title"]');
    await page.goto(`${stack.apiUrl}/#/models/${deployment.model_id}`);
    await page.getByLabel('API key').or(playground).first().waitFor();
    if (await page.getByLabel('API key').isVisible()) {
      await signIn(); // when this test runs on its own (--grep)
      await page.goto(`${stack.apiUrl}/#/models/${deployment.model_id}`);
    }
    await playground.scrollIntoViewIfNeeded();
    await playground.getByLabel('Request body (JSON)').fill('{"chunks": 4, "gap": 1}');
    await playground.getByRole('button', { name: 'Predict' }).click();
    const answer = playground.getByTestId('predict-answer');
    await answer.filter({ hasText: '"index":0' }).waitFor({ timeout: 60_000 });
    // The first line is on the page while the model still has three one-second gaps to go.
    assert.ok(!(await answer.innerText()).includes('"index":3'), await answer.innerText());
    await answer.filter({ hasText: '"index":3' }).waitFor({ timeout: 60_000 });
    const shown = (await answer.innerText())
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line).index);
    assert.deepEqual(shown, [0, 1, 2, 3]);
  });
});
