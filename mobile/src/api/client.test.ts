import { checkConnection, detectEmotions, getModel, normalizeBaseUrl } from './client';
import { ApiError } from './errors';
import { fakeFetch, recorded, responseOf } from '../testing/network';

const BASE = 'http://127.0.0.1:8000';
const photo = { uri: 'file:///tmp/photo.jpg' };
const noSleep = jest.fn(async () => {});

function config(fetchImpl: typeof fetch, extra = {}) {
  return { baseUrl: BASE, fetchImpl, sleep: noSleep, ...extra };
}

async function failure(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ApiError);
    return error as ApiError;
  }
  throw new Error('expected the request to fail');
}

beforeEach(() => noSleep.mockClear());

describe('detectEmotions', () => {
  it('posts the photo as multipart field "image" and returns the typed answer', async () => {
    const fetchImpl = fakeFetch({ 'POST /v1/emotions': recorded.astronaut });
    const result = await detectEmotions(photo, config(fetchImpl), { threshold: 0.4 });

    expect(fetchImpl).toHaveBeenCalledTimes(1);
    const [url, init = {}] = fetchImpl.mock.calls[0];
    expect(url).toBe(`${BASE}/v1/emotions`);
    expect(init.method).toBe('POST');
    const form = init.body as FormData;
    expect(form).toBeInstanceOf(FormData);
    const parts = (form as unknown as { getParts(): { fieldName: string; uri?: string; string?: string }[] }).getParts();
    expect(parts.map((p) => p.fieldName)).toEqual(['image', 'threshold']);
    expect(parts[0].uri).toBe(photo.uri);
    expect(parts[1].string).toBe('0.4');

    expect(result.faces).toHaveLength(1);
    expect(result.faces[0].label).toBe('happy');
    expect(result.faces[0].box).toEqual([175, 64, 99, 99]);
    expect(result.model.labels).toEqual(['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral']);
  });

  it('passes a custom label set through unchanged', async () => {
    const fetchImpl = fakeFetch({ 'POST /v1/emotions': recorded.custom });
    const result = await detectEmotions(photo, config(fetchImpl));
    expect(result.model.labels).toEqual(['calm', 'tense', 'smiling']);
    expect(Object.keys(result.faces[0].scores)).toEqual(['calm', 'tense', 'smiling']);
  });

  it.each([
    ['error400', 400, 'bad_request', /rejected the request.*unknown form field/],
    ['error413', 413, 'too_large', /too large.*10 MB limit.*smaller photo/],
    ['error415', 415, 'unsupported', /cannot read this kind of file.*JPEG, PNG or WebP/],
    ['error422', 422, 'unreadable', /could not be decoded.*truncated or corrupt/],
  ])('turns the recorded %s into a clear message, without retrying', async (name, status, kind, message) => {
    const fetchImpl = fakeFetch({ 'POST /v1/emotions': recorded[name] });
    const error = await failure(detectEmotions(photo, config(fetchImpl)));
    expect(error.status).toBe(status);
    expect(error.kind).toBe(kind);
    expect(error.code).toBe((recorded[name].body as { error: { code: string } }).error.code);
    expect(error.message).toMatch(message);
    expect(fetchImpl).toHaveBeenCalledTimes(1);
  });

  it('retries a busy service (503), waiting as Retry-After says, then succeeds', async () => {
    const fetchImpl = fakeFetch({ 'POST /v1/emotions': [recorded.error503, recorded.astronaut] });
    const result = await detectEmotions(photo, config(fetchImpl));
    expect(result.faces[0].label).toBe('happy');
    expect(fetchImpl).toHaveBeenCalledTimes(2);
    expect(noSleep).toHaveBeenCalledWith(1000);
  });

  it('gives up on a 5xx after the retries with a message saying so', async () => {
    const fetchImpl = fakeFetch({ 'POST /v1/emotions': recorded.error503 });
    const error = await failure(detectEmotions(photo, config(fetchImpl, { retries: 2 })));
    expect(fetchImpl).toHaveBeenCalledTimes(3);
    expect(error.kind).toBe('server');
    expect(error.message).toMatch(/service had a problem \(HTTP 503\).*busy.*Try again/);
  });

  it('does not retry a 500 and shows it plainly, even when the body is not JSON', async () => {
    const fetchImpl = jest.fn(async () => responseOf({ status: 500, text: '<html>Internal Server Error</html>' }));
    const error = await failure(detectEmotions(photo, config(fetchImpl as unknown as typeof fetch)));
    expect(fetchImpl).toHaveBeenCalledTimes(1);
    expect(error.message).toBe('The service had a problem (HTTP 500). Try again in a moment.');
  });

  it('retries when there is no network, with growing waits, then says it cannot reach the service', async () => {
    const fetchImpl = fakeFetch({ 'POST /v1/emotions': new TypeError('Network request failed') });
    const error = await failure(detectEmotions(photo, config(fetchImpl, { retries: 2, backoffMs: 100 })));
    expect(fetchImpl).toHaveBeenCalledTimes(3);
    expect(noSleep.mock.calls).toEqual([[100], [200]]);
    expect(error.kind).toBe('network');
    expect(error.message).toBe(`Cannot reach the service at ${BASE}. Check your connection and the address in Settings.`);
  });

  it('recovers when the network comes back within the retries', async () => {
    const fetchImpl = fakeFetch({ 'POST /v1/emotions': [new TypeError('Network request failed'), recorded.noface] });
    const result = await detectEmotions(photo, config(fetchImpl));
    expect(result.faces).toEqual([]);
  });

  it('aborts a request that takes longer than the timeout', async () => {
    const fetchImpl = fakeFetch({ 'POST /v1/emotions': 'hang' });
    const error = await failure(detectEmotions(photo, config(fetchImpl, { timeoutMs: 30, retries: 1 })));
    expect(fetchImpl).toHaveBeenCalledTimes(2);
    expect(error.kind).toBe('timeout');
    expect(error.message).toBe(`The service at ${BASE} did not answer within 0.03 s. Try again later.`);
  });

  it('rejects an answer that is not a nasfer response', async () => {
    const html = jest.fn(async () => responseOf({ status: 200, text: '<!doctype html><title>router</title>' }));
    let error = await failure(detectEmotions(photo, config(html as unknown as typeof fetch)));
    expect(error.kind).toBe('invalid_response');
    expect(error.message).toMatch(/not what a nasfer service sends.*without JSON/);

    const wrong = jest.fn(async () => responseOf({ status: 200, text: '{"faces": [{"box": [1, 2]}]}' }));
    error = await failure(detectEmotions(photo, config(wrong as unknown as typeof fetch)));
    expect(error.message).toMatch(/faces\[0\]\.box is not \[x, y, w, h\]/);
  });
});

