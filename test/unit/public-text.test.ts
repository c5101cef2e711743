import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PUBLIC_TEXT_PATTERNS, publicText, publicValue } from '../../src/net/public-text.js';
import { Worker } from 'node:worker_threads';

describe('publicText', () => {
  it('cuts URLs to scheme and host and drops query strings', () => {
    expect(publicText('metal-api POST http://metal-api.internal:8080/v1/machine/ipmi?x=1: HTTP 500')).toBe('metal-api POST http://metal-api.internal:8080: HTTP 500');
    expect(publicText('image download https://user:pw@images.example.org/bios.bin?token=s3cr3t: HTTP 404')).toBe('image download https://images.example.org: HTTP 404');
    expect(publicText('POST /redfish/v1/UpdateService?sig=abc&x=y failed')).toBe('POST /redfish/v1/UpdateService failed');
    expect(publicText('why? because 1 = 1')).toBe('why? because 1 = 1');
  });

  it('no query value and no URL path survive, whatever the URL (property)', () => {
    fc.assert(
      fc.property(fc.webUrl({ withQueryParameters: true, withFragments: true }), fc.string({ maxLength: 20 }), (url, text) => {
        const u = new URL(url);
        const out = publicText(`failed: ${url} ${text.replace(/[?:/]/g, '')}`);
        expect(out).toContain(`${u.protocol}//`);
        if (u.search.length > 1) expect(out).not.toContain(u.search);
        if (u.pathname.length > 1) expect(out).not.toContain(`${u.host}${u.pathname}`);
      }),
    );
  });

  it('publicValue keeps the path of named keys (the firmware image) but drops their query', () => {
    const v = publicValue({ error: 'GET https://h/p?t=1 failed', job: { image: 'https://images/bios.bin?sig=x' } }, new Set(['image']));
    expect(v).toEqual({ error: 'GET https://h failed', job: { image: 'https://images/bios.bin' } });
  });
});

describe('publicText on hostile text (an event\'s machine id, a BMC address)', () => {
  /** publicText's patterns run over `text` in a worker thread, given up after GIVE_UP_MS: a pass that is not linear over 1 MB never finishes in time */
  const GIVE_UP_MS = 30_000;
  function inWorker(text: string): Promise<number> {
    const code = `const { parentPort, workerData } = require('node:worker_threads'); let n = 0; for (const [src, flags] of workerData.patterns) n += (workerData.text.match(new RegExp(src, flags)) ?? []).length; parentPort.postMessage(n);`;
    const worker = new Worker(code, { eval: true, workerData: { text, patterns: PUBLIC_TEXT_PATTERNS() } });
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`publicText's patterns over ${text.length} characters did not finish in ${GIVE_UP_MS} ms`)), GIVE_UP_MS);
      worker.once('message', (n: number) => (clearTimeout(timer), resolve(n)));
      worker.once('error', (err) => (clearTimeout(timer), reject(err)));
    }).finally(() => void worker.terminate());
  }

  it('takes 1 MB of word boundaries without a scheme in one pass, and still finds a URL after them', async () => {
    const hostile = 'a.'.repeat(512 * 1024);
    const text = `${hostile} https://user:pw@images.example/bios.bin?sig=x`;
    expect(await inWorker(text)).toBe(2); // the URL, and its query
    expect(publicText(text)).toBe(`${hostile} https://images.example`);
  }, 40_000);
});
