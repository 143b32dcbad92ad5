import { isLocalNetworkHost, normalizeBaseUrl } from './address';
import { ApiError } from './errors';

describe('normalizeBaseUrl', () => {
  it.each([
    ['  http://127.0.0.1:8000/ ', 'http://127.0.0.1:8000'],
    ['HTTPS://Nasfer.Example.org/api//', 'https://nasfer.example.org/api'],
    ['https://nasfer.example.org//api//v1/', 'https://nasfer.example.org/api/v1'],
    ['http://nasfer.example.org', 'http://nasfer.example.org'], // a scheme typed is kept
  ])('%j -> %s', (text, url) => expect(normalizeBaseUrl(text)).toBe(url));

  // without a scheme: https, unless the host is on the local network
  it.each([
    ['nasfer.example.org', 'https://nasfer.example.org'],
    ['nasfer.example.org:8443/api/', 'https://nasfer.example.org:8443/api'],
    ['8.8.8.8:8000', 'https://8.8.8.8:8000'],
    ['172.32.0.1:8000', 'https://172.32.0.1:8000'],
    ['192.169.1.20', 'https://192.169.1.20'],
    ['[2001:db8::1]:8000', 'https://[2001:db8::1]:8000'],
    ['192.168.1.20:8000', 'http://192.168.1.20:8000'],
    ['localhost:8000', 'http://localhost:8000'],
    ['127.0.0.1:8765', 'http://127.0.0.1:8765'],
    ['10.0.2.2:8000', 'http://10.0.2.2:8000'],
    ['172.16.0.5', 'http://172.16.0.5'],
    ['172.31.255.1:8000', 'http://172.31.255.1:8000'],
    ['169.254.10.1', 'http://169.254.10.1'],
    ['NasBox.local:8000', 'http://nasbox.local:8000'],
    ['[::1]:8000', 'http://[::1]:8000'],
    ['[fe80::1c2a:3ff:fe4b:5c6d]:8000', 'http://[fe80::1c2a:3ff:fe4b:5c6d]:8000'],
  ])('%s -> %s', (text, url) => expect(normalizeBaseUrl(text)).toBe(url));

  it.each([
    ['', /Enter the address of the nasfer service/],
    ['   ', /Enter the address of the nasfer service/],
    ['ftp://host', /is not an http\(s\) address/],
    ['http://', /has no host name/],
    ['http://bad host', /contains a space/],
    ['http//127.0.0.1:8765', /write its start as http:\/\/ or https:\/\/, with a colon and two slashes/],
    ['https:/nasfer.example.org', /write its start as http:\/\/ or https:\/\//],
    ['http:192.168.1.20:8000', /write its start as http:\/\/ or https:\/\//],
    ['192.168.1,20:8000', /"192\.168\.1,20" is not a valid host name or IP address.*comma instead of a dot/],
    ['192.168.1.300:8000', /"192\.168\.1\.300" is not a valid IP address: it needs four numbers from 0 to 255/],
    ['192.168.1:8000', /"192\.168\.1" is not a valid IP address/],
    ['nasfer.example.org:99999', /no valid port after ":": it must be a number from 1 to 65535/],
    ['nasfer.example.org:', /no valid port/],
    ['nasfer.example.org:80a', /is not a valid host name and port/],
    ['user@nasfer.example.org', /contains "@"/],
    ['https://nasfer.example.org/?x=1', /has a "\?" part/],
    ['[fe80::zz]:8000', /is not a valid IPv6 address/],
  ])('rejects %j with a clear message', (text, message) => {
    let thrown: unknown;
    try {
      normalizeBaseUrl(text);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(ApiError);
    expect((thrown as ApiError).kind).toBe('invalid_url');
    expect((thrown as ApiError).message).toMatch(message);
  });
});

describe('isLocalNetworkHost', () => {
  it.each(['localhost', 'dev.localhost', 'printer.local', '127.5.0.1', '10.1.2.3', '172.16.0.1', '172.31.0.1',
    '192.168.0.1', '169.254.1.1', '[::1]', '[fe80::1]', '[fd12:3456::1]'])('%s is local', (host) => {
    expect(isLocalNetworkHost(host)).toBe(true);
  });

  it.each(['nasfer.example.org', 'local', 'example.local.org', '172.15.0.1', '172.32.0.1', '192.167.1.1', '11.0.0.1',
    '8.8.8.8', '[2001:db8::1]', '[::ffff:8.8.8.8]'])('%s is not local', (host) => {
    expect(isLocalNetworkHost(host)).toBe(false);
  });
});