describe('checkConnection', () => {
  it('asks /healthz, then /v1/model, and returns the card', async () => {
    const fetchImpl = fakeFetch({ 'GET /healthz': recorded.healthz, 'GET /v1/model': recorded.model });
    const card = await checkConnection(config(fetchImpl));
    expect(fetchImpl.mock.calls.map(([url]) => url)).toEqual([`${BASE}/healthz`, `${BASE}/v1/model`]);
    expect(card.name).toBe('nasfer-vgg32x2-long-tta');
    expect(card.labels).toHaveLength(7);
  });

  it('reports a service that does not answer', async () => {
    const fetchImpl = fakeFetch({ 'GET /healthz': new TypeError('Network request failed') });
    const error = await failure(checkConnection(config(fetchImpl, { retries: 0 })));
    expect(error.kind).toBe('network');
  });

  it('reads a custom model card', async () => {
    const card = await getModel(config(fakeFetch({ 'GET /v1/model': recorded.modelCustom })));
    expect(card.labels).toEqual(['calm', 'tense', 'smiling']);
  });
});

describe('normalizeBaseUrl', () => {
  it.each([
    ['  http://127.0.0.1:8000/ ', 'http://127.0.0.1:8000'],
    ['192.168.1.20:8000', 'http://192.168.1.20:8000'],
    ['HTTPS://nasfer.example.org/api//', 'https://nasfer.example.org/api'],
  ])('%s -> %s', (text, url) => expect(normalizeBaseUrl(text)).toBe(url));

  it.each(['', '   ', 'ftp://host', 'http://', 'http://bad host'])('rejects %j with a clear message', (text) => {
    expect(() => normalizeBaseUrl(text)).toThrow(ApiError);
  });
});
