import { defineConfig } from 'vitest/config';

// `make test-dashboard`: the web dashboard in a real browser (issue 23). Debian's chromium, driven
// by playwright-core (test/dashboard/browser.ts; scripts/setup-browser.sh installs it, only this
// target runs it), against real `virtform watch` processes on the real libvirtd (the browser
// suites) and against the pages rendered from fixtures (test/dashboard/pages*.test.ts). One file
// at a time: each suite starts its own chromium and watcher.
export default defineConfig({
  test: {
    include: ['test/dashboard/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    setupFiles: ['test/support/temp-cleanup.ts'],
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 300_000,
  },
});
