import { act, fireEvent, screen } from '@testing-library/react-native';
import { useCameraPermissions } from 'expo-camera';
import { Linking, Platform } from 'react-native';

import { renderOnPhone } from '../testing/render';
import { CameraPanel } from './CameraPanel';

// expo-camera is native: a fake CameraView reports ready once when mounted (as the web one does) and
// takes a "photo"; permissions are set per test.
jest.mock('expo-camera', () => {
  const { forwardRef, useEffect, useImperativeHandle } = require('react');
  const { View } = require('react-native');
  const CameraView = forwardRef((props: any, ref: any) => {
    useImperativeHandle(ref, () => ({ takePictureAsync: async () => ({ uri: `file:///camera/${props.facing}.jpg` }) }));
    useEffect(() => props.onCameraReady?.(), []);
    return <View testID={`camera-${props.facing}`} />;
  });
  return { CameraView, useCameraPermissions: jest.fn() };
});

const permissions = useCameraPermissions as jest.Mock;
const request = jest.fn();

function withPermission(value: object | null) {
  permissions.mockReturnValue([value, request]);
}

beforeEach(() => request.mockReset());
afterEach(() => jest.restoreAllMocks());

/** A browser page: `secure` as window.isSecureContext, `camera` whether navigator.mediaDevices exists. */
function inBrowser({ secure, camera }: { secure: boolean; camera: boolean }) {
  jest.replaceProperty(Platform, 'OS', 'web');
  const mediaDevices = camera ? { getUserMedia: jest.fn() } : undefined;
  const saved = { navigator: globalThis.navigator, isSecureContext: (globalThis as { isSecureContext?: boolean }).isSecureContext };
  Object.defineProperty(globalThis, 'navigator', { value: { ...saved.navigator, mediaDevices }, configurable: true, writable: true });
  Object.defineProperty(globalThis, 'isSecureContext', { value: secure, configurable: true, writable: true });
  return () => {
    Object.defineProperty(globalThis, 'navigator', { value: saved.navigator, configurable: true, writable: true });
    Object.defineProperty(globalThis, 'isSecureContext', { value: saved.isSecureContext, configurable: true, writable: true });
  };
}

describe('in a browser', () => {
  let restore = () => {};
  afterEach(() => restore());

  it('says that the camera needs https or localhost on a plain http page, instead of a button that does nothing', () => {
    restore = inBrowser({ secure: false, camera: false });
    withPermission({ granted: false, canAskAgain: true, status: 'undetermined' });
    const onClose = jest.fn();
    renderOnPhone(<CameraPanel onPhoto={jest.fn()} onClose={onClose} />);
    expect(screen.getByRole('alert')).toHaveTextContent(/only over https:\/\/ or on localhost.*pick a photo from your gallery/);
    expect(screen.queryByRole('button', { name: 'Allow camera' })).toBeNull();
    fireEvent.press(screen.getByRole('button', { name: 'Close camera' }));
    expect(onClose).toHaveBeenCalled();
  });

  it('says so when the browser has no camera for pages at all', () => {
    restore = inBrowser({ secure: true, camera: false });
    withPermission({ granted: false, canAskAgain: true, status: 'undetermined' });
    renderOnPhone(<CameraPanel onPhoto={jest.fn()} onClose={jest.fn()} />);
    expect(screen.getByRole('alert')).toHaveTextContent(/does not let web pages use the camera/);
  });

  it('says how to allow the camera when the browser refuses it (it always claims it can ask again)', async () => {
    restore = inBrowser({ secure: true, camera: true });
    withPermission({ granted: false, canAskAgain: true, status: 'undetermined' });
    request.mockResolvedValue({ granted: false, canAskAgain: true, status: 'denied' });
    renderOnPhone(<CameraPanel onPhoto={jest.fn()} onClose={jest.fn()} />);
    expect(screen.queryByRole('alert')).toBeNull();
    await act(async () => fireEvent.press(screen.getByRole('button', { name: 'Allow camera' })));
    expect(request).toHaveBeenCalled();
    expect(screen.getByRole('alert')).toHaveTextContent(/browser blocked the camera for this page\. Allow it in the site settings/);
  });

  it('says so at once when the camera was blocked for the page before', () => {
    restore = inBrowser({ secure: true, camera: true });
    withPermission({ granted: false, canAskAgain: true, status: 'denied' });
    renderOnPhone(<CameraPanel onPhoto={jest.fn()} onClose={jest.fn()} />);
    expect(screen.getByRole('alert')).toHaveTextContent(/browser blocked the camera/);
    expect(screen.getByRole('button', { name: 'Allow camera' })).toBeOnTheScreen();
  });
});

it('shows an error when asking for the camera fails', async () => {
  withPermission({ granted: false, canAskAgain: true, status: 'undetermined' });
  request.mockRejectedValue(new Error('no camera hardware'));
  renderOnPhone(<CameraPanel onPhoto={jest.fn()} onClose={jest.fn()} />);
  await act(async () => fireEvent.press(screen.getByRole('button', { name: 'Allow camera' })));
  expect(screen.getByRole('alert')).toHaveTextContent('The camera could not be requested (no camera hardware).');
});

it('asks for the camera when permission is not yet given', async () => {
  withPermission({ granted: false, canAskAgain: true, status: 'undetermined' });
  request.mockResolvedValue({ granted: true, canAskAgain: true, status: 'granted' });
  renderOnPhone(<CameraPanel onPhoto={jest.fn()} onClose={jest.fn()} />);
  expect(screen.getByText(/needs the camera/)).toBeOnTheScreen();
  await act(async () => fireEvent.press(screen.getByRole('button', { name: 'Allow camera' })));
  expect(request).toHaveBeenCalled();
  expect(screen.queryByRole('alert')).toBeNull();
});

it('sends to the system settings when the camera was refused for good', () => {
  withPermission({ granted: false, canAskAgain: false, status: 'denied' });
  const openSettings = jest.spyOn(Linking, 'openSettings').mockResolvedValue(undefined);
  const onClose = jest.fn();
  renderOnPhone(<CameraPanel onPhoto={jest.fn()} onClose={onClose} />);
  expect(screen.queryByRole('button', { name: 'Allow camera' })).toBeNull();
  fireEvent.press(screen.getByRole('button', { name: 'Open system settings' }));
  expect(openSettings).toHaveBeenCalled();
  fireEvent.press(screen.getByRole('button', { name: 'Cancel' }));
  expect(onClose).toHaveBeenCalled();
});

it('shows the back camera, switches to the front one and back, and takes a photo', async () => {
  withPermission({ granted: true, canAskAgain: true, status: 'granted' });
  const onPhoto = jest.fn();
  renderOnPhone(<CameraPanel onPhoto={onPhoto} onClose={jest.fn()} />);
  expect(screen.getByLabelText('Camera preview, back camera')).toBeOnTheScreen();

  fireEvent.press(screen.getByRole('button', { name: 'Switch to the front camera' }));
  expect(screen.getByLabelText('Camera preview, front camera')).toBeOnTheScreen();
  await act(async () => fireEvent.press(screen.getByRole('button', { name: 'Take photo' })));
  expect(onPhoto).toHaveBeenCalledWith('file:///camera/front.jpg');

  fireEvent.press(screen.getByRole('button', { name: 'Switch to the back camera' }));
  expect(screen.getByLabelText('Camera preview, back camera')).toBeOnTheScreen();
});

it('waits while the permission is being read', () => {
  withPermission(null);
  renderOnPhone(<CameraPanel onPhoto={jest.fn()} onClose={jest.fn()} />);
  expect(screen.getByText('Checking camera permission…')).toBeOnTheScreen();
});
