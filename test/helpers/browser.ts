import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';

const root = path.resolve(import.meta.dirname, '..', '..');

/** Where the browser tests put their screenshots and measurements (gitignored). */
export const ARTIFACTS = path.join(root, 'test-artifacts', 'browser');

/** CHROMIUM_PATH when set (and only it), else Debian's chromium; undefined when there is none. */
export function findChromium(): string | undefined {
  const asked = process.env['CHROMIUM_PATH'];
  const candidates = asked ? [asked] : ['/usr/bin/chromium', '/usr/bin/chromium-browser'];
  return candidates.find((p) => fs.existsSync(p));
}

/** Headless chromium with no sandbox and nothing that reaches the network on its own. */
export async function launchChromium(executablePath: string): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-default-apps',
      '--disable-sync',
      '--disable-extensions',
      '--no-first-run',
      '--no-default-browser-check',
      '--metrics-recording-only',
      '--disable-domain-reliability',
      '--disable-breakpad',
    ],
  });
}

/** Builds web/ with Vite into `outDir`, from the current sources of the page and the built library. */
export async function buildWeb(outDir: string): Promise<void> {
  if (!fs.existsSync(path.join(root, 'dist', 'universal.js'))) throw new Error('dist/universal.js is missing: run npm run build first');
  const { build } = await import('vite');
  await build({ configFile: path.join(root, 'web', 'vite.config.ts'), build: { outDir, emptyOutDir: true }, logLevel: 'warn' });
}

/** `reptile serve --port 0 --dir DIR` (and `args`), the CLI itself, until `stop`. */
export async function startServe(dir: string, args: readonly string[] = [], env: Record<string, string> = {}): Promise<{ url: string; stop: () => Promise<void> }> {
  const child: ChildProcess = spawn(process.execPath, [path.join(root, 'dist', 'cli', 'main.js'), 'serve', '--port', '0', '--dir', dir, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`reptile serve did not start: ${out}${err}`)), 60_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /at (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.stderr!.on('data', (d: Buffer) => void (err += d.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`reptile serve exited with ${code}: ${out}${err}`));
    });
  });
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/**
 * Builds web/, serves it with `reptile serve`, and opens a page in Chromium whose requests may go
 * only to that server: every other request is aborted and listed in `outside` (no CDN, no network).
 */
export async function openServedPage(chromiumPath: string, viewport: { width: number; height: number }, tempRoot: string, serveArgs: readonly string[] = []): Promise<{ browser: Browser; page: Page; server: { url: string; stop: () => Promise<void> }; outside: string[]; out: string }> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const out = path.join(tempRoot, 'dist');
  await buildWeb(out);
  const server = await startServe(out, serveArgs);
  const browser = await launchChromium(chromiumPath);
  const context = await browser.newContext({ viewport });
  const outside: string[] = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(server.url)) return route.continue();
    outside.push(url);
    return route.abort();
  });
  const page = await context.newPage();
  return { browser, page, server, outside, out };
}
