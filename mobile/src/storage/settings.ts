/** The service address, kept on the device (AsyncStorage). */
import AsyncStorage from '@react-native-async-storage/async-storage';
import { useCallback, useEffect, useState } from 'react';
import { Platform } from 'react-native';

import { getHealth } from '../api/client';

export const SETTINGS_KEY = 'nasfer.settings.v1';

export interface Settings {
  serviceUrl: string;
}

/** How long the web build waits for its own origin's /healthz before asking for an address. */
export const ORIGIN_CHECK_TIMEOUT_MS = 5_000;

/**
 * The address used until the user sets one: EXPO_PUBLIC_NASFER_URL when the app was built with it;
 * else, in a browser, the site the web build is served from, but only when that site answers /healthz
 * as a nasfer service (a web build is usually served by a plain web server, which would fail every
 * photo); else none, and the app asks for the address.
 */
export async function defaultServiceUrl(): Promise<string> {
  const built = process.env.EXPO_PUBLIC_NASFER_URL;
  if (built) return built;
  const origin = Platform.OS === 'web' ? globalThis.location?.origin : undefined;
  if (!origin?.startsWith('http')) return '';
  try {
    await getHealth({ baseUrl: origin, timeoutMs: ORIGIN_CHECK_TIMEOUT_MS, retries: 0 });
    return origin;
  } catch {
    return '';
  }
}

export async function loadSettings(): Promise<Settings> {
  let stored: { serviceUrl?: unknown } | null = null;
  try {
    const text = await AsyncStorage.getItem(SETTINGS_KEY);
    stored = text ? JSON.parse(text) : null;
  } catch {
    stored = null;
  }
  if (typeof stored?.serviceUrl === 'string') return { serviceUrl: stored.serviceUrl };
  return { serviceUrl: await defaultServiceUrl() };
}

export async function saveSettings(settings: Settings): Promise<void> {
  await AsyncStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));
}

/** [settings (null while loading), save]. */
export function useSettings(): [Settings | null, (settings: Settings) => Promise<void>] {
  const [settings, setSettings] = useState<Settings | null>(null);
  useEffect(() => {
    let live = true;
    loadSettings().then((loaded) => live && setSettings(loaded));
    return () => {
      live = false;
    };
  }, []);
  const save = useCallback(async (next: Settings) => {
    setSettings(next);
    await saveSettings(next);
  }, []);
  return [settings, save];
}
