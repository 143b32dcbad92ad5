import { act, fireEvent, screen } from '@testing-library/react-native';

import { later, recorded, responseOf } from '../testing/network';
import { renderOnPhone } from '../testing/render';
import { SettingsScreen } from './SettingsScreen';

const OLD = 'http://192.168.1.20:8000';
const NEW = 'http://192.168.1.21:8000';

it('shows the check of the address set last, even when an older, slower check answers after it', async () => {
  // the old address answers late, and ignores being cancelled (the answer was already on its way)
  const slow = later();
  globalThis.fetch = jest.fn(async (input: RequestInfo | URL) => {
    const url = String(input);
    if (url.startsWith(OLD)) return responseOf(await slow.promise);
    if (url.endsWith('/healthz')) return responseOf(recorded.healthz);
    return responseOf(recorded.model);
  }) as unknown as typeof fetch;
  const onSave = jest.fn(async () => {});
  renderOnPhone(<SettingsScreen serviceUrl={OLD} onSave={onSave} />);

  fireEvent.press(screen.getByRole('button', { name: 'Save and check connection' }));
  expect(await screen.findByText('Checking /healthz and /v1/model…')).toBeOnTheScreen();

  fireEvent.changeText(screen.getByLabelText('Service address'), NEW);
  fireEvent.press(screen.getByRole('button', { name: 'Save and check connection' }));
  expect(await screen.findByText('Model: nasfer-vgg32x3-long-tta')).toBeOnTheScreen();

  // the old address's answer arrives now: it must not replace the new one's
  await act(async () => slow.resolve({ status: 200, headers: {}, body: { error: 'not json of a nasfer service' } }));
  expect(screen.getByText('Model: nasfer-vgg32x3-long-tta')).toBeOnTheScreen();
  expect(screen.queryByRole('alert')).toBeNull();
  expect(onSave).toHaveBeenLastCalledWith(NEW);
});

it('cancels the check still running when a new one starts', async () => {
  const signals: AbortSignal[] = [];
  globalThis.fetch = jest.fn((_input: RequestInfo | URL, init?: RequestInit) => {
    signals.push(init!.signal!);
    return new Promise<Response>(() => {});
  }) as unknown as typeof fetch;
  renderOnPhone(<SettingsScreen serviceUrl={OLD} onSave={async () => {}} />);
  fireEvent.press(screen.getByRole('button', { name: 'Save and check connection' }));
  await screen.findByText('Checking /healthz and /v1/model…');
  fireEvent.press(screen.getByRole('button', { name: 'Save and check connection' }));
  await act(async () => {});
  expect(signals).toHaveLength(2);
  expect(signals[0].aborted).toBe(true);
  expect(signals[1].aborted).toBe(false);
  expect(screen.getByText('Checking /healthz and /v1/model…')).toBeOnTheScreen();
});

it('says what is wrong with a mistyped address before checking anything', async () => {
  globalThis.fetch = jest.fn() as unknown as typeof fetch;
  renderOnPhone(<SettingsScreen serviceUrl="" onSave={async () => {}} />);
  fireEvent.changeText(screen.getByLabelText('Service address'), 'http//127.0.0.1:8765');
  fireEvent.press(screen.getByRole('button', { name: 'Save and check connection' }));
  expect(await screen.findByText(/write its start as http:\/\/ or https:\/\/, with a colon and two slashes/)).toBeOnTheScreen();
  fireEvent.changeText(screen.getByLabelText('Service address'), '192.168.1,20:8000');
  fireEvent.press(screen.getByRole('button', { name: 'Save and check connection' }));
  expect(await screen.findByText(/"192\.168\.1,20" is not a valid host name or IP address/)).toBeOnTheScreen();
  expect(globalThis.fetch).not.toHaveBeenCalled();
});

it('checks a public address typed without a scheme over https', async () => {
  globalThis.fetch = jest.fn(async (input: RequestInfo | URL) =>
    responseOf(String(input).endsWith('/healthz') ? recorded.healthz : recorded.model)) as unknown as typeof fetch;
  const onSave = jest.fn(async () => {});
  renderOnPhone(<SettingsScreen serviceUrl="" onSave={onSave} />);
  fireEvent.changeText(screen.getByLabelText('Service address'), 'nasfer.example.org');
  fireEvent.press(screen.getByRole('button', { name: 'Save and check connection' }));
  expect(await screen.findByText('Connected')).toBeOnTheScreen();
  expect(onSave).toHaveBeenCalledWith('https://nasfer.example.org');
  expect(globalThis.fetch).toHaveBeenCalledWith('https://nasfer.example.org/healthz', expect.objectContaining({ redirect: 'manual' }));
  expect(screen.getByLabelText('Service address').props.value).toBe('https://nasfer.example.org');
});

it('fails the check of an http address that redirects to https, before any photo is sent', async () => {
  globalThis.fetch = jest.fn(async () =>
    responseOf({ status: 301, headers: { Location: 'https://nasfer.example.org/healthz' }, text: '' })) as unknown as typeof fetch;
  renderOnPhone(<SettingsScreen serviceUrl="http://nasfer.example.org" onSave={async () => {}} />);
  fireEvent.press(screen.getByRole('button', { name: 'Save and check connection' }));
  expect(await screen.findByText(/redirects to https:\/\/nasfer\.example\.org\. Enter https:\/\/nasfer\.example\.org in Settings/)).toBeOnTheScreen();
  expect(screen.queryByText('Connected')).toBeNull();
});
