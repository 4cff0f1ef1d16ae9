/** The version `virtform --version` prints (package.json's; test/integration/cli/fast-start.test.ts compares them). */
export const VERSION = '0.1.0';
