import { checkConnection, detectEmotions, getHealth, getModel, MAX_RETRY_AFTER_MS, UPLOAD_TIMEOUT_MS } from './client';
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

  it('aborts an upload that takes longer than the timeout, and does not send the photo again', async () => {
    const fetchImpl = fakeFetch({ 'POST /v1/emotions': 'hang' });
    const error = await failure(detectEmotions(photo, config(fetchImpl, { timeoutMs: 30, retries: 2 })));
    expect(fetchImpl).toHaveBeenCalledTimes(1);
    expect(error.kind).toBe('timeout');
    expect(error.message).toBe(`The service at ${BASE} did not answer within 0.03 s. Try again later.`);
  });

  it("waits for an upload's answer longer than the service waits for a free model (30 s) or the upload (60 s)", async () => {
    jest.useFakeTimers();
    try {
      const fetchImpl = fakeFetch({ 'POST /v1/emotions': 'hang' });
      let settled: unknown;
      const request = detectEmotions(photo, { baseUrl: BASE, fetchImpl }).then((r) => (settled = r), (e) => (settled = e));
      await jest.advanceTimersByTimeAsync(61_000);
      expect(settled).toBeUndefined(); // the service answers 503 after 30 s, 408 after 60 s: still waiting
      await jest.advanceTimersByTimeAsync(UPLOAD_TIMEOUT_MS - 61_000);
      await request;
      expect((settled as ApiError).kind).toBe('timeout');
      expect((settled as ApiError).message).toMatch(/did not answer within 75 s/);
      expect(fetchImpl).toHaveBeenCalledTimes(1);
    } finally {
      jest.useRealTimers();
    }
  });

  it('retries a GET that timed out (nothing is sent twice but a question)', async () => {
    const fetchImpl = fakeFetch({ 'GET /v1/model': ['hang', recorded.model] });
    const card = await getModel(config(fetchImpl, { timeoutMs: 30, retries: 1 }));
    expect(card.name).toBe('nasfer-vgg32x3-long-tta');
    expect(fetchImpl).toHaveBeenCalledTimes(2);
  });

  it('does not send the photo again after a 502 or 504 (the service may have got it)', async () => {
    for (const status of [502, 504]) {
      const fetchImpl = fakeFetch({ 'POST /v1/emotions': [{ status, headers: {}, body: null }, recorded.astronaut] });
      const error = await failure(detectEmotions(photo, config(fetchImpl)));
      expect(error.message).toBe(`The service had a problem (HTTP ${status}). Try again in a moment.`);
      expect(fetchImpl).toHaveBeenCalledTimes(1);
    }
  });

  it('leaves a Retry-After longer than it waits by itself to the person', async () => {
    const busy = { ...recorded.error503, headers: { ...recorded.error503.headers, 'retry-after': '120' } };
    const fetchImpl = fakeFetch({ 'POST /v1/emotions': [busy, recorded.astronaut] });
    const error = await failure(detectEmotions(photo, config(fetchImpl)));
    expect(fetchImpl).toHaveBeenCalledTimes(1);
    expect(noSleep).not.toHaveBeenCalled();
    expect(error.status).toBe(503);
    expect(error.transient).toBe(true);
    expect(MAX_RETRY_AFTER_MS).toBeLessThan(120_000);
  });

  it('waits out a Retry-After of a few seconds in full', async () => {
    const busy = { ...recorded.error503, headers: { ...recorded.error503.headers, 'retry-after': '7' } };
    const fetchImpl = fakeFetch({ 'POST /v1/emotions': [busy, recorded.astronaut] });
    await detectEmotions(photo, config(fetchImpl));
    expect(noSleep.mock.calls).toEqual([[7000]]);
  });

  it('can be cancelled while waiting for the answer, and then sends nothing more', async () => {
    const fetchImpl = fakeFetch({ 'POST /v1/emotions': 'hang' });
    const controller = new AbortController();
    const request = failure(detectEmotions(photo, config(fetchImpl, { signal: controller.signal })));
    while (!fetchImpl.mock.calls.length) await new Promise((resolve) => setTimeout(resolve, 1));
    controller.abort();
    const error = await request;
    expect(error.kind).toBe('cancelled');
    expect(error.message).toBe('Sending was cancelled.');
    expect(fetchImpl).toHaveBeenCalledTimes(1);
    expect((fetchImpl.mock.calls[0][1]?.signal as AbortSignal).aborted).toBe(true);
  });

  it('can be cancelled while waiting to retry a busy service', async () => {
    const controller = new AbortController();
    const sleep = jest.fn(() => new Promise<void>(() => controller.abort()));
    const fetchImpl = fakeFetch({ 'POST /v1/emotions': [recorded.error503, recorded.astronaut] });
    const error = await failure(detectEmotions(photo, config(fetchImpl, { signal: controller.signal, sleep })));
    expect(error.kind).toBe('cancelled');
    expect(fetchImpl).toHaveBeenCalledTimes(1);
  });

  it('rejects an answer that is not a nasfer response', async () => {
    const text = jest.fn(async () => responseOf({ status: 200, text: 'OK' }));
    let error = await failure(detectEmotions(photo, config(text as unknown as typeof fetch)));
    expect(error.kind).toBe('invalid_response');
    expect(error.message).toMatch(/not what a nasfer service sends.*without JSON/);

    const wrong = jest.fn(async () => responseOf({ status: 200, text: '{"faces": [{"box": [1, 2]}]}' }));
    error = await failure(detectEmotions(photo, config(wrong as unknown as typeof fetch)));
    expect(error.message).toMatch(/faces\[0\]\.box is not \[x, y, w, h\]/);
  });

  it.each([
    [200, '<!doctype html><title>router</title>', {}],
    [404, '<html><body>Not Found</body></html>', { 'Content-Type': 'text/html' }],
    [501, '<!DOCTYPE HTML><title>Error response</title><p>Unsupported method (\'POST\')', { 'Content-Type': 'text/html;charset=utf-8' }],
  ])('says that a web page answering HTTP %i is probably not a nasfer service', async (status, text, headers) => {
    const fetchImpl = jest.fn(async () => responseOf({ status, text, headers }));
    const error = await failure(detectEmotions(photo, config(fetchImpl as unknown as typeof fetch)));
    expect(error.kind).toBe('not_service');
    expect(error.transient).toBe(false);
    expect(error.message).toBe(
      `The address in Settings (${BASE}) is probably not a nasfer service: it answered HTTP ${status} with a web page. Check the address in Settings.`,
    );
    expect(fetchImpl).toHaveBeenCalledTimes(1);
  });

  it.each([405, 501])('says that an HTTP %i is probably not a nasfer service, whatever the body', async (status) => {
    const fetchImpl = jest.fn(async () => responseOf({ status, text: '' }));
    const error = await failure(detectEmotions(photo, config(fetchImpl as unknown as typeof fetch)));
    expect(error.kind).toBe('not_service');
    expect(error.message).toBe(`The address in Settings is probably not a nasfer service: it answered HTTP ${status}. Check the address in Settings.`);
  });

  it("keeps a gateway's HTML error page a service problem", async () => {
    const fetchImpl = jest.fn(async () => responseOf({ status: 502, text: '<html>Bad Gateway</html>', headers: { 'Content-Type': 'text/html' } }));
    const error = await failure(detectEmotions(photo, config(fetchImpl as unknown as typeof fetch)));
    expect(error.message).toBe('The service had a problem (HTTP 502). Try again in a moment.');
  });
});

