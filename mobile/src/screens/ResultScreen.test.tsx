import { fireEvent, screen } from '@testing-library/react-native';
import { StyleSheet } from 'react-native';

import type { EmotionsResponse } from '../api/types';
import type { HistoryEntry } from '../storage/history';
import { recorded } from '../testing/network';
import { layoutPhoto, renderOnPhone } from '../testing/render';
import { ResultScreen } from './ResultScreen';

function entry(name: string): HistoryEntry {
  return {
    id: name, createdAt: '2026-11-30T09:00:00.000Z', thumbnailUri: 'data:image/jpeg;base64,QUJD',
    response: recorded[name].body as EmotionsResponse,
  };
}

function show(name: string, onBack = jest.fn()) {
  renderOnPhone(<ResultScreen entry={entry(name)} photoUri="file:///photo.jpg" onBack={onBack} backTitle="New photo" />);
  layoutPhoto(328);
  return onBack;
}

it('boxes and labels the face of the recorded astronaut answer, scaled to the screen', () => {
  show('astronaut');
  expect(screen.getByText('1 face: happy')).toBeOnTheScreen();
  const box = StyleSheet.flatten(screen.getByTestId('face-box-1').props.style);
  // the service saw 512 x 512 px; the photo is drawn 328 px wide: box [175, 64, 99, 99] * 328/512
  expect(box.left).toBeCloseTo(112.1, 1);
  expect(box.top).toBeCloseTo(41.0, 1);
  expect(box.width).toBeCloseTo(63.4, 1);
  expect(box.height).toBeCloseTo(63.4, 1);
  expect(screen.getByText('1 happy 91%')).toBeOnTheScreen();
  expect(screen.getByLabelText('Photo with 1 face marked')).toBeOnTheScreen();
});

it('shows a bar for each of the seven emotions, in the model order', () => {
  show('astronaut');
  const labels = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral'];
  const bars = screen.getAllByLabelText(/ \d+ percent$/);
  expect(bars.map((b) => b.props.accessibilityLabel.split(' ')[0])).toEqual(labels);
  expect(screen.getByLabelText('happy 91 percent')).toBeOnTheScreen();
  expect(screen.getByText('Face 1: happy 91%')).toBeOnTheScreen();
  expect(screen.queryByTestId('face-uncertain-1')).toBeNull();
});

it('marks a face under the threshold as uncertain', () => {
  show('uncertain');
  expect(screen.getByTestId('face-uncertain-1')).toBeOnTheScreen();
  expect(screen.getByText('1 happy 91% ?')).toBeOnTheScreen();
  expect(screen.getByText(/uncertain: their top emotion is below 95%/)).toBeOnTheScreen();
  expect(StyleSheet.flatten(screen.getByTestId('face-box-1').props.style).borderStyle).toBe('dashed');
});

it('shows a custom label set unchanged', () => {
  show('custom');
  expect(screen.getByText('1 tense 36%')).toBeOnTheScreen();
  const bars = screen.getAllByLabelText(/ \d+ percent$/);
  expect(bars.map((b) => b.props.accessibilityLabel)).toEqual(['calm 32 percent', 'tense 36 percent', 'smiling 32 percent']);
});

it('says when no face was found, and goes back', () => {
  const onBack = show('noface');
  expect(screen.getByText('No face found')).toBeOnTheScreen();
  expect(screen.getByText(/Try a brighter photo/)).toBeOnTheScreen();
  fireEvent.press(screen.getByRole('button', { name: 'New photo' }));
  expect(onBack).toHaveBeenCalled();
});

it("shows the service's hint when a face crop was sent to a face detector", () => {
  const hint = 'no face found: this picture looks like a face crop; classify it with detector=none';
  const base = entry('noface');
  renderOnPhone(
    <ResultScreen entry={{ ...base, response: { ...base.response, hint } }} photoUri="file:///photo.jpg"
      onBack={jest.fn()} backTitle="New photo" />,
  );
  expect(screen.getByText(hint)).toBeOnTheScreen();
  expect(screen.queryByText(/Try a brighter photo/)).toBeNull();
});
