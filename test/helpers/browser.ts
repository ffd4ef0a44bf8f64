/** A real headless Chromium for end-to-end tests: the binary the npm package @sparticuz/chromium ships, driven by playwright-core. */
import chromium from '@sparticuz/chromium';
import { chromium as playwright, type Browser } from 'playwright-core';

/** Unpacks (once) and launches the packaged Chromium. */
export async function launchBrowser(): Promise<Browser> {
  return playwright.launch({ executablePath: await chromium.executablePath(), args: chromium.args, headless: true });
}
