import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { reptile } from './helpers/cli.js';
import { startServe } from './helpers/browser.js';
import { tempDir } from './helpers/fixtures.js';

describe('reptile serve', () => {
  it('serves a directory read-only, with index.html for /, and nothing outside it', async () => {
    const parent = tempDir();
    const dir = path.join(parent, 'site');
    fs.mkdirSync(path.join(dir, 'models'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'index.html'), '<p>hello</p>');
    fs.writeFileSync(path.join(dir, 'models', 'w.bin'), Buffer.from([1, 2, 3]));
    fs.writeFileSync(path.join(parent, 'secret.txt'), 'outside');
    const server = await startServe(dir);
    try {
      const index = await fetch(server.url);
      expect(index.status).toBe(200);
      expect(index.headers.get('content-type')).toMatch(/text\/html/);
      expect(await index.text()).toBe('<p>hello</p>');
      // Cross-origin isolated, so that a page may share memory with its workers (threads).
      expect(index.headers.get('cross-origin-opener-policy')).toBe('same-origin');
      expect(index.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
      const bin = await fetch(`${server.url}models/w.bin`);
      expect(Buffer.from(await bin.arrayBuffer())).toEqual(Buffer.from([1, 2, 3]));
      expect(bin.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
      expect((await fetch(`${server.url}%2e%2e/secret.txt`)).status).toBe(404);
      expect((await fetch(`${server.url}missing.js`)).status).toBe(404);
      expect((await fetch(server.url, { method: 'POST' })).status).toBe(405);
    } finally {
      await server.stop();
    }
  });

  it('says in one line what to do when there is nothing to serve', () => {
    const r = reptile(['serve', '--dir', tempDir()]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/has no index\.html: point --dir at a built demo directory/);
  });
});
