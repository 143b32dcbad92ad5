/**
 * The service address as a person types it, made canonical and checked before anything is sent.
 *
 * Without a scheme the address gets `https://`, except for hosts on the local network (localhost,
 * 127.x, 10.x, 172.16-31.x, 192.168.x, 169.254.x, *.local, IPv6 loopback, link-local and unique
 * local addresses), where `nasfer serve` usually runs without TLS and `http://` is kept. A photo is
 * therefore never sent in plain text over the internet unless the address says `http://` itself.
 */
import { ApiError } from './errors';

const EXAMPLE = 'https://nasfer.example.org';

function invalid(message: string): never {
  throw new ApiError('invalid_url', message);
}

function ipv4Parts(host: string): number[] | null {
  if (!/^[\d.]+$/.test(host)) return null;
  return host.split('.').map((part) => (/^\d{1,3}$/.test(part) ? Number(part) : NaN));
}

/** A host name or IP address is usable as typed; throws ApiError('invalid_url') saying what is wrong. */
function checkHost(host: string, typed: string): void {
  if (host.startsWith('[')) {
    if (!/^\[[0-9a-f:.]*:[0-9a-f:.]*(%25[\w.~-]+)?\]$/i.test(host)) {
      invalid(`"${host}" in "${typed}" is not a valid IPv6 address.`);
    }
    return;
  }
  const numbers = ipv4Parts(host);
  if (numbers) {
    if (numbers.length !== 4 || numbers.some((n) => !(n <= 255))) {
      invalid(`"${host}" is not a valid IP address: it needs four numbers from 0 to 255 separated by dots, e.g. 192.168.1.20.`);
    }
    return;
  }
  const labels = host.replace(/\.$/, '').split('.');
  if (!labels.every((label) => /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$/i.test(label))) {
    invalid(
      `"${host}" is not a valid host name or IP address: only letters, digits, "-" and "." may appear in it. ` +
        'Check for a typo such as a comma instead of a dot.',
    );
  }
}

/** Whether `host` (lower case; IPv6 in brackets) is on the local network, where plain http is usual. */
export function isLocalNetworkHost(host: string): boolean {
  if (host === 'localhost' || host.endsWith('.localhost') || host.endsWith('.local') || host.endsWith('.local.')) return true;
  if (host.startsWith('[')) {
    const ip = host.slice(1, -1).replace(/%25.*$/, '');
    return ip === '::1' || /^fe[89ab][0-9a-f]?:/.test(ip) || /^f[cd][0-9a-f]{0,2}:/.test(ip);
  }
  const n = ipv4Parts(host);
  if (!n || n.length !== 4) return false;
  return n[0] === 127 || n[0] === 10 || (n[0] === 172 && n[1] >= 16 && n[1] <= 31) || (n[0] === 192 && n[1] === 168)
    || (n[0] === 169 && n[1] === 254);
}

/**
 * The service address as typed by a person, made canonical: trimmed; `https://` added when no scheme
 * is given (`http://` for a local network host, see isLocalNetworkHost); scheme and host in lower case;
 * repeated and trailing slashes removed. Throws ApiError('invalid_url'), with a message saying what to
 * fix, when it is not a well-formed http(s) address.
 */
export function normalizeBaseUrl(text: string): string {
  const typed = text.trim();
  if (!typed) invalid(`Enter the address of the nasfer service, e.g. ${EXAMPLE}`);
  if (/\s/.test(typed)) invalid(`"${typed}" contains a space; an address such as ${EXAMPLE} has none.`);

  let scheme: string | undefined;
  let rest = typed;
  const withScheme = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(typed);
  if (withScheme) {
    scheme = withScheme[1].toLowerCase();
    rest = withScheme[2];
    if (scheme !== 'http' && scheme !== 'https') invalid(`"${typed}" is not an http(s) address such as ${EXAMPLE}`);
  } else if (/^https?(:|\/)/i.test(typed)) {
    invalid(`"${typed}" is not a valid address: write its start as http:// or https://, with a colon and two slashes.`);
  }

  const split = /^([^/?#]*)([^?#]*)([?#].*)?$/.exec(rest)!;
  const [, authority, rawPath, extra] = split;
  if (extra) invalid(`"${typed}" has a "${extra[0]}" part; enter only the service's address, e.g. ${EXAMPLE}`);
  if (!authority) invalid(`"${typed}" has no host name; enter an address such as ${EXAMPLE}`);
  if (authority.includes('@')) invalid(`"${typed}" contains "@"; enter only the service's host name and port, e.g. ${EXAMPLE}`);

  const hostPort = /^(\[[^\]]*\]|[^:[\]]*)(?::(\d*))?$/.exec(authority);
  if (!hostPort || !hostPort[1]) invalid(`"${authority}" is not a valid host name and port, e.g. nasfer.example.org or 192.168.1.20:8000`);
  const host = hostPort[1].toLowerCase();
  const port = hostPort[2];
  checkHost(host, typed);
  if (port !== undefined && !(/^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)) {
    invalid(`"${authority}" has no valid port after ":": it must be a number from 1 to 65535, e.g. 192.168.1.20:8000`);
  }

  scheme ??= isLocalNetworkHost(host) ? 'http' : 'https';
  const path = rawPath.replace(/\/{2,}/g, '/').replace(/\/+$/, '');
  return `${scheme}://${host}${port !== undefined ? `:${port}` : ''}${path}`;
}
