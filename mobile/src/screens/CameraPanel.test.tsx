import { act, fireEvent, screen } from '@testing-library/react-native';
import { useCameraPermissions } from 'expo-camera';
import { Linking } from 'react-native';

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

it('asks for the camera when permission is not yet given', () => {
  withPermission({ granted: false, canAskAgain: true, status: 'undetermined' });
  renderOnPhone(<CameraPanel onPhoto={jest.fn()} onClose={jest.fn()} />);
  expect(screen.getByText(/needs the camera/)).toBeOnTheScreen();
  fireEvent.press(screen.getByRole('button', { name: 'Allow camera' }));
  expect(request).toHaveBeenCalled();
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
