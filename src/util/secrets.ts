/**
 * Secrets out of anything printed: one function for every way a connection string carries a password.
 * Over-masking is the safe failure: when in doubt, a span is replaced.
 */

export const MASK = '***';

/** Names of parameters whose value is a secret (query strings, key=value DSNs, JDBC URLs). */
const secretKey = /^(password|passwd|pass|pwd|sslpassword|secret|token|api[-_]?key|apikey|access[-_]?token)$/i;

function decodeKey(key: string): string {
  try {
    return decodeURIComponent(key.replace(/\+/g, ' ')).trim();
  } catch {
    return key.trim();
  }
}

/**
 * Mask every password in `text`:
 *   scheme://user:pw@host…            → scheme://user:***@host…   (also jdbc:postgresql://, any scheme)
 *   user:pw@host (no scheme)           → user:***@host
 *   …?password=pw&… / ;password=pw     → password=***               (key names percent-decoded first)
 *   host=h password='p w' user=u (DSN) → password=***
 * plus every literal occurrence of `knownSecrets` (raw and percent-decoded), e.g. the password parsed from
 * DATABASE_URL, wherever a driver's message echoes it.
 */
export function maskSecrets(text: string, knownSecrets: readonly string[] = []): string {
  let out = text;
  // userinfo: from the ':' after the user name to the last '@' before the host. `[^\s]*` is greedy, so a raw '@'
  // inside the password is covered too.
  out = out.replace(
    /([a-z][a-z0-9+.-]*:\/\/|^|[\s"'(=<])([^\s:/?#@"'()<>]*):(?!\/\/)([^\s]*)@(?=[^\s@]*$|[^\s@]*[\s"')>])/gi,
    (_m, lead: string, user: string) => `${lead}${user}:${MASK}@`,
  );
  // key=value pairs in query strings (?, &, ;) and DSNs (whitespace-separated, values possibly quoted). An unquoted
  // value ends at a closing parenthesis or quote, so the message around it survives; `knownSecrets` covers the rest.
  out = out.replace(
    /(^|[?&;\s])([^=&;?\s]+)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^&;\s)"']*)/g,
    (m, lead: string, key: string) => (secretKey.test(decodeKey(key)) ? `${lead}${key}=${MASK}` : m),
  );
  for (const secret of knownSecrets) {
    if (secret.length < 3) continue; // masking "a" everywhere would garble the message and reveal nothing
    for (const form of new Set([secret, safeDecode(secret), encodeURIComponent(safeDecode(secret))])) {
      if (form.length >= 3) out = out.split(form).join(MASK);
    }
  }
  return out;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The password a connection string carries, in every form maskSecrets recognises (for `knownSecrets`). */
export function secretsOf(connection: string | undefined): string[] {
  if (!connection) return [];
  const found: string[] = [];
  const userinfo = /^(?:[a-z][a-z0-9+.-]*:\/\/)?[^\s:/?#@]*:(?!\/\/)([^\s]*)@[^\s@]*$/i.exec(connection.replace(/[?#].*$/, ''));
  if (userinfo) found.push(userinfo[1]);
  for (const m of connection.matchAll(/(?:^|[?&;\s])([^=&;?\s]+)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^&;\s]*)/g)) {
    if (secretKey.test(decodeKey(m[1]))) found.push(m[2].replace(/^['"]|['"]$/g, ''));
  }
  return found.filter((s) => s.length > 0);
}
