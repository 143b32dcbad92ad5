/**
 * Errors of the API client, each with a message a person can act on.
 *
 * The service documents 400, 408, 413, 415, 422, 500 and 503 answers for POST /v1/emotions, always as
 * `{"error": {"code", "message"}}`; the client adds what happens before an answer arrives (no
 * network, timeout, cancelled), redirects (never followed), answers that are not from a nasfer
 * service, and a malformed service address.
 */

export type ErrorKind =
  | 'bad_request' // 400
  | 'slow_upload' // 408: the photo did not reach the service within its read timeout
  | 'too_large' // 413
  | 'unsupported' // 415
  | 'unreadable' // 422
  | 'rate_limited' // 429: a proxy in front of the service limits requests
  | 'server' // 5xx
  | 'not_service' // 405, 501 or a web page: the address is probably not a nasfer service
  | 'http' // any other HTTP status
  | 'redirect' // the address redirects elsewhere (e.g. http to https); never followed
  | 'network' // no answer: offline, wrong host, refused connection
  | 'timeout' // no answer in time
  | 'cancelled' // the person cancelled the request
  | 'invalid_response' // an answer that is not the documented JSON
  | 'invalid_url' // the service address itself is malformed
  | 'image'; // the photo could not be prepared on the device

export class ApiError extends Error {
  readonly kind: ErrorKind;
  /** HTTP status, when the service answered */
  readonly status?: number;
  /** the service's machine-readable error code, when it sent one */
  readonly code?: string;
  /** the service's own one-line message, when it sent one */
  readonly serverMessage?: string;

  constructor(kind: ErrorKind, message: string, details: { status?: number; code?: string; serverMessage?: string } = {}) {
    super(message);
    this.name = 'ApiError';
    this.kind = kind;
    this.status = details.status;
    this.code = details.code;
    this.serverMessage = details.serverMessage;
  }

  /**
   * Sending the same request again may succeed: no answer (network, timeout), a slow upload (408), or
   * the service (or a proxy) said it is busy or failed (429, 5xx). Whether the client does so by itself
   * is decided in client.ts (never for a POST that timed out); the app offers "Try again" for these.
   */
  get transient(): boolean {
    return ['network', 'timeout', 'slow_upload', 'rate_limited', 'server'].includes(this.kind);
  }
}

/** The kind of error an HTTP status stands for. */
export function kindOfStatus(status: number): ErrorKind {
  if (status === 400) return 'bad_request';
  if (status === 408) return 'slow_upload';
  if (status === 413) return 'too_large';
  if (status === 415) return 'unsupported';
  if (status === 422) return 'unreadable';
  if (status === 429) return 'rate_limited';
  if (status === 405 || status === 501) return 'not_service';
  if (status >= 500 && status <= 599) return 'server';
  return 'http';
}

function withDetail(text: string, detail?: string): string {
  return detail ? `${text} (${detail})` : text;
}

/** The message shown for an HTTP error answer; `serverMessage` is the service's own line, if any. */
export function httpErrorMessage(status: number, serverMessage?: string): string {
  switch (kindOfStatus(status)) {
    case 'bad_request':
      return withDetail('The service rejected the request', serverMessage) + '. Update the app if this keeps happening.';
    case 'slow_upload':
      return withDetail('The photo did not reach the service in time', serverMessage) + '. Check your connection and try again.';
    case 'too_large':
      return withDetail('The photo is too large for the service', serverMessage) + '. Try a smaller photo.';
    case 'unsupported':
      return withDetail('The service cannot read this kind of file', serverMessage) + '. Use a JPEG, PNG or WebP photo.';
    case 'unreadable':
      return withDetail('The photo could not be decoded; it may be damaged or incomplete', serverMessage) + '.';
    case 'rate_limited':
      return withDetail('The service is receiving too many requests (HTTP 429)', serverMessage) + '. Try again in a moment.';
    case 'server':
      return withDetail(`The service had a problem (HTTP ${status})`, serverMessage) + '. Try again in a moment.';
    case 'not_service':
      return withDetail(`The address in Settings is probably not a nasfer service: it answered HTTP ${status}`, serverMessage) +
        '. Check the address in Settings.';
    default:
      return withDetail(`The service answered HTTP ${status}`, serverMessage) + '. Is the address in Settings right?';
  }
}

export function networkErrorMessage(baseUrl: string): string {
  return `Cannot reach the service at ${baseUrl}. Check your connection and the address in Settings.`;
}

export function timeoutMessage(baseUrl: string, timeoutMs: number): string {
  return `The service at ${baseUrl} did not answer within ${+(timeoutMs / 1000).toPrecision(2)} s. Try again later.`;
}

/** An answer that is a web page (HTML) where the service sends JSON: a web server, router or portal. */
export function webPageMessage(baseUrl: string, status: number): string {
  return `The address in Settings (${baseUrl}) is probably not a nasfer service: it answered HTTP ${status} with a web page. Check the address in Settings.`;
}

/** The service's address answered with a redirect (e.g. from http:// to https://), which is never followed. */
export function redirectMessage(baseUrl: string, target?: string): string {
  const where = target ? `Enter ${target} in Settings` : "Enter the service's https:// address in Settings";
  return `The service at ${baseUrl} redirects to ${target ?? 'another address'}. ${where}: the app does not follow redirects, so photos go only to the address you set.`;
}

export const CANCELLED_MESSAGE = 'Sending was cancelled.';

export function invalidResponseMessage(baseUrl: string, why: string): string {
  return `The answer from ${baseUrl} is not what a nasfer service sends (${why}). Is the address in Settings right?`;
}

/** The text to show for anything thrown while talking to the service. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error && error.message) return `Something went wrong: ${error.message}`;
  return 'Something went wrong. Try again.';
}
