/**
 * Why the service marked a face uncertain, in words. It does so when the face's top emotion is below
 * the request's threshold, and also when its face detector could not tell which way up the face is
 * (then the emotions may be read from a sideways or upside-down face), whatever the confidence.
 */
import type { Face } from '../api/types';

export type UncertainReason = 'low_confidence' | 'orientation';

/** Why `face` is uncertain under `threshold`; null when it is not. */
export function uncertainReason(face: Face, threshold: number): UncertainReason | null {
  if (!face.uncertain) return null;
  return face.confidence < threshold ? 'low_confidence' : 'orientation';
}

function percent(threshold: number): string {
  return `${Math.round(threshold * 100)}%`;
}

/** The note under a result with uncertain faces: covers both reasons. */
export function uncertainNote(threshold: number): string {
  return `Faces marked "?" are uncertain: their top emotion is below ${percent(threshold)}, or the service could not tell which way up the face is.`;
}

/** The line on one uncertain face's card. */
export function uncertainLine(reason: UncertainReason, threshold: number): string {
  return reason === 'low_confidence'
    ? `Uncertain: no emotion is clearly ahead (the top one is below ${percent(threshold)})`
    : 'Uncertain: the service could not tell which way up this face is, so its emotions may be misread';
}
