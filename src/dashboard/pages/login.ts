/** The login form: the token is exchanged once for a session cookie (`POST /api/v1/session`). */
import { html, type SafeHtml } from './html.js';

export function loginMain(o: { failed?: boolean } = {}): SafeHtml {
  return html`<h1>Sign in</h1>
<p>This dashboard listens on a non-loopback address: give the token of <code>--http-token-file</code>. It is exchanged once for a session cookie.</p>
${o.failed ? html`<p class="notice bad-notice" role="alert" id="login-error">That token was refused.</p>` : ''}
<form class="login card" method="post" action="/api/v1/session">
<div class="field"><label for="token">Access token</label><input id="token" name="token" type="password" autocomplete="current-password" required${o.failed ? html` aria-describedby="login-error" aria-invalid="true"` : ''}></div>
<div class="buttons"><button type="submit">Sign in</button></div>
</form>`;
}

export function errorMain(status: number, message: string): SafeHtml {
  return html`<h1>${status === 404 ? 'Not found' : status === 400 ? 'Bad request' : 'Error'}</h1>
<p class="notice bad-notice" id="error-message">${message}</p>
<p><a href="/">Back to the overview</a></p>`;
}
