import { describe, expect, it } from 'vitest';
import { redirectRefusal } from '../../../src/reconcile/images.js';

describe('redirect targets are checked against the policy before they are requested', () => {
  const u = (s: string): URL => new URL(s);
  it('urlHosts (exact and *.suffix), the scheme, and no https → http downgrade', () => {
    const rules = { urlHosts: ['127.0.0.1', '*.example.org'], policyFile: '/etc/virtform/policy.yaml' };
    expect(redirectRefusal(u('http://127.0.0.1/a'), u('http://127.0.0.1:8080/b'), rules)).toBeUndefined();
    expect(redirectRefusal(u('https://a.example.org/a'), u('https://b.example.org/b'), rules)).toBeUndefined();
    expect(redirectRefusal(u('http://127.0.0.1/a'), u('http://127.0.0.2/b'), rules))
      .toBe('host "127.0.0.2" is not allowed: urlHosts allows 127.0.0.1, *.example.org (policy /etc/virtform/policy.yaml)');
    expect(redirectRefusal(u('https://a.example.org/a'), u('https://example.org.evil.net/b'), rules)).toMatch(/not allowed/);
    expect(redirectRefusal(u('https://a.example.org/a'), u('http://a.example.org/b'), rules)).toMatch(/downgrade/);
    expect(redirectRefusal(u('http://127.0.0.1/a'), u('file:///etc/shadow'), {})).toBe('only http and https are supported, not file');
    expect(redirectRefusal(u('http://127.0.0.1/a'), u('http://anything.example/b'), {})).toBeUndefined(); // no policy: any host
    expect(redirectRefusal(u('http://127.0.0.1/a'), u('http://10.0.0.1/b'), { urlHosts: [] })).toMatch(/urlHosts allows none/);
  });
});
