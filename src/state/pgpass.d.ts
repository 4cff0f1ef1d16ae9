// pgpass (the reader of PostgreSQL's password file that pg itself uses) ships no types.
declare module 'pgpass' {
  function pgpass(
    conn: { host?: string; port?: string | number; database?: string; user?: string },
    cb: (password: string | undefined) => void,
  ): void;
  export default pgpass;
}
