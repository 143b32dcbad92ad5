/** Colours and sizes shared by the screens. */
export const colors = {
  background: '#f6f7f9',
  surface: '#ffffff',
  text: '#1b1f24',
  muted: '#5b6570',
  primary: '#1f5fbf',
  onPrimary: '#ffffff',
  border: '#d5dae0',
  error: '#b3261e',
  errorBackground: '#fdecea',
  ok: '#1e7d32',
  uncertain: '#b26a00',
  bar: '#1f5fbf',
  barTrack: '#e4e8ee',
};

/** One colour per face, in box and card alike. */
export const faceColors = ['#00c853', '#2979ff', '#ff9100', '#d500f9', '#00b8d4', '#ff1744'];

export function faceColor(index: number): string {
  return faceColors[index % faceColors.length];
}

/** Smallest touch target side (platform guidelines: 44 pt iOS, 48 dp Android). */
export const touchSize = 48;
