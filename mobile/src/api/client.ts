/**
 * The app's one client of the nasfer HTTP API (documented at the service's /openapi.json):
 * POST /v1/emotions (multipart field `image`), GET /v1/model and GET /healthz.
 *
 * Every request has a timeout and can be cancelled (`signal`). A GET that got no answer, or a
 * 429/502/503/504, is tried again with exponential backoff. A POST (the photo) is sent again only when
 * it surely was not processed: after a network failure, or a 429/503 "busy" answer, waiting as
 * Retry-After says; never after a timeout, whose photo the service may still be working on, and
 * never when Retry-After asks for a longer wait than MAX_RETRY_AFTER_MS. The upload's timeout is
 * above the service's own limits (see UPLOAD_TIMEOUT_MS), so the service's clear answer arrives first.
 *
 * Redirects are never followed: an http:// address that redirects to https:// would otherwise pass
 * the GET checks while every upload fails (a redirected POST becomes a GET), after the photo went out
 * in plain text. Failures are thrown as `ApiError` with a message fit to show (see errors.ts).
 */
import { Platform } from 'react-native';

import { normalizeBaseUrl } from './address';
import {
  ApiError, CANCELLED_MESSAGE, httpErrorMessage, invalidResponseMessage, kindOfStatus, networkErrorMessage,
  redirectMessage, timeoutMessage, webPageMessage,
} from './errors';
import type { EmotionOptions, EmotionsResponse, Health, ModelCard } from './types';
import * as validate from './validate';

export { normalizeBaseUrl } from './address';

export interface ClientConfig {
  /** the service's address, e.g. https://nasfer.example.org (see normalizeBaseUrl) */
  baseUrl: string;
  /** milliseconds to wait for each attempt's answer (default DEFAULT_TIMEOUT_MS; uploads UPLOAD_TIMEOUT_MS) */
  timeoutMs?: number;
  /** how many times to try again after a failure worth retrying (default 2) */
  retries?: number;
  /** first backoff delay in ms, doubled after each retry (default 500) */
  backoffMs?: number;
  /** cancels the request (and any retry still to come): it then fails with ApiError('cancelled') */
  signal?: AbortSignal;
  /** injectable for tests; default the global fetch */
  fetchImpl?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
}

/** A photo on the device: a file:, content:, blob: or data: URI, JPEG unless `type` says otherwise. */
export interface Photo {
  uri: string;
  name?: string;
  type?: string;
}

/** Wait for a GET's answer. */
export const DEFAULT_TIMEOUT_MS = 30_000;
/**
 * Wait for the answer to an upload: longer than the service takes to give up by itself, so that its
 * answer (503 busy after `--timeout` 30 s without a free model, 408 after `--read-timeout` 60 s for a
 * slow upload) arrives before the app gives up.
 */
