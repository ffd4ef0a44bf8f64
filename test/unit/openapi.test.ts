/**
 * The API's OpenAPI document: valid OpenAPI 3.1, every route Express registers described (and
 * nothing else), the committed docs/openapi.json current, and the document, /docs and its
 * bundled renderer served without a key over real HTTP.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import type { Router } from 'express';
import { createApp, type AppDeps } from '../../src/api/app';
import { openApiDocument } from '../../src/api/openapi';
import { OPENAPI_FILE, renderOpenApiFile } from '../../src/api/openapi-file';
import { homePaths } from '../../src/home';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import type { AsyncPredictionsClient, WorkflowsClient } from '../../src/temporal/workflows-client';

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

/** Every `METHOD /path` Express would route, with `:param` written `{param}` as OpenAPI does. */
function expressRoutes(router: Router): string[] {
  const found: string[] = [];
  for (const layer of router.stack) {
    const route = (layer as { route?: { path: string; methods: Record<string, boolean> } }).route;
    if (route) {
      for (const method of Object.keys(route.methods)) found.push(`${method.toUpperCase()} ${route.path.replace(/:(\w+)/g, '{$1}')}`);
    } else if ((layer.handle as Partial<Router>).stack) {
      found.push(...expressRoutes(layer.handle as unknown as Router));
    }
  }
  return found;
}

/** Every `METHOD /path` the document describes. */
function documentedRoutes(document: ReturnType<typeof openApiDocument>): string[] {
  return Object.entries(document.paths ?? {}).flatMap(([route, item]) => METHODS.filter((method) => item?.[method]).map((method) => `${method.toUpperCase()} ${route}`));
}

describe('OpenAPI document', () => {
  let dir: string;
  let store: SqliteStore;
  let server: Server;
  let url: string;
  let deps: AppDeps;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-openapi-'));
    store = new SqliteStore(path.join(dir, 'gantry.db'));
    // Every optional part of the API switched on, as `npm start` runs it: no workflow is started here.
    deps = {
      store,
      paths: homePaths(dir),
      workflows: {} as WorkflowsClient,
      deployTimeoutSeconds: 60,
      maxArchiveBytes: 1024,
      basePython: 'python3',
      gatewayUrl: 'http://127.0.0.1:9',
      asyncPredictions: { client: {} as AsyncPredictionsClient, webhookRetrySeconds: 1, wakeTimeoutSeconds: 1 },
    };
    server = createApp(deps).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('is valid OpenAPI 3.1', async () => {
    const validator = new Validator();
    const result = await validator.validate(openApiDocument() as unknown as Parameters<Validator['validate']>[0]);
    assert.deepEqual(result.errors ?? [], [], JSON.stringify(result.errors, null, 2));
    assert.equal(result.valid, true);
    assert.equal(validator.version, '3.1');
  });

  it('describes every route Express registers, and no other', () => {
    const registered = [...new Set(expressRoutes(createApp(deps).router as unknown as Router))].sort();
    const documented = documentedRoutes(openApiDocument()).sort();
    assert.ok(registered.length > 40, `only ${registered.length} routes found: the router walk is broken`);
    assert.deepEqual(
      registered.filter((route) => !documented.includes(route)),
      [],
      'routes Express serves that the document does not describe',
    );
    assert.deepEqual(
      documented.filter((route) => !registered.includes(route)),
      [],
      'operations the document describes that Express does not serve',
    );
  });

  it('gives every operation an id, its error body, and every authenticated one its 401', () => {
    const document = openApiDocument();
    const ids = new Set<string>();
    for (const [route, item] of Object.entries(document.paths ?? {})) {
      for (const method of METHODS) {
        const operation = item?.[method];
        if (!operation) continue;
        assert.ok(operation.operationId, `${method} ${route} has no operationId`);
        assert.ok(!ids.has(operation.operationId), `operationId ${operation.operationId} is used twice`);
        ids.add(operation.operationId);
        const open = Array.isArray(operation.security) && operation.security.length === 0;
        if (!open) assert.ok(operation.responses?.['401'], `${method} ${route} does not describe its 401`);
        for (const [status, response] of Object.entries(operation.responses ?? {})) {
          if (!/^4\d\d$/.test(status)) continue;
          const schema = (response as { content?: Record<string, { schema?: { $ref?: string } }> }).content?.['application/json']?.schema;
          assert.equal(schema?.$ref, '#/components/schemas/Error', `${method} ${route} ${status} is not described with the error body`);
        }
      }
    }
  });

  it('links only to operations it has, with parameters they take', () => {
    const document = openApiDocument();
    const parametersOf = new Map<string, string[]>();
    for (const item of Object.values(document.paths ?? {})) {
      for (const method of METHODS) {
        const operation = item?.[method];
        if (operation?.operationId)
          parametersOf.set(
            operation.operationId,
            (operation.parameters ?? []).map((parameter) => (parameter as { name: string }).name),
          );
      }
    }
    let links = 0;
    for (const [route, item] of Object.entries(document.paths ?? {})) {
      for (const method of METHODS) {
        for (const [status, response] of Object.entries(item?.[method]?.responses ?? {})) {
          for (const [name, link] of Object.entries((response as { links?: Record<string, { operationId: string; parameters?: Record<string, string> }> }).links ?? {})) {
            links++;
            const where = `${method} ${route} ${status} link ${name}`;
            assert.ok(parametersOf.has(link.operationId), `${where}: no operation ${link.operationId}`);
            for (const parameter of Object.keys(link.parameters ?? {})) {
              assert.ok(parametersOf.get(link.operationId)!.includes(parameter), `${where}: ${link.operationId} takes no parameter ${parameter}`);
            }
          }
        }
      }
    }
    assert.ok(links > 40, `only ${links} links`);
  });

  it('is committed as docs/openapi.json, exactly as the code generates it', () => {
    const committed = fs.existsSync(OPENAPI_FILE) ? fs.readFileSync(OPENAPI_FILE, 'utf8') : '';
    assert.ok(committed === renderOpenApiFile(), 'docs/openapi.json differs from the document the code generates: run `npm run openapi` and commit docs/openapi.json');
  });

  it('is served at /v1/openapi.json without a key', async () => {
    const response = await fetch(`${url}/v1/openapi.json`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await response.json(), JSON.parse(renderOpenApiFile()));
  });

  it('serves /docs, a page that loads the bundled Scalar renderer and the document from this server', async () => {
    const page = await fetch(`${url}/docs`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    const html = await page.text();
    const scripts = [...html.matchAll(/<script[^>]*\ssrc="([^"]+)"/g)].map((match) => match[1]);
    assert.deepEqual(scripts, ['/docs/standalone.js']);
    assert.match(html, /url: '\/v1\/openapi\.json'/);
    assert.doesNotMatch(html, /https?:\/\//, 'the page names no other server');
    const bundle = await fetch(`${url}/docs/standalone.js`);
    assert.equal(bundle.status, 200);
    assert.match(bundle.headers.get('content-type') ?? '', /javascript/);
    const script = await bundle.text();
    assert.ok(script.length > 1_000_000, `the bundle is only ${script.length} bytes`);
    assert.match(script, /createApiReference/);
  });

  it('still asks for a key everywhere else', async () => {
    const response = await fetch(`${url}/v1/models`);
    assert.equal(response.status, 401);
  });
});
