/** One photo's way to a result: prepared on the device, then sent to the service. */
import { detectEmotions } from '../api/client';
import { ApiError, CANCELLED_MESSAGE } from '../api/errors';
import { preparePhoto } from '../image/prepare';
import type { HistoryEntry } from '../storage/history';

export interface Sent {
  entry: HistoryEntry;
  /** the prepared photo that was sent, to show with the result */
  photoUri: string;
}

let counter = 0;
function newId(): string {
  counter += 1;
  return `${Date.now().toString(36)}-${counter}`;
}

/**
 * Prepare the photo at `uri` (upright, downscaled JPEG, see image/prepare.ts) and send that prepared
 * photo, never the original, to the service at `serviceUrl`. `onUploading` is called once the photo is
 * ready and on its way. Throws ApiError (kind 'cancelled' once `signal` aborts).
 */
export async function sendPhoto(
  uri: string, serviceUrl: string, { signal, onUploading }: { signal?: AbortSignal; onUploading?: () => void } = {},
): Promise<Sent> {
  const photo = await preparePhoto(uri);
  if (signal?.aborted) throw new ApiError('cancelled', CANCELLED_MESSAGE);
  onUploading?.();
  const response = await detectEmotions({ uri: photo.uri, name: 'photo.jpg', type: 'image/jpeg' }, { baseUrl: serviceUrl, signal });
  return {
    entry: { id: newId(), createdAt: new Date().toISOString(), thumbnailUri: photo.thumbnailUri, response },
    photoUri: photo.uri,
  };
}
