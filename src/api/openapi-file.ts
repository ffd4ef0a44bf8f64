/**
 * docs/openapi.json, the committed copy of the API's OpenAPI document: `npm run openapi`
 * (this file run by node) writes it; test/unit/openapi.test.ts fails when it is out of date.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../shared/project-paths';
import { openApiDocument } from './openapi';

/** Where the committed document lives. */
export const OPENAPI_FILE = path.join(PROJECT_ROOT, 'docs', 'openapi.json');

/** The document as the committed file holds it: two-space JSON and a final newline. */
export function renderOpenApiFile(): string {
  return `${JSON.stringify(openApiDocument(), null, 2)}\n`;
}

if (require.main === module) {
  fs.writeFileSync(OPENAPI_FILE, renderOpenApiFile());
  console.log(`wrote ${path.relative(process.cwd(), OPENAPI_FILE)}`);
}
