/**
 * The dashboard: its page at `/` and its bundled assets under `/dashboard/`, served without an
 * API key (the page signs in with one and sends it on every API call). No API route starts with
 * either path.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import express, { Router } from 'express';

/** The path prefix of the dashboard's assets (Vite's `base`). */
export const DASHBOARD_BASE = '/dashboard/';

/** Serves the dashboard built into `dir`, or says how to build it. */
export function dashboardRoutes(dir: string): Router {
  const router = Router();
  const index = path.join(dir, 'index.html');
  router.get('/', (_req, res) => {
    if (!fs.existsSync(index)) {
      res.status(503).type('text/plain').send(`the dashboard is not built: run npm run build (it bundles dashboard/ into ${dir})\n`);
      return;
    }
    // The page names its assets by content hash: the page itself is always asked for again.
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(index);
  });
  router.use(DASHBOARD_BASE, express.static(dir, { index: false, fallthrough: false, immutable: true, maxAge: '1y' }));
  return router;
}
