/** Recent results, kept on the device (AsyncStorage): newest first, at most HISTORY_LIMIT. */
import AsyncStorage from '@react-native-async-storage/async-storage';
import { useCallback, useEffect, useRef, useState } from 'react';

import type { EmotionsResponse } from '../api/types';

export const HISTORY_KEY = 'nasfer.history.v1';
export const HISTORY_LIMIT = 20;

export interface HistoryEntry {
  id: string;
  /** ISO 8601 time the result arrived */
  createdAt: string;
  /** small JPEG of the photo, as a data: URI (see image/prepare.ts) */
  thumbnailUri: string;
  response: EmotionsResponse;
}

export async function loadHistory(): Promise<HistoryEntry[]> {
  try {
    const text = await AsyncStorage.getItem(HISTORY_KEY);
    const entries = text ? JSON.parse(text) : [];
    return Array.isArray(entries) ? entries.filter((e) => e && typeof e.id === 'string' && e.response) : [];
  } catch {
    return [];
  }
}

async function store(entries: HistoryEntry[]): Promise<void> {
  await AsyncStorage.setItem(HISTORY_KEY, JSON.stringify(entries));
}

export interface History {
  entries: HistoryEntry[];
  loaded: boolean;
  add: (entry: HistoryEntry) => Promise<void>;
  remove: (id: string) => Promise<void>;
  clear: () => Promise<void>;
}

export function useHistory(): History {
  const [entries, setEntries] = useState<HistoryEntry[]>([]);
  const [loaded, setLoaded] = useState(false);
  const current = useRef<HistoryEntry[]>([]);
  useEffect(() => {
    let live = true;
    loadHistory().then((found) => {
      if (live) {
        // anything added before the stored list arrived is newer: keep it first
        const added = current.current;
        current.current = [...added, ...found.filter((f) => !added.some((e) => e.id === f.id))].slice(0, HISTORY_LIMIT);
        setEntries(current.current);
        setLoaded(true);
      }
    });
    return () => {
      live = false;
    };
  }, []);

  const update = useCallback(async (change: (entries: HistoryEntry[]) => HistoryEntry[]) => {
    current.current = change(current.current);
    setEntries(current.current);
    await store(current.current);
  }, []);

  const add = useCallback(
    (entry: HistoryEntry) => update((list) => [entry, ...list.filter((e) => e.id !== entry.id)].slice(0, HISTORY_LIMIT)),
    [update],
  );
  const remove = useCallback((id: string) => update((list) => list.filter((e) => e.id !== id)), [update]);
  const clear = useCallback(() => update(() => []), [update]);
  return { entries, loaded, add, remove, clear };
}

/** A short summary of a result for lists and screen readers, e.g. "2 faces: happy, sad". */
export function summarize(response: EmotionsResponse): string {
  const n = response.faces.length;
  if (n === 0) return 'No face found';
  return `${n} face${n === 1 ? '' : 's'}: ${response.faces.map((f) => f.label).join(', ')}`;
}
