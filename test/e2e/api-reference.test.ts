/**
 * `GET /docs` in a real headless Chromium: Scalar renders the API's own OpenAPI document, and
 * the page asks nothing of any server but the API (no CDN, no fonts, no telemetry).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser } from 'playwright-core';
import { createApp } from '../../src/api/app';
import { openApiDocument } from '../../src/api/openapi';
import { homePaths } from '../../src/home';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import type { WorkflowsClient } from '../../src/temporal/workflows-client';
import { launchBrowser } from '../helpers/browser';

describe('API reference at /docs (headless Chromium)', function () {
  this.timeout(120_000);
  let dir: string;
  let store: SqliteStore;
  let server: Server;
  let url: string;
  let browser: Browser;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-docs-'));
    store = new SqliteStore(path.join(dir, 'gantry.db'));
    const app = createApp({ store, paths: homePaths(dir), workflows: {} as WorkflowsClient, deployTimeoutSeconds: 60, maxArchiveBytes: 1024, basePython: 'python3' });
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await new Promise((resolve) => server.close(resolve));
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('renders every tag and operation of the document from the local bundle, asking no other server', async () => {
    const page = await browser.newPage();
    const requested: string[] = [];
    page.on('request', (request) => requested.push(request.url()));
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${url}/docs`);
    await page.getByRole('heading', { name: 'Gantry management API' }).first().waitFor({ timeout: 60_000 });
    // Every tag of the document is a group of the page, and the first group's operations are shown by their summaries.
    const document = openApiDocument();
    for (const tag of document.tags ?? []) await page.getByText(tag.name, { exact: true }).first().waitFor({ timeout: 30_000 });
    for (const summary of ['Every model', 'One model, by id or name']) await page.getByText(summary, { exact: true }).first().waitFor({ timeout: 30_000 });
    // A closed group opens on a click and lists its operations.
    await page.getByText('Secrets', { exact: true }).first().click();
    await page.getByText('Every secret: names and dates, never values', { exact: true }).first().waitFor({ timeout: 30_000 });
    const elsewhere = requested.filter((address) => !address.startsWith(`${url}/`) && !/^(data|blob|about):/.test(address));
    assert.deepEqual(elsewhere, [], 'the reference page asked another server');
    assert.ok(requested.includes(`${url}/docs/standalone.js`), requested.join('\n'));
    assert.ok(requested.includes(`${url}/v1/openapi.json`), requested.join('\n'));
    assert.deepEqual(errors, []);
    await page.close();
  });
});
