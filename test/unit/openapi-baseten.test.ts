/**
 * Where Gantry mirrors Baseten's API, its OpenAPI document says the same as Baseten's published
 * descriptions (a copy in test/fixtures/baseten-reference/, with its source): every request field
 * Baseten defines exists with its type and bounds, and every field Baseten's answers require is
 * required in Gantry's answers with the same type and values.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openApiDocument } from '../../src/api/openapi';
import { PROJECT_ROOT } from '../../src/shared/project-paths';

type Schema = {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  required?: string[];
  properties?: Record<string, Schema>;
  items?: Schema;
  minimum?: number;
  maximum?: number;
  anyOf?: Schema[];
};
type Document = {
  components?: { schemas?: Record<string, Schema>; responses?: Record<string, { content?: Record<string, { schema?: Schema }> }> };
  paths?: Record<string, Record<string, any>>;
};

const REFERENCE = path.join(PROJECT_ROOT, 'test', 'fixtures', 'baseten-reference');

/** The schema a `$ref` names, followed until it is not a reference. */
function resolve(document: Document, schema: Schema | undefined): Schema {
  let current = schema ?? {};
  while (current.$ref) {
    const [, kind, name] = /^#\/components\/(schemas|responses)\/(.+)$/.exec(current.$ref)!;
    current = kind === 'schemas' ? document.components!.schemas![name!]! : resolve(document, document.components!.responses![name!]!.content!['application/json']!.schema);
  }
  return current;
}

/** The JSON schema of an answer of an operation. */
function answerOf(document: Document, route: string, method: string, status: string): Schema {
  let response = document.paths![route]![method].responses[status];
  if (response.$ref) response = document.components!.responses![response.$ref.split('/').pop()!];
  return resolve(document, response.content['application/json'].schema);
}

/** The JSON schema of an operation's JSON request body. */
function bodyOf(document: Document, route: string, method: string): Schema {
  let body = document.paths![route]![method].requestBody;
  if (body.$ref) body = (document.components as Record<string, Record<string, unknown>>).requestBodies![body.$ref.split('/').pop()!];
  return resolve(document, body.content['application/json'].schema);
}

const typeOf = (schema: Schema): string[] =>
  [schema.type ?? []]
    .flat()
    .filter((type) => type !== 'null')
    .sort();

/** Baseten's request fields are all accepted by Gantry, with the same types and bounds. */
function assertAcceptsRequest(baseten: Document, theirs: Schema, gantry: Document, ours: Schema, where: string): void {
  assert.deepEqual([...(ours.required ?? [])].sort(), [...(theirs.required ?? [])].sort(), `${where}: required fields`);
  for (const [name, theirField] of Object.entries(theirs.properties ?? {})) {
    const their = resolve(baseten, theirField);
    const our = resolve(gantry, ours.properties?.[name]);
    assert.ok(ours.properties?.[name], `${where}.${name} is missing`);
    assert.deepEqual(typeOf(our), typeOf(their), `${where}.${name}: type`);
    for (const bound of ['minimum', 'maximum'] as const) assert.equal(our[bound], their[bound], `${where}.${name}: ${bound}`);
    if (their.properties) assertAcceptsRequest(baseten, their, gantry, our, `${where}.${name}`);
  }
}

/** Every field Baseten's answer requires is required in Gantry's, with the same type and values. */
function assertAnswersLike(baseten: Document, theirs: Schema, gantry: Document, ours: Schema, where: string): void {
  for (const name of theirs.required ?? []) {
    assert.ok(ours.required?.includes(name), `${where}.${name} is not required in Gantry's answer`);
    const their = resolve(baseten, theirs.properties![name]);
    const our = resolve(gantry, ours.properties![name]);
    assert.deepEqual(typeOf(our), typeOf(their), `${where}.${name}: type`);
    if (their.enum) assert.deepEqual(our.enum, their.enum, `${where}.${name}: values`);
    if (their.items) assertAnswersLike(baseten, resolve(baseten, their.items), gantry, resolve(gantry, our.items), `${where}.${name}[]`);
  }
}

describe("OpenAPI document against Baseten's", () => {
  const gantry = openApiDocument() as unknown as Document;
  const read = (file: string): Document => JSON.parse(fs.readFileSync(path.join(REFERENCE, file), 'utf8'));

  it('takes async predictions as Baseten does, at each of its paths', () => {
    const baseten = read('baseten-inference-openapi.json');
    for (const target of ['production', 'development', 'environments/{env_name}', 'deployment/{deployment_id}']) {
      const ours = target.replace('{env_name}', '{env}').replace('{deployment_id}', '{deployment}');
      assertAcceptsRequest(
        baseten,
        bodyOf(baseten, `/${target}/async_predict`, 'post'),
        gantry,
        bodyOf(gantry, `/models/{model}/${ours}/async_predict`, 'post'),
        `async_predict (${target})`,
      );
      for (const status of Object.keys(baseten.paths![`/${target}/async_predict`]!.post.responses).filter((s) => s !== '429')) {
        assert.ok(gantry.paths![`/models/{model}/${ours}/async_predict`]!.post.responses[status], `async_predict (${target}) does not describe ${status}`);
      }
    }
  });

  it("answers an async request's status and its cancel as Baseten does", () => {
    const baseten = read('baseten-inference-openapi.json');
    assertAnswersLike(
      baseten,
      answerOf(baseten, '/async_request/{request_id}', 'get', '200'),
      gantry,
      answerOf(gantry, '/models/{model}/async_request/{request}', 'get', '200'),
      'async request',
    );
    assertAnswersLike(
      baseten,
      answerOf(baseten, '/async_request/{request_id}', 'delete', '200'),
      gantry,
      answerOf(gantry, '/models/{model}/async_request/{request}', 'delete', '200'),
      'cancel',
    );
  });

  it('takes and answers secrets as Baseten does', () => {
    const baseten = read('baseten-management-openapi.json');
    const schemas = baseten.components!.schemas!;
    assertAcceptsRequest(baseten, schemas.UpsertSecretRequestV1!, gantry, bodyOf(gantry, '/v1/secrets', 'post'), 'upsert secret');
    assertAnswersLike(baseten, schemas.SecretV1!, gantry, answerOf(gantry, '/v1/secrets', 'post', '200'), 'secret');
    assertAnswersLike(baseten, schemas.SecretsV1!, gantry, answerOf(gantry, '/v1/secrets', 'get', '200'), 'secrets');
    assertAnswersLike(baseten, schemas.SecretTombstoneV1!, gantry, answerOf(gantry, '/v1/secrets/{name}', 'delete', '200'), 'deleted secret');
  });
});
