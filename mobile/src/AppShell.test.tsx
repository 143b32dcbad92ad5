/**
 * The whole app on a phone-sized screen: the service is mocked at the network boundary (global
 * fetch) with answers recorded from a real `nasfer serve`; the gallery and the image manipulator,
 * native modules, are replaced by fakes.
 */
import AsyncStorage from '@react-native-async-storage/async-storage';
import { fireEvent, screen, waitFor } from '@testing-library/react-native';
import * as ImagePicker from 'expo-image-picker';

import { AppShell } from './AppShell';
import { SETTINGS_KEY } from './storage/settings';
import { fakeFetch, recorded } from './testing/network';
import { layoutPhoto, renderOnPhone } from './testing/render';

jest.mock('expo-image-picker', () => ({ launchImageLibraryAsync: jest.fn() }));
jest.mock('expo-image-manipulator', () => {
  const image = (uri: string) => ({
    width: 512,
    height: 512,
    saveAsync: async (o: { base64?: boolean }) => ({ uri: `${uri}#jpeg`, width: 512, height: 512, base64: o.base64 ? 'QUJD' : undefined }),
  });
  const context = (uri: string) => ({ resize: () => context(uri), renderAsync: async () => image(uri) });
  return { SaveFormat: { JPEG: 'jpeg' }, ImageManipulator: { manipulate: context } };
});
jest.mock('expo-camera', () => ({ CameraView: () => null, useCameraPermissions: () => [null, jest.fn()] }));

const pick = ImagePicker.launchImageLibraryAsync as jest.Mock;
const SERVICE = 'http://192.168.1.20:8000';

async function withService(url = SERVICE) {
  await AsyncStorage.setItem(SETTINGS_KEY, JSON.stringify({ serviceUrl: url }));
}

function pickPhoto(uri = 'file:///gallery/astronaut.jpg') {
  pick.mockResolvedValueOnce({ canceled: false, assets: [{ uri, width: 512, height: 512 }] });
}

beforeEach(async () => {
  await AsyncStorage.clear();
  pick.mockReset();
});

it('asks for the service address first, checks the connection and shows the model and its labels', async () => {
  globalThis.fetch = fakeFetch({ 'GET /healthz': recorded.healthz, 'GET /v1/model': recorded.model });
  renderOnPhone(<AppShell />);

  expect(await screen.findByText('Set up the service')).toBeOnTheScreen();
  fireEvent.press(screen.getByRole('button', { name: 'Open settings' }));
  fireEvent.changeText(screen.getByLabelText('Service address'), ' 192.168.1.20:8000/ ');
  fireEvent.press(screen.getByRole('button', { name: 'Save and check connection' }));

  expect(await screen.findByText('Model: nasfer-vgg32x2-long-tta')).toBeOnTheScreen();
  expect(screen.getByText('Labels: angry, disgust, fear, happy, sad, surprise, neutral')).toBeOnTheScreen();
  expect(globalThis.fetch).toHaveBeenCalledWith(`${SERVICE}/healthz`, expect.anything());
  expect(JSON.parse((await AsyncStorage.getItem(SETTINGS_KEY))!)).toEqual({ serviceUrl: SERVICE });
});

it('shows a clear message when the connection check fails', async () => {
  await withService();
  globalThis.fetch = fakeFetch({ 'GET /healthz': new TypeError('Network request failed') });
  renderOnPhone(<AppShell />);
  fireEvent.press(await screen.findByRole('tab', { name: 'Settings' }));
  fireEvent.press(screen.getByRole('button', { name: 'Save and check connection' }));
  expect(await screen.findByText(`Cannot reach the service at ${SERVICE}. Check your connection and the address in Settings.`)).toBeOnTheScreen();
});

it('rejects a malformed address without calling anything', async () => {
  globalThis.fetch = jest.fn();
  renderOnPhone(<AppShell />);
  fireEvent.press(await screen.findByRole('tab', { name: 'Settings' }));
  fireEvent.changeText(screen.getByLabelText('Service address'), 'ftp://files');
  fireEvent.press(screen.getByRole('button', { name: 'Save and check connection' }));
  expect(await screen.findByText(/is not an http\(s\) address/)).toBeOnTheScreen();
  expect(globalThis.fetch).not.toHaveBeenCalled();
});

