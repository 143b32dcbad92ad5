import { useEffect, useRef, useState } from 'react';
import { ActivityIndicator, Pressable, StyleSheet, Text, View } from 'react-native';
import { SafeAreaView } from 'react-native-safe-area-context';

import { Notice } from './components/Notice';
import { colors, touchSize } from './components/theme';
import { CaptureScreen } from './screens/CaptureScreen';
import { HistoryScreen } from './screens/HistoryScreen';
import { ResultScreen } from './screens/ResultScreen';
import { SettingsScreen } from './screens/SettingsScreen';
import type { HistoryEntry } from './storage/history';
import { useHistory } from './storage/history';
import { useSettings } from './storage/settings';
import { useUpload } from './upload/useUpload';

type Tab = 'capture' | 'history' | 'settings';
const TABS: { key: Tab; title: string }[] = [
  { key: 'capture', title: 'Capture' },
  { key: 'history', title: 'History' },
  { key: 'settings', title: 'Settings' },
];

interface Shown {
  entry: HistoryEntry;
  photoUri?: string;
  from: Tab;
}

/**
 * The app: three tabs (capture, history, settings) and the result screen over them. The photo being
 * sent is kept here, not in the Capture screen: a result that arrives while another tab or result is
 * shown waits behind a "result ready" notice instead of taking over the screen, and an error that
 * arrives then is kept, with a notice, until the Capture screen has shown it.
 */
export function AppShell() {
  const [settings, saveSettings] = useSettings();
  const history = useHistory();
  const [tab, setTab] = useState<Tab>('capture');
  const [shown, setShown] = useState<Shown | null>(null);
  const [ready, setReady] = useState<Shown | null>(null);
  const [failureUnseen, setFailureUnseen] = useState(false);
  const onCapture = tab === 'capture' && !shown;
  const view = useRef(onCapture);
  view.current = onCapture;
  useEffect(() => {
    if (onCapture) setFailureUnseen(false);
  }, [onCapture]);

  const upload = useUpload(settings?.serviceUrl ?? '', {
    onResult: ({ entry, photoUri }) => {
      void history.add(entry);
      const result = { entry, photoUri, from: 'capture' as const };
      if (view.current) setShown(result);
      else setReady(result);
    },
    onFailure: () => {
      if (!view.current) setFailureUnseen(true);
    },
  });

  const start = (uri: string) => {
    setReady(null);
    upload.start(uri);
  };

  let body;
  if (!settings) {
    body = <ActivityIndicator style={styles.loading} color={colors.primary} accessibilityLabel="Loading" />;
  } else if (shown) {
    body = (
      <ResultScreen
        entry={shown.entry}
        photoUri={shown.photoUri}
        backTitle={shown.from === 'history' ? 'Back to history' : 'New photo'}
        onBack={() => {
          setTab(shown.from);
          setShown(null);
        }}
      />
    );
  } else if (tab === 'capture') {
    body = (
      <CaptureScreen
        serviceUrl={settings.serviceUrl}
        upload={{ ...upload, start }}
        onOpenSettings={() => setTab('settings')}
      />
    );
  } else if (tab === 'history') {
    body = (
      <HistoryScreen
        history={history}
        onOpen={(entry) => {
          if (ready?.entry.id === entry.id) setReady(null);
          setShown({ entry, from: 'history' });
        }}
      />
    );
  } else {
    body = <SettingsScreen serviceUrl={settings.serviceUrl} onSave={(serviceUrl) => saveSettings({ serviceUrl })} />;
  }

  let notice = null;
  if (failureUnseen && upload.failure) {
    notice = (
      <Notice
        kind="error"
        message="The photo could not be analysed."
        action="See why"
        testID="failure-notice"
        onPress={() => {
          setShown(null);
          setTab('capture');
        }}
      />
    );
  } else if (ready && shown?.entry.id !== ready.entry.id) {
    notice = (
      <Notice
        message="Your result is ready."
        action="Show result"
        testID="result-notice"
        onPress={() => {
          setShown(ready);
          setReady(null);
        }}
      />
    );
  }

  return (
    <SafeAreaView style={styles.app} edges={['top', 'left', 'right', 'bottom']}>
      <View style={styles.body}>{body}</View>
      {notice}
      <View style={styles.tabs} accessibilityRole="tablist">
        {TABS.map(({ key, title }) => {
          const selected = tab === key && !shown;
          return (
            <Pressable
              key={key}
              style={styles.tab}
              accessibilityRole="tab"
              accessibilityLabel={title}
              accessibilityState={{ selected }}
              onPress={() => {
                setShown(null);
                setTab(key);
              }}
            >
              <Text style={[styles.tabText, selected && styles.tabSelected]}>{title}</Text>
            </Pressable>
          );
        })}
      </View>
    </SafeAreaView>
  );
}

const styles = StyleSheet.create({
  app: { flex: 1, backgroundColor: colors.background },
  body: { flex: 1 },
  loading: { marginTop: 48 },
  tabs: { flexDirection: 'row', borderTopWidth: 1, borderTopColor: colors.border, backgroundColor: colors.surface },
  tab: { flex: 1, minHeight: touchSize, alignItems: 'center', justifyContent: 'center' },
  tabText: { fontSize: 15, color: colors.muted },
  tabSelected: { color: colors.primary, fontWeight: '700' },
});
