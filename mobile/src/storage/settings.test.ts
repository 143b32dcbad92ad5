import AsyncStorage from '@react-native-async-storage/async-storage';
import { Platform } from 'react-native';

import { fakeFetch, recorded } from '../testing/network';
import { loadSettings, SETTINGS_KEY } from './settings';

const PAGE = 'https://app.example.org';

function servedFrom(origin: string | undefined) {
  Object.defineProperty(globalThis, 'location', { value: origin ? { origin } : undefined, configurable: true, writable: true });
}

beforeEach(async () => {
  await AsyncStorage.clear();
  delete process.env.EXPO_PUBLIC_NASFER_URL;
  servedFrom(undefined);
});

afterEach(() => jest.restoreAllMocks());
afterAll(() => servedFrom(undefined));

describe('the web build, before an address is set', () => {
  beforeEach(() => jest.replaceProperty(Platform, 'OS', 'web'));

  it('asks for the address when the page comes from a plain web server (its /healthz is the app page)', async () => {
    servedFrom(PAGE);
    globalThis.fetch = fakeFetch({ 'GET /healthz': { status: 200, headers: { 'content-type': 'text/html' }, body: '<!doctype html><div id="root">' } });
    expect(await loadSettings()).toEqual({ serviceUrl: '' });
    expect(globalThis.fetch).toHaveBeenCalledWith(`${PAGE}/healthz`, expect.anything());
  });

  it('asks for the address when the web server answers /healthz with 404', async () => {
    servedFrom(PAGE);
    globalThis.fetch = fakeFetch({ 'GET /healthz': { status: 404, headers: {}, body: null } });
    expect(await loadSettings()).toEqual({ serviceUrl: '' });
  });

  it("uses the page's own origin when it answers /healthz as a nasfer service", async () => {
    servedFrom(PAGE);
    globalThis.fetch = fakeFetch({ 'GET /healthz': recorded.healthz });
    expect(await loadSettings()).toEqual({ serviceUrl: PAGE });
  });

  it('uses the address it was built with, without asking the page', async () => {
    servedFrom(PAGE);
    process.env.EXPO_PUBLIC_NASFER_URL = 'https://nasfer.example.org';
    globalThis.fetch = fakeFetch({});
    expect(await loadSettings()).toEqual({ serviceUrl: 'https://nasfer.example.org' });
    expect(globalThis.fetch).not.toHaveBeenCalled();
  });

  it('keeps an address the person set, without asking the page', async () => {
    servedFrom(PAGE);
    await AsyncStorage.setItem(SETTINGS_KEY, JSON.stringify({ serviceUrl: 'http://192.168.1.20:8000' }));
    globalThis.fetch = fakeFetch({});
    expect(await loadSettings()).toEqual({ serviceUrl: 'http://192.168.1.20:8000' });
    expect(globalThis.fetch).not.toHaveBeenCalled();
  });
});

it('has no default on a phone unless built with one', async () => {
  expect(Platform.OS).toBe('ios');
  servedFrom(PAGE);
  globalThis.fetch = fakeFetch({});
  expect(await loadSettings()).toEqual({ serviceUrl: '' });
  process.env.EXPO_PUBLIC_NASFER_URL = 'https://nasfer.example.org';
  expect(await loadSettings()).toEqual({ serviceUrl: 'https://nasfer.example.org' });
  expect(globalThis.fetch).not.toHaveBeenCalled();
});
