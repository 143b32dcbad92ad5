/**
 * Photos are made ready for upload on the device: decoded with their EXIF orientation applied
 * (expo-image-manipulator does so on Android, iOS and the web), downscaled so the longer side is at
 * most MAX_SIDE pixels, and re-encoded as JPEG. The upload is therefore always upright, small and a
 * type the service accepts (an iPhone's HEIC becomes JPEG). A small thumbnail, as a data: URI, is
 * kept for the on-device history.
 */
import { ImageManipulator, SaveFormat } from 'expo-image-manipulator';

import { ApiError } from '../api/errors';

/** Longer side of the uploaded photo, in pixels (the detector finds faces of 40 px and up in it). */
export const MAX_SIDE = 1600;
/** Longer side of the history thumbnail, in pixels. */
export const THUMB_SIDE = 360;
export const JPEG_QUALITY = 0.85;

export interface PreparedPhoto {
  /** the JPEG to upload and show */
  uri: string;
  width: number;
  height: number;
  /** a small JPEG as a data: URI, kept in the history */
  thumbnailUri: string;
}

/**
 * The size that fits `width` x `height` within `maxSide` on its longer side, keeping the aspect
 * ratio (rounded, at least 1 px); null when it already fits.
 */
export function fitWithin(width: number, height: number, maxSide: number): { width: number; height: number } | null {
  const longer = Math.max(width, height);
  if (longer <= maxSide) return null;
  const scale = maxSide / longer;
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/** Decode, orient, downscale and re-encode the photo at `uri`. Throws ApiError('image') if it cannot be read. */
export async function preparePhoto(uri: string): Promise<PreparedPhoto> {
  try {
    const context = ImageManipulator.manipulate(uri);
    const upright = await context.renderAsync();
    const size = fitWithin(upright.width, upright.height, MAX_SIDE);
    const full = size ? await context.resize(size).renderAsync() : upright;
    const saved = await full.saveAsync({ format: SaveFormat.JPEG, compress: JPEG_QUALITY });

    const thumbSize = fitWithin(saved.width, saved.height, THUMB_SIDE) ?? { width: saved.width, height: saved.height };
    const thumb = await ImageManipulator.manipulate(saved.uri).resize(thumbSize).renderAsync();
    const small = await thumb.saveAsync({ format: SaveFormat.JPEG, compress: 0.7, base64: true });
    return {
      uri: saved.uri,
      width: saved.width,
      height: saved.height,
      thumbnailUri: `data:image/jpeg;base64,${small.base64}`,
    };
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new ApiError('image', `This photo could not be opened on the device (${why}). Try another one.`);
  }
}
