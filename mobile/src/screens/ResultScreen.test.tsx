import { act, fireEvent, screen } from '@testing-library/react-native';
import { Dimensions, StyleSheet } from 'react-native';

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

function showResponse(response: EmotionsResponse) {
  renderOnPhone(<ResultScreen entry={{ ...entry('noface'), response }} photoUri="file:///photo.jpg" onBack={jest.fn()} backTitle="New photo" />);
  layoutPhoto(328);
}

/** The system's text size (1 = default); React Native's Jest setup starts at 2. */
function textSize(fontScale: number) {
  const window = { width: 360, height: 740, scale: 2, fontScale };
  act(() => Dimensions.set({ window, screen: window }));
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
  expect(screen.getByText('1 happy 90%')).toBeOnTheScreen();
  expect(screen.getByLabelText('Photo with 1 face marked')).toBeOnTheScreen();
});

it('shows a bar for each of the seven emotions, in the model order', () => {
  show('astronaut');
  const labels = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral'];
  const bars = screen.getAllByLabelText(/ \d+ percent$/);
  expect(bars.map((b) => b.props.accessibilityLabel.split(' ')[0])).toEqual(labels);
  expect(screen.getByLabelText('happy 90 percent')).toBeOnTheScreen();
  expect(screen.getByText('Face 1: happy 90%')).toBeOnTheScreen();
  expect(screen.queryByTestId('face-uncertain-1')).toBeNull();
});

it('marks a face under the threshold as uncertain', () => {
  show('uncertain');
  expect(screen.getByTestId('face-uncertain-1')).toBeOnTheScreen();
  expect(screen.getByText('1 happy 90% ?')).toBeOnTheScreen();
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

// The hint exactly as the service writes it (src/nasfer/runtime/api.py, crop_hint) for a 48 x 48 photo.
const SERVICE_HINT = "no face found, but this small image (48x48) looks like a face crop already: classify it without " +
  "detection with detector 'none' (CLI: --detector none; Python: EmotionRecognizer(detector='none'); HTTP: detector=none)";

it("says in the app's own words, not the service's developer hint, that a close-up face crop needs a wider photo", () => {
  const base = recorded.noface.body as EmotionsResponse;
  showResponse({ ...base, image: { width: 48, height: 48 }, hint: SERVICE_HINT });
  expect(screen.getByText('No face found')).toBeOnTheScreen();
  expect(screen.getByText(/looks like a close-up crop of a single face.*A wider photo that shows the whole face and some background works better\./))
    .toBeOnTheScreen();
  expect(screen.queryByText(/CLI|Python|--detector|detector=none|detector 'none'|face crop already/)).toBeNull();
  expect(screen.queryByText(/Try a brighter photo/)).toBeNull();
});

it('says why a face is uncertain when its emotion is clear but the service could not tell which way up it is', () => {
  // the service marks such a face uncertain whatever its confidence (runtime/api.py: box.upright is False)
  const base = recorded.uncertain.body as EmotionsResponse;
  showResponse({ ...base, threshold: 0.25, faces: [{ ...base.faces[0], uncertain: true }] });
  expect(screen.getByText('1 happy 90% ?')).toBeOnTheScreen();
  expect(screen.getByTestId('face-uncertain-1')).toHaveTextContent(
    'Uncertain: the service could not tell which way up this face is, so its emotions may be misread',
  );
  expect(screen.getByText(/uncertain: their top emotion is below 25%, or the service could not tell which way up the face is\./)).toBeOnTheScreen();
  expect(screen.queryByText(/no emotion is clearly ahead/)).toBeNull();
});

it('says why a face is uncertain when its top emotion is below the threshold', () => {
  show('uncertain');
  expect(screen.getByTestId('face-uncertain-1')).toHaveTextContent('Uncertain: no emotion is clearly ahead (the top one is below 95%)');
});

describe('with large system text', () => {
  afterEach(() => textSize(2));

  it('lets face captions grow with the text instead of clipping them at a fixed height', () => {
    textSize(2);
    show('astronaut');
    const caption = StyleSheet.flatten(screen.getByTestId('face-caption-1').props.style);
    expect(caption.height).toBeUndefined();
    expect(caption.lineHeight).toBeUndefined();
    expect(caption.minHeight).toBe(40);
    expect(caption.top).toBeCloseTo(41.0 - 40, 1); // above the box at top 41.0, by the taller caption

    textSize(1);
    expect(StyleSheet.flatten(screen.getByTestId('face-caption-1').props.style).minHeight).toBe(20);
  });

  it('widens the emotion labels with the text and wraps long ones instead of clipping them', () => {
    textSize(2);
    show('astronaut');
    const label = screen.getAllByTestId('bar-label')[0];
    const style = StyleSheet.flatten(label.props.style);
    expect(style.width).toBeUndefined();
    expect(style.flexBasis).toBe(168);
    expect(style.maxWidth).toBe('40%');
    expect(label.props.numberOfLines).toBe(2);
    expect(StyleSheet.flatten(screen.getAllByTestId('bar-value')[0].props.style).minWidth).toBe(88);

    textSize(1);
    expect(StyleSheet.flatten(screen.getAllByTestId('bar-label')[0].props.style).flexBasis).toBe(84);
  });
});