export const UPLOAD_TIMEOUT_MS = 75_000;
export const DEFAULT_RETRIES = 2;
/** The longest Retry-After waited out automatically; a longer one is left to the person. */
export const MAX_RETRY_AFTER_MS = 10_000;
/** Statuses that say "busy, not processed": safe to send even a photo again. */
const BUSY_STATUSES = [429, 503];
/** Statuses worth repeating a GET for. */
const GET_RETRY_STATUSES = [429, 502, 503, 504];

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function retryAfterMs(response: Response): number | undefined {
  const value = response.headers?.get?.('Retry-After');
  const seconds = value ? Number(value) : NaN;
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

function cancelled(): ApiError {
  return new ApiError('cancelled', CANCELLED_MESSAGE);
}

/** `promise`, or ApiError('cancelled') as soon as `signal` aborts. */
function unlessCancelled<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(cancelled());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(cancelled());
    signal.addEventListener('abort', onAbort);
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

interface Failure {
  error: unknown;
  /** the Retry-After of an HTTP answer, in ms */
  retryAfter?: number;
}

/** Whether `failure` of a `method` request is worth sending again by itself, and after how long. */
function retryDelay(method: string, failure: Failure, backoff: number): number | undefined {
  const { error, retryAfter } = failure;
  if (!(error instanceof ApiError)) return undefined;
  if (retryAfter !== undefined && retryAfter > MAX_RETRY_AFTER_MS) return undefined;
  const statuses = method === 'GET' ? GET_RETRY_STATUSES : BUSY_STATUSES;
  const again = error.kind === 'network' || (error.kind === 'timeout' && method === 'GET') || statuses.includes(error.status ?? 0);
  return again ? retryAfter ?? backoff : undefined;
}

/** One request with timeout and retries; resolves with the parsed JSON of a 2xx answer. */
async function requestJson(config: ClientConfig, path: string, init: () => Promise<RequestInit>, defaultTimeoutMs: number): Promise<unknown> {
  const baseUrl = normalizeBaseUrl(config.baseUrl);
  const fetchImpl = config.fetchImpl ?? fetch;
  const sleep = config.sleep ?? defaultSleep;
  const timeoutMs = config.timeoutMs ?? defaultTimeoutMs;
  const retries = config.retries ?? DEFAULT_RETRIES;
  const { signal } = config;
  let backoff = config.backoffMs ?? 500;

  for (let attempt = 0; ; attempt++) {
    if (signal?.aborted) throw cancelled();
    const request = await init();
    const failure: Failure = { error: undefined };
    try {
      return await attemptOnce(fetchImpl, baseUrl, path, request, timeoutMs, signal, (ms) => (failure.retryAfter = ms));
    } catch (error) {
      failure.error = error;
    }
    const wait = retryDelay(request.method ?? 'GET', failure, backoff);
    if (wait === undefined || attempt >= retries) throw failure.error;
    await unlessCancelled(sleep(wait), signal);
    backoff *= 2;
  }
}

/** `url` in lower case, without a default port or trailing slash: for comparing URLs. */
function comparable(url: string): string {
  return url.toLowerCase().replace(/^(http:\/\/[^/]+):80(?=\/|$)/, '$1').replace(/^(https:\/\/[^/]+):443(?=\/|$)/, '$1').replace(/\/+$/, '');
}

/**
 * Whether `response` to a request for `url` is (or followed) a redirect: undefined when not, else the
 * address it leads to with `path` cut off (empty when unknown, e.g. a browser's opaque redirect).
 */
function redirectOf(response: Response, url: string, path: string): string | undefined {
  const type = (response as { type?: string }).type;
  const status = response.status;
  let target: string | null | undefined;
  if (type === 'opaqueredirect' || (status >= 300 && status <= 399)) {
    target = response.headers?.get?.('Location') ?? null;
  } else if (response.redirected || (response.url && comparable(response.url) !== comparable(url))) {
    target = response.url || null;
  } else {
    return undefined;
  }
  if (!target || !/^https?:\/\//i.test(target)) return '';
  return target.endsWith(path) ? target.slice(0, target.length - path.length) : target;
}

function looksLikeWebPage(response: Response, text: string): boolean {
  const type = response.headers?.get?.('Content-Type') ?? '';
  return /text\/html|application\/xhtml/i.test(type) || /^\s*</.test(text);
}

async function attemptOnce(
  fetchImpl: typeof fetch, baseUrl: string, path: string, init: RequestInit, timeoutMs: number,
  signal: AbortSignal | undefined, onRetryAfter: (ms: number | undefined) => void,
): Promise<unknown> {
  if (signal?.aborted) throw cancelled();
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  const cancel = () => controller.abort();
  signal?.addEventListener('abort', cancel);
  const url = `${baseUrl}${path}`;
  let response: Response;
  let text: string;
  try {
    response = await fetchImpl(url, { ...init, redirect: 'manual', signal: controller.signal });
    const target = redirectOf(response, url, path);
    if (target !== undefined) throw new ApiError('redirect', redirectMessage(baseUrl, target || undefined), { status: response.status });
    text = await response.text();
  } catch (error) {
    if (error instanceof ApiError) throw error;
    if (signal?.aborted) throw cancelled();
    throw timedOut
      ? new ApiError('timeout', timeoutMessage(baseUrl, timeoutMs))
      : new ApiError('network', networkErrorMessage(baseUrl));
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', cancel);
  }

  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  const status = response.status;
  const webPage = body === undefined && looksLikeWebPage(response, text);
  // a web server's page, unless it is a gateway's 5xx page or a proxy's 408/413/429 in front of the service
  if (webPage && (status < 500 || status === 501) && ![408, 413, 429].includes(status)) {
    throw new ApiError('not_service', webPageMessage(baseUrl, status), { status });
  }
  if (status < 200 || status > 299) {
    const detail = validate.errorBody(body)?.error;
    onRetryAfter(retryAfterMs(response));
    throw new ApiError(kindOfStatus(status), httpErrorMessage(status, detail?.message), {
      status, code: detail?.code, serverMessage: detail?.message,
    });
  }
  if (body === undefined) {
    throw new ApiError('invalid_response', invalidResponseMessage(baseUrl, `HTTP ${status} without JSON`), { status });
  }
  return body;
}

function checked<T>(baseUrl: string, parse: (value: unknown) => T, value: unknown): T {
  try {
    return parse(value);
  } catch (error) {
    const why = error instanceof validate.Invalid ? error.message : String(error);
    throw new ApiError('invalid_response', invalidResponseMessage(normalizeBaseUrl(baseUrl), why));
  }
}

/** The multipart field `image`: a file reference on Android/iOS, the bytes as a Blob in a browser. */
async function imagePart(photo: Photo): Promise<{ value: Blob; name: string }> {
  const name = photo.name ?? 'photo.jpg';
  const type = photo.type ?? 'image/jpeg';
  if (Platform.OS === 'web') {
    const blob = await (await fetch(photo.uri)).blob();
    return { value: blob, name };
  }
  // React Native's FormData uploads a {uri, name, type} object as a file part.
  return { value: { uri: photo.uri, name, type } as unknown as Blob, name };
}

/**
 * POST /v1/emotions: the faces in `photo` and their emotion scores.
 * Options go in the form next to the image. Throws ApiError.
 */
export async function detectEmotions(photo: Photo, config: ClientConfig, options: EmotionOptions = {}): Promise<EmotionsResponse> {
  const body = await requestJson(config, '/v1/emotions', async () => {
    const form = new FormData();
    const part = await imagePart(photo);
    form.append('image', part.value, part.name);
    for (const [key, value] of Object.entries(options)) {
      if (value !== undefined) form.append(key, String(value));
    }
    return { method: 'POST', body: form, headers: { Accept: 'application/json' } };
  }, UPLOAD_TIMEOUT_MS);
  return checked(config.baseUrl, validate.emotionsResponse, body);
}

/** GET /v1/model: the card of the model the service runs (name, labels, metrics...). */
export async function getModel(config: ClientConfig): Promise<ModelCard> {
  const body = await requestJson(config, '/v1/model', async () => ({ method: 'GET', headers: { Accept: 'application/json' } }), DEFAULT_TIMEOUT_MS);
  return checked(config.baseUrl, validate.modelCard, body);
}

/** GET /healthz: resolves when the service answers. */
export async function getHealth(config: ClientConfig): Promise<Health> {
  const body = await requestJson(config, '/healthz', async () => ({ method: 'GET', headers: { Accept: 'application/json' } }), DEFAULT_TIMEOUT_MS);
  return checked(config.baseUrl, validate.health, body);
}

/** The connection check of the Settings screen: /healthz, then the model card. */
export async function checkConnection(config: ClientConfig): Promise<ModelCard> {
  await getHealth(config);
  return getModel(config);
}
