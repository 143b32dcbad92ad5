/** The service address, kept on the device (AsyncStorage). */
import AsyncStorage from '@react-native-async-storage/async-storage';
import { useCallback, useEffect, useState } from 'react';
import { Platform } from 'react-native';

export const SETTINGS_KEY = 'nasfer.settings.v1';

export interface Settings {
  serviceUrl: string;
}

/**
 * The address used until the user sets one: EXPO_PUBLIC_NASFER_URL when the app was built with it,
 * else, in a browser, the site the web build is served from; else none.
 */
export function defaultServiceUrl(): string {
  const built = process.env.EXPO_PUBLIC_NASFER_URL;
  if (built) return built;
  if (Platform.OS === 'web' && typeof window !== 'undefined' && window.location?.origin?.startsWith('http')) {
    return window.location.origin;
  }
  return '';
}

export async function loadSettings(): Promise<Settings> {
  const fallback = { serviceUrl: defaultServiceUrl() };
  try {
    const text = await AsyncStorage.getItem(SETTINGS_KEY);
    const stored = text ? JSON.parse(text) : null;
    return typeof stored?.serviceUrl === 'string' ? { serviceUrl: stored.serviceUrl } : fallback;
  } catch {
    return fallback;
  }
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
