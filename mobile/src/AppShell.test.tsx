/**
 * The whole app on a phone-sized screen: the service is mocked at the network boundary (global
 * fetch) with answers recorded from a real `nasfer serve`; the gallery and the image manipulator,
 * native modules, are replaced by fakes.
 */
import AsyncStorage from '@react-native-async-storage/async-storage';
import { act, fireEvent, screen, waitFor } from '@testing-library/react-native';
import * as ImagePicker from 'expo-image-picker';
import { Platform } from 'react-native';

import { AppShell } from './AppShell';
import { SETTINGS_KEY } from './storage/settings';
import { fakeFetch, later, recorded } from './testing/network';
import { layoutPhoto, renderOnPhone } from './testing/render';

jest.mock('expo-image-picker', () => ({ launchImageLibraryAsync: jest.fn() }));
// The fake manipulator "prepares" a photo into file:///prepared/<name>.jpg (a file:///broken/... photo
// cannot be decoded), so a test can tell the photo sent from the one picked.
jest.mock('expo-image-manipulator', () => {
  const prepared = (uri: string) => (uri.startsWith('file:///prepared/') ? uri : `file:///prepared/${uri.split('/').pop()}.jpg`);
  const image = (uri: string) => ({
    width: 512,
    height: 512,
    saveAsync: async (o: { base64?: boolean }) => ({ uri: prepared(uri), width: 512, height: 512, base64: o.base64 ? 'QUJD' : undefined }),
  });
  const context = (uri: string) => ({
    resize: () => context(uri),
    renderAsync: async () => {
      if (uri.startsWith('file:///broken/')) throw new Error('Could not load the image');
      return image(uri);
    },
  });
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

/** The multipart parts of the n-th request fetch was given. */
function sentParts(n = 0) {
  const init = (globalThis.fetch as jest.Mock).mock.calls[n][1] as RequestInit;
  return (init.body as unknown as { getParts(): { fieldName: string; uri?: string }[] }).getParts();
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

  expect(await screen.findByText('Model: nasfer-vgg32x3-long-tta')).toBeOnTheScreen();
  expect(screen.getByText('Labels: angry, disgust, fear, happy, sad, surprise, neutral')).toBeOnTheScreen();
  expect(globalThis.fetch).toHaveBeenCalledWith(`${SERVICE}/healthz`, expect.anything());
  expect(JSON.parse((await AsyncStorage.getItem(SETTINGS_KEY))!)).toEqual({ serviceUrl: SERVICE });
});

it('in a browser, sends to Settings when the page is not served by a nasfer service', async () => {
  const web = jest.replaceProperty(Platform, 'OS', 'web');
  Object.defineProperty(globalThis, 'location', { value: { origin: 'http://app.example.org' }, configurable: true });
  try {
    // a static web server answers every path with the app's page (or 404 / 501)
    globalThis.fetch = fakeFetch({ 'GET /healthz': { status: 200, headers: { 'content-type': 'text/html' }, body: '<!doctype html>' } });
    renderOnPhone(<AppShell />);
    expect(await screen.findByText('Set up the service')).toBeOnTheScreen();
    expect(screen.getByText(/This web page is not served by one, so enter the address of your nasfer service in Settings first\./)).toBeOnTheScreen();
    fireEvent.press(screen.getByRole('button', { name: 'Open settings' }));
    expect(screen.getByLabelText('Service address').props.value).toBe('');
  } finally {
    web.restore();
    Object.defineProperty(globalThis, 'location', { value: undefined, configurable: true });
  }
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
  // the photo sent is the prepared one (upright, downscaled JPEG), never the original picked
  expect(sentParts().find((p) => p.fieldName === 'image')?.uri).toBe('file:///prepared/astronaut.jpg.jpg');
  layoutPhoto();
  expect(screen.getByText('1 happy 90%')).toBeOnTheScreen();
  expect(screen.getByLabelText('happy 90 percent')).toBeOnTheScreen();

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
])('shows the recorded %s as a clear message and offers another photo, not the same one again', async (name, message) => {
  await withService();
  globalThis.fetch = fakeFetch({ 'POST /v1/emotions': [recorded[name], recorded.astronaut] });
  pickPhoto('file:///gallery/notes.pdf');
  renderOnPhone(<AppShell />);
  fireEvent.press(await screen.findByRole('button', { name: 'Pick from gallery' }));
  expect(await screen.findByText(message)).toBeOnTheScreen();
  expect(screen.getByRole('alert')).toBeOnTheScreen();
  expect(screen.queryByRole('button', { name: 'Try again' })).toBeNull();

  pickPhoto('file:///gallery/astronaut.jpg');
  fireEvent.press(screen.getByRole('button', { name: 'Pick another photo' }));
  expect(await screen.findByText('1 face: happy')).toBeOnTheScreen();
  expect(pick).toHaveBeenCalledTimes(2);
  expect(sentParts(1).find((p) => p.fieldName === 'image')?.uri).toBe('file:///prepared/astronaut.jpg.jpg');
});

it('offers another photo when the photo cannot be opened on the device, without sending anything', async () => {
  await withService();
  globalThis.fetch = fakeFetch({});
  pickPhoto('file:///broken/scan.heic');
  renderOnPhone(<AppShell />);
  fireEvent.press(await screen.findByRole('button', { name: 'Pick from gallery' }));
  expect(await screen.findByText(/could not be opened on the device \(Could not load the image\)/)).toBeOnTheScreen();
  expect(screen.getByRole('button', { name: 'Pick another photo' })).toBeOnTheScreen();
  expect(screen.queryByRole('button', { name: 'Try again' })).toBeNull();
  expect(globalThis.fetch).not.toHaveBeenCalled();
});

it.each([
  ['no network', new TypeError('Network request failed'), /Cannot reach the service/],
  ['a slow upload (408)', { status: 408, headers: {}, body: { error: { code: 'request_timeout', message: 'the request did not arrive within 60 s' } } },
    /did not reach the service in time/],
  ['a rate limit (429)', { status: 429, headers: {}, body: null }, /too many requests \(HTTP 429\)/],
  ['a failing service (500)', { status: 500, headers: {}, body: { error: { code: 'internal_error', message: 'boom' } } }, /had a problem \(HTTP 500\)/],
])('offers to try again after %s, and trying again sends the same prepared photo', async (_, answer, message) => {
  await withService();
  globalThis.fetch = fakeFetch({ 'POST /v1/emotions': answer });
  pickPhoto();
  renderOnPhone(<AppShell />);
  fireEvent.press(await screen.findByRole('button', { name: 'Pick from gallery' }));
  expect(await screen.findByText(message, {}, { timeout: 6000 })).toBeOnTheScreen();
  expect(screen.queryByRole('button', { name: 'Pick another photo' })).toBeNull();

  globalThis.fetch = fakeFetch({ 'POST /v1/emotions': recorded.astronaut }); // the service is back
  fireEvent.press(screen.getByRole('button', { name: 'Try again' }));
  expect(await screen.findByText('1 face: happy')).toBeOnTheScreen();
  expect(sentParts().find((p) => p.fieldName === 'image')?.uri).toBe('file:///prepared/astronaut.jpg.jpg');
});

it('sends to Settings when the address is not a nasfer service (a web server answering 501)', async () => {
  await withService('http://192.168.1.20:8080');
  globalThis.fetch = fakeFetch({ 'POST /v1/emotions': { status: 501, headers: { 'content-type': 'text/html' }, body: '<html>Unsupported method</html>' } });
  pickPhoto();
  renderOnPhone(<AppShell />);
  fireEvent.press(await screen.findByRole('button', { name: 'Pick from gallery' }));
  expect(await screen.findByText(/probably not a nasfer service: it answered HTTP 501\. Check the address in Settings\./)).toBeOnTheScreen();
  expect(screen.queryByRole('button', { name: 'Try again' })).toBeNull();
  fireEvent.press(screen.getByRole('button', { name: 'Open settings' }));
  expect(await screen.findByLabelText('Service address')).toBeOnTheScreen();
});

it('lets the person cancel while the photo is being sent', async () => {
  await withService();
  globalThis.fetch = fakeFetch({ 'POST /v1/emotions': 'hang' });
  pickPhoto();
  renderOnPhone(<AppShell />);
  fireEvent.press(await screen.findByRole('button', { name: 'Pick from gallery' }));
  expect(await screen.findByText(`Sending to ${SERVICE}…`)).toBeOnTheScreen();
  fireEvent.press(screen.getByRole('button', { name: 'Cancel' }));
  await waitFor(() => expect(screen.queryByTestId('busy')).toBeNull());
  const init = (globalThis.fetch as jest.Mock).mock.calls[0][1] as RequestInit;
  expect(init.signal?.aborted).toBe(true);
  expect(screen.queryByRole('alert')).toBeNull();
  expect(screen.getByRole('button', { name: 'Pick from gallery' })).toBeEnabled();
  expect(globalThis.fetch).toHaveBeenCalledTimes(1);
});

/** Start an upload whose answer the test gives later, and switch to `tab` while it is under way. */
async function uploadThenOpen(tab: string) {
  await withService();
  const answer = later();
  globalThis.fetch = fakeFetch({ 'POST /v1/emotions': answer });
  pickPhoto();
  renderOnPhone(<AppShell />);
  fireEvent.press(await screen.findByRole('button', { name: 'Pick from gallery' }));
  await screen.findByText(`Sending to ${SERVICE}…`);
  fireEvent.press(screen.getByRole('tab', { name: tab }));
  return answer;
}

it('keeps the Settings screen when a result arrives there, and offers the result instead', async () => {
  const answer = await uploadThenOpen('Settings');
  fireEvent.changeText(screen.getByLabelText('Service address'), 'nasfer.exam');
  await act(async () => answer.resolve(recorded.astronaut));

  expect(await screen.findByText('Your result is ready.')).toBeOnTheScreen();
  expect(screen.getByLabelText('Service address').props.value).toBe('nasfer.exam'); // what was typed stays
  expect(screen.queryByText('1 face: happy')).toBeNull();

  fireEvent.press(screen.getByRole('button', { name: 'Show result' }));
  expect(await screen.findByText('1 face: happy')).toBeOnTheScreen();
  expect(screen.queryByText('Your result is ready.')).toBeNull();
  fireEvent.press(screen.getByRole('tab', { name: 'History' }));
  expect(await screen.findByRole('button', { name: /^1 face: happy, / })).toBeOnTheScreen();
});

it('keeps an error that arrives while another tab is shown until the Capture screen shows it', async () => {
  const answer = await uploadThenOpen('History');
  await act(async () => answer.resolve(recorded.error415));
  expect(await screen.findByText('The photo could not be analysed.')).toBeOnTheScreen();
  expect(screen.getByText(/No results yet/)).toBeOnTheScreen(); // still on History

  fireEvent.press(screen.getByRole('tab', { name: 'Settings' }));
  expect(screen.getByText('The photo could not be analysed.')).toBeOnTheScreen(); // until seen
  fireEvent.press(screen.getByRole('button', { name: 'See why' }));
  expect(await screen.findByText(/cannot read this kind of file/)).toBeOnTheScreen();
  expect(screen.queryByText('The photo could not be analysed.')).toBeNull();

  // seen once, it stays on Capture after another visit elsewhere
  fireEvent.press(screen.getByRole('tab', { name: 'History' }));
  expect(screen.queryByText('The photo could not be analysed.')).toBeNull();
  fireEvent.press(screen.getByRole('tab', { name: 'Capture' }));
  expect(screen.getByText(/cannot read this kind of file/)).toBeOnTheScreen();
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
