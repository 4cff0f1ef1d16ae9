/**
 * Issue 19 (findings 9, 10, 12) on qemu:///system through the CLI, in one file so the suite builds
 * dist/ once (each test file would run tsc again): a git checkout is a sandbox, what validates can
 * apply, output hygiene. The cases live in the `*.cases.ts` files beside this one.
 */
import './git-sandbox.cases.js';
import './validates-applies.cases.js';
import './output-hygiene.cases.js';