it('sends a photo from the gallery, shows the boxed result, and keeps it in the history', async () => {
  await withService();
  globalThis.fetch = fakeFetch({ 'POST /v1/emotions': recorded.astronaut });
  pickPhoto();
  renderOnPhone(<AppShell />);

  fireEvent.press(await screen.findByRole('button', { name: 'Pick from gallery' }));
  expect(await screen.findByText('1 face: happy')).toBeOnTheScreen();
  expect(globalThis.fetch).toHaveBeenCalledWith(`${SERVICE}/v1/emotions`, expect.objectContaining({ method: 'POST' }));
  layoutPhoto();
  expect(screen.getByText('1 happy 91%')).toBeOnTheScreen();
  expect(screen.getByLabelText('happy 91 percent')).toBeOnTheScreen();

  fireEvent.press(screen.getByRole('tab', { name: 'History' }));
  const item = await screen.findByRole('button', { name: /^1 face: happy, / });
  fireEvent.press(item);
  expect(await screen.findByText('1 face: happy')).toBeOnTheScreen();
  fireEvent.press(screen.getByRole('button', { name: 'Back to history' }));

  // kept on the device: a new start of the app still lists it
  screen.unmount();
  renderOnPhone(<AppShell />);
  fireEvent.press(await screen.findByRole('tab', { name: 'History' }));
  expect(await screen.findByRole('button', { name: /^1 face: happy, / })).toBeOnTheScreen();
  fireEvent.press(screen.getByRole('button', { name: 'Clear history' }));
  expect(await screen.findByText(/No results yet/)).toBeOnTheScreen();
});

it.each([
  ['error400', /rejected the request \(unknown form field/],
  ['error413', /too large for the service \(the request body is larger than the 10 MB limit\)\. Try a smaller photo\./],
  ['error415', /cannot read this kind of file .*Use a JPEG, PNG or WebP photo\./],
  ['error422', /could not be decoded; it may be damaged or incomplete/],
])('shows the recorded %s as a clear message with a way to try again', async (name, message) => {
  await withService();
  globalThis.fetch = fakeFetch({ 'POST /v1/emotions': [recorded[name], recorded.astronaut] });
  pickPhoto();
  renderOnPhone(<AppShell />);
  fireEvent.press(await screen.findByRole('button', { name: 'Pick from gallery' }));
  expect(await screen.findByText(message)).toBeOnTheScreen();
  expect(screen.getByRole('alert')).toBeOnTheScreen();
  fireEvent.press(screen.getByRole('button', { name: 'Try again' }));
  expect(await screen.findByText('1 face: happy')).toBeOnTheScreen();
});

it('waits out a busy service (503) and shows the result', async () => {
  await withService();
  globalThis.fetch = fakeFetch({ 'POST /v1/emotions': [recorded.error503, recorded.astronaut] });
  pickPhoto();
  renderOnPhone(<AppShell />);
  fireEvent.press(await screen.findByRole('button', { name: 'Pick from gallery' }));
  expect(await screen.findByText('1 face: happy', {}, { timeout: 4000 })).toBeOnTheScreen();
  expect(globalThis.fetch).toHaveBeenCalledTimes(2);
});

it('says so when the service stays busy', async () => {
  await withService();
  globalThis.fetch = fakeFetch({ 'POST /v1/emotions': recorded.error503 });
  pickPhoto();
  renderOnPhone(<AppShell />);
  fireEvent.press(await screen.findByRole('button', { name: 'Pick from gallery' }));
  expect(await screen.findByText(/service had a problem \(HTTP 503\) \(the server is busy.*Try again in a moment\./, {}, { timeout: 6000 })).toBeOnTheScreen();
  expect(globalThis.fetch).toHaveBeenCalledTimes(3);
});

it('explains when the service cannot be reached at all', async () => {
  await withService();
  globalThis.fetch = fakeFetch({ 'POST /v1/emotions': new TypeError('Network request failed') });
  pickPhoto();
  renderOnPhone(<AppShell />);
  fireEvent.press(await screen.findByRole('button', { name: 'Pick from gallery' }));
  expect(await screen.findByText(/Cannot reach the service at http:\/\/192\.168\.1\.20:8000/, {}, { timeout: 6000 })).toBeOnTheScreen();
  expect(globalThis.fetch).toHaveBeenCalledTimes(3); // first try and two retries
});

it('does nothing when the gallery is closed without a choice', async () => {
  await withService();
  globalThis.fetch = jest.fn();
  pick.mockResolvedValueOnce({ canceled: true, assets: null });
  renderOnPhone(<AppShell />);
  fireEvent.press(await screen.findByRole('button', { name: 'Pick from gallery' }));
  await waitFor(() => expect(pick).toHaveBeenCalled());
  expect(globalThis.fetch).not.toHaveBeenCalled();
  expect(screen.queryByRole('alert')).toBeNull();
});
