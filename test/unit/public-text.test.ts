import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { publicText, publicValue } from '../../src/net/public-text.js';

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
