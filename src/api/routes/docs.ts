/**
 * The API's description, served without a key like any public API description:
 * `GET /v1/openapi.json` (the OpenAPI 3.1 document) and `GET /docs`, a reference page rendered
 * by Scalar API Reference from the bundle in node_modules (`/docs/standalone.js`): nothing is
 * fetched from the internet: not fonts, not Scalar's AI agent.
 */
import { Router } from 'express';
import { openApiDocument } from '../openapi';

/** The Scalar bundle the page loads, as the npm package ships it. */
const SCALAR_BUNDLE = require.resolve('@scalar/api-reference/browser/standalone.js');

/** The reference page: Scalar renders /v1/openapi.json; its default fonts (a CDN) and its AI agent (Scalar's servers) are off. */
const REFERENCE_PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Gantry API reference</title>
  </head>
  <body>
    <div id="app"></div>
    <script src="/docs/standalone.js"></script>
    <script>
      Scalar.createApiReference('#app', {
        url: '/v1/openapi.json',
        withDefaultFonts: false,
        agent: { disabled: true },
        showDeveloperTools: 'never',
        hideDownloadButton: false,
        persistAuth: false,
      });
    </script>
  </body>
</html>
`;

/** GET /v1/openapi.json, /docs and /docs/standalone.js. */
export function docsRoutes(): Router {
  const router = Router();
  const document = JSON.stringify(openApiDocument());
  router.get('/v1/openapi.json', (_req, res) => {
    res.type('application/json').send(document);
  });
  router.get('/docs', (_req, res) => {
    res.setHeader('Cache-Control', 'no-cache');
    res.type('text/html').send(REFERENCE_PAGE);
  });
  router.get('/docs/standalone.js', (_req, res) => {
    res.sendFile(SCALAR_BUNDLE, { headers: { 'Content-Type': 'application/javascript; charset=utf-8' }, maxAge: '1d' });
  });
  return router;
}
