/** Rendering helpers for screen tests. */
import { fireEvent, render, screen } from '@testing-library/react-native';
import type { ReactElement } from 'react';
import { SafeAreaProvider } from 'react-native-safe-area-context';

/** A 360 x 740 phone, the smallest screen the app is laid out for. */
export const PHONE = { frame: { x: 0, y: 0, width: 360, height: 740 }, insets: { top: 0, left: 0, right: 0, bottom: 0 } };

export function renderOnPhone(element: ReactElement) {
  return render(<SafeAreaProvider initialMetrics={PHONE}>{element}</SafeAreaProvider>);
}

/** Give the result photo its width, as a phone's layout pass would (328 = 360 minus the padding). */
export function layoutPhoto(width = 328) {
  fireEvent(screen.getByTestId('face-photo-frame'), 'layout', { nativeEvent: { layout: { x: 0, y: 0, width, height: 0 } } });
}
