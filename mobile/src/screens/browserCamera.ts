/**
 * Whether a browser lets the web build use the camera. Browsers offer it (navigator.mediaDevices)
 * only to secure pages: https:// or localhost; on a plain http:// address of another machine it is
 * missing, and expo-camera's permission request then fails without a word.
 */
import { Platform } from 'react-native';

export type BrowserCameraProblem = 'insecure' | 'unsupported';

/** Why the camera cannot be used in this browser; null when it can, or when not in a browser. */
export function browserCameraProblem(): BrowserCameraProblem | null {
  if (Platform.OS !== 'web') return null;
  const mediaDevices = (globalThis.navigator as { mediaDevices?: { getUserMedia?: unknown } } | undefined)?.mediaDevices;
  if (typeof mediaDevices?.getUserMedia === 'function') return null;
  return (globalThis as { isSecureContext?: boolean }).isSecureContext === false ? 'insecure' : 'unsupported';
}

export const BROWSER_CAMERA_MESSAGES: Record<BrowserCameraProblem | 'denied', string> = {
  insecure:
    'A browser lets a page use the camera only over https:// or on localhost, and this page is neither. ' +
    'Open the app at an https:// address to take photos, or pick a photo from your gallery.',
  unsupported: 'This browser does not let web pages use the camera. Pick a photo from your gallery instead.',
  denied:
    'The browser blocked the camera for this page. Allow it in the site settings (the icon next to the address), ' +
    'then press "Allow camera" again, or pick a photo from your gallery.',
};
