/**
 * The app's one client of the nasfer HTTP API (documented at the service's /openapi.json):
 * POST /v1/emotions (multipart field `image`), GET /v1/model and GET /healthz.
 *
 * Every request has a timeout; requests that got no answer, or a 502/503/504, are retried with
 * exponential backoff (honouring Retry-After). Failures are thrown as `ApiError` with a message
 * fit to show (see errors.ts).
 */
import { Platform } from 'react-native';

import { ApiError, httpErrorMessage, invalidResponseMessage, kindOfStatus, networkErrorMessage, timeoutMessage } from './errors';
import type { EmotionOptions, EmotionsResponse, Health, ModelCard } from './types';
import * as validate from './validate';

export interface ClientConfig {
  /** the service's address, e.g. https://nasfer.example.org (see normalizeBaseUrl) */
  baseUrl: string;
  /** milliseconds to wait for each attempt's answer (default 30 s) */
  timeoutMs?: number;
  /** how many times to try again after a retryable failure (default 2) */
  retries?: number;
  /** first backoff delay in ms, doubled after each retry (default 500) */
  backoffMs?: number;
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

export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_RETRIES = 2;
const MAX_RETRY_AFTER_MS = 5_000;

/**
 * The service address as typed by a person, made canonical: trimmed, `http://` added when no
 * scheme is given, trailing slashes removed. Throws ApiError('invalid_url') when it is not an
 * http(s) address.
 */
export function normalizeBaseUrl(text: string): string {
  let url = text.trim();
  if (!url) throw new ApiError('invalid_url', 'Enter the address of the nasfer service, e.g. https://nasfer.example.org');
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) url = `http://${url}`;
  const match = /^(https?):\/\/([^/?#\s]+)(\/[^?#\s]*)?$/i.exec(url);
  if (!match) throw new ApiError('invalid_url', `"${text.trim()}" is not an http(s) address such as https://nasfer.example.org`);
  return `${match[1].toLowerCase()}://${match[2]}${(match[3] ?? '').replace(/\/+$/, '')}`;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function retryAfterMs(response: Response): number | undefined {
  const value = response.headers?.get?.('Retry-After');
  const seconds = value ? Number(value) : NaN;
  return Number.isFinite(seconds) && seconds >= 0 ? Math.min(seconds * 1000, MAX_RETRY_AFTER_MS) : undefined;
}

/** One request with timeout and retries; resolves with the parsed JSON of a 2xx answer. */
async function requestJson(config: ClientConfig, path: string, init: () => Promise<RequestInit>): Promise<unknown> {
  const baseUrl = normalizeBaseUrl(config.baseUrl);
  const fetchImpl = config.fetchImpl ?? fetch;
  const sleep = config.sleep ?? defaultSleep;
  const timeoutMs = config.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const retries = config.retries ?? DEFAULT_RETRIES;
  let delay = config.backoffMs ?? 500;

  for (let attempt = 0; ; attempt++) {
    let wait = delay;
    try {
      return await attemptOnce(fetchImpl, baseUrl, path, await init(), timeoutMs, (ms) => (wait = ms ?? delay));
    } catch (error) {
      if (!(error instanceof ApiError) || !error.retryable || attempt >= retries) throw error;
    }
    await sleep(wait);
    delay *= 2;
  }
}

async function attemptOnce(
  fetchImpl: typeof fetch, baseUrl: string, path: string, init: RequestInit, timeoutMs: number,
  onRetryAfter: (ms: number | undefined) => void,
): Promise<unknown> {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  let response: Response;
  let text: string;
  try {
    response = await fetchImpl(`${baseUrl}${path}`, { ...init, signal: controller.signal });
    text = await response.text();
  } catch {
    throw timedOut
      ? new ApiError('timeout', timeoutMessage(baseUrl, timeoutMs))
      : new ApiError('network', networkErrorMessage(baseUrl));
  } finally {
    clearTimeout(timer);
  }

  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (response.status < 200 || response.status > 299) {
    const detail = validate.errorBody(body)?.error;
    onRetryAfter(retryAfterMs(response));
    throw new ApiError(kindOfStatus(response.status), httpErrorMessage(response.status, detail?.message), {
      status: response.status, code: detail?.code, serverMessage: detail?.message,
    });
  }
  if (body === undefined) {
    throw new ApiError('invalid_response', invalidResponseMessage(baseUrl, `HTTP ${response.status} without JSON`), {
      status: response.status,
    });
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
  });
  return checked(config.baseUrl, validate.emotionsResponse, body);
}

/** GET /v1/model: the card of the model the service runs (name, labels, metrics...). */
export async function getModel(config: ClientConfig): Promise<ModelCard> {
  const body = await requestJson(config, '/v1/model', async () => ({ method: 'GET', headers: { Accept: 'application/json' } }));
  return checked(config.baseUrl, validate.modelCard, body);
}

/** GET /healthz: resolves when the service answers. */
export async function getHealth(config: ClientConfig): Promise<Health> {
  const body = await requestJson(config, '/healthz', async () => ({ method: 'GET', headers: { Accept: 'application/json' } }));
  return checked(config.baseUrl, validate.health, body);
}

/** The connection check of the Settings screen: /healthz, then the model card. */
export async function checkConnection(config: ClientConfig): Promise<ModelCard> {
  await getHealth(config);
  return getModel(config);
}