describe('redirects', () => {
  it('are not followed by an upload: a browser reports them as opaque and nothing is sent again', async () => {
    const fetchImpl = fakeFetch({ 'POST /v1/emotions': { status: 0, headers: {}, body: null, type: 'opaqueredirect' } });
    const error = await failure(detectEmotions(photo, config(fetchImpl)));
    expect(fetchImpl.mock.calls[0][1]?.redirect).toBe('manual');
    expect(fetchImpl).toHaveBeenCalledTimes(1);
    expect(error.kind).toBe('redirect');
    expect(error.transient).toBe(false);
    expect(error.message).toBe(
      `The service at ${BASE} redirects to another address. Enter the service's https:// address in Settings: ` +
        'the app does not follow redirects, so photos go only to the address you set.',
    );
  });

  it('are refused where the platform followed them anyway (the POST turned into a GET and got 405)', async () => {
    const fetchImpl = fakeFetch({
      'POST /v1/emotions': {
        status: 405, headers: {}, body: { error: { code: 'method_not_allowed', message: 'use POST' } },
        url: 'https://nasfer.example.org/v1/emotions', redirected: true,
      },
    });
    const error = await failure(detectEmotions(photo, config(fetchImpl, { baseUrl: 'http://nasfer.example.org' })));
    expect(error.kind).toBe('redirect');
    expect(error.message).toMatch(/^The service at http:\/\/nasfer\.example\.org redirects to https:\/\/nasfer\.example\.org\. Enter https:\/\/nasfer\.example\.org in Settings/);
  });

  it('fail the connection check already, before any photo is sent', async () => {
    const fetchImpl = fakeFetch({
      'GET /healthz': { status: 301, headers: { location: 'https://nasfer.example.org/healthz' }, body: null },
      'GET /v1/model': recorded.model,
    });
    const error = await failure(checkConnection(config(fetchImpl, { baseUrl: 'http://nasfer.example.org' })));
    expect(error.kind).toBe('redirect');
    expect(error.message).toMatch(/Enter https:\/\/nasfer\.example\.org in Settings/);
    expect(fetchImpl).toHaveBeenCalledTimes(1);
  });

  it('are not mistaken in the final URL a platform reports in its own spelling', async () => {
    const fetchImpl = fakeFetch({ 'GET /healthz': { ...recorded.healthz, url: 'HTTP://Nasfer.example.org:80/healthz' } });
    await expect(getHealth(config(fetchImpl, { baseUrl: 'http://nasfer.example.org' }))).resolves.toEqual({ status: 'ok' });
  });
});

describe('checkConnection', () => {
  it('asks /healthz, then /v1/model, and returns the card', async () => {
    const fetchImpl = fakeFetch({ 'GET /healthz': recorded.healthz, 'GET /v1/model': recorded.model });
    const card = await checkConnection(config(fetchImpl));
    expect(fetchImpl.mock.calls.map(([url]) => url)).toEqual([`${BASE}/healthz`, `${BASE}/v1/model`]);
    expect(card.name).toBe('nasfer-vgg32x3-long-tta');
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
