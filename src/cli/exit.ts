/** The CLI's exit codes (documented in `main.ts`); a module of its own so `main.ts` loads nothing else for them. */
export const EXIT = { ok: 0, failure: 1, invalid: 2, changes: 3 } as const;
