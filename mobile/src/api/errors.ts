/**
 * Errors of the API client, each with a message a person can act on.
 *
 * The service documents 400, 413, 415, 422, 500 and 503 answers for POST /v1/emotions, always as
 * `{"error": {"code", "message"}}`; the client adds what happens before an answer arrives (no
 * network, timeout), answers that are not from a nasfer service, and a malformed service address.
 */

export type ErrorKind =
  | 'bad_request' // 400
  | 'slow_upload' // 408: the photo did not reach the service within its read timeout
  | 'too_large' // 413
  | 'unsupported' // 415
  | 'unreadable' // 422
  | 'server' // 5xx
  | 'http' // any other HTTP status
  | 'network' // no answer: offline, wrong host, refused connection
  | 'timeout' // no answer in time
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

  /** Worth sending the same request again: no answer, or the service said it is busy/unavailable. */
  get retryable(): boolean {
    return this.kind === 'network' || this.kind === 'timeout' || [502, 503, 504].includes(this.status ?? 0);
  }
}

/** The kind of error an HTTP status stands for. */
export function kindOfStatus(status: number): ErrorKind {
  if (status === 400) return 'bad_request';
  if (status === 408) return 'slow_upload';
  if (status === 413) return 'too_large';
  if (status === 415) return 'unsupported';
  if (status === 422) return 'unreadable';
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
    case 'server':
      return withDetail(`The service had a problem (HTTP ${status})`, serverMessage) + '. Try again in a moment.';
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

export function invalidResponseMessage(baseUrl: string, why: string): string {
  return `The answer from ${baseUrl} is not what a nasfer service sends (${why}). Is the address in Settings right?`;
}

/** The text to show for anything thrown while talking to the service. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error && error.message) return `Something went wrong: ${error.message}`;
  return 'Something went wrong. Try again.';
}
