/**
 * What the app offers after a failed upload: sending the same photo again only helps when the
 * failure can change by itself (no network, timeout, slow upload, busy or failing service); a wrong
 * address is fixed in Settings; anything about the photo itself needs another photo.
 */
import { ApiError } from '../api/errors';

export type ErrorAction = 'retry' | 'settings' | 'another';

const SETTINGS_KINDS = ['invalid_url', 'invalid_response', 'not_service', 'redirect', 'http'];

export function errorAction(error: unknown): ErrorAction {
  if (error instanceof ApiError) {
    if (error.transient) return 'retry';
    if (SETTINGS_KINDS.includes(error.kind)) return 'settings';
  }
  return 'another';
}
