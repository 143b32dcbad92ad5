import { useEffect, useRef, useState } from 'react';
import { ActivityIndicator, ScrollView, StyleSheet, Text, TextInput, View } from 'react-native';

import { checkConnection, normalizeBaseUrl } from '../api/client';
import { describeError } from '../api/errors';
import type { ModelCard } from '../api/types';
import { Button } from '../components/Button';
import { ErrorMessage } from '../components/ErrorMessage';
import { colors, touchSize } from '../components/theme';

interface Props {
  serviceUrl: string;
  onSave: (serviceUrl: string) => Promise<void>;
}

type Check = { state: 'idle' } | { state: 'checking' } | { state: 'ok'; card: ModelCard } | { state: 'failed'; message: string };

/**
 * The service address, saved on the device, and a check that it answers and which model it runs.
 * Only the latest check is shown: a new one cancels the one still running, whose late answer (for an
 * address no longer set) is ignored.
 */
export function SettingsScreen({ serviceUrl, onSave }: Props) {
  const [text, setText] = useState(serviceUrl);
  const [check, setCheck] = useState<Check>({ state: 'idle' });
  const running = useRef<AbortController | null>(null);
  useEffect(() => setText(serviceUrl), [serviceUrl]);
  useEffect(() => () => running.current?.abort(), []);

  const saveAndCheck = async () => {
    running.current?.abort();
    const controller = new AbortController();
    running.current = controller;
    const show = (next: Check) => {
      if (running.current === controller) setCheck(next);
    };
    let url: string;
    try {
      url = normalizeBaseUrl(text);
    } catch (e) {
      show({ state: 'failed', message: describeError(e) });
      return;
    }
    setText(url);
    show({ state: 'checking' });
    await onSave(url);
    try {
      const card = await checkConnection({ baseUrl: url, timeoutMs: 10_000, retries: 0, signal: controller.signal });
      show({ state: 'ok', card });
    } catch (e) {
      show({ state: 'failed', message: describeError(e) });
    }
  };

  return (
    <ScrollView contentContainerStyle={styles.screen} keyboardShouldPersistTaps="handled">
      <Text style={styles.title} accessibilityRole="header">Settings</Text>
      <Text style={styles.label} nativeID="service-url-label">Service address</Text>
      <TextInput
        style={styles.input}
        value={text}
        onChangeText={setText}
        placeholder="https://nasfer.example.org"
        autoCapitalize="none"
        autoCorrect={false}
        keyboardType="url"
        inputMode="url"
        returnKeyType="done"
        onSubmitEditing={() => void saveAndCheck()}
        accessibilityLabel="Service address"
        accessibilityLabelledBy="service-url-label"
        testID="service-url"
      />
      <Text style={styles.help}>
        The address of a running nasfer service (nasfer serve), e.g. 192.168.1.20:8000 on your network or your deployed https address. Without http:// or https://, addresses on your network get http://, all others https://.
      </Text>
      <Button title="Save and check connection" onPress={() => void saveAndCheck()} />
      {check.state === 'checking' && (
        <View style={styles.row} accessibilityLiveRegion="polite">
          <ActivityIndicator color={colors.primary} />
          <Text style={styles.help}>Checking /healthz and /v1/model…</Text>
        </View>
      )}
      {check.state === 'failed' && <ErrorMessage message={check.message} />}
      {check.state === 'ok' && (
        <View style={styles.ok} accessibilityLiveRegion="polite" testID="connection-ok">
          <Text style={styles.okTitle}>Connected</Text>
          <Text style={styles.okText}>{`Model: ${check.card.name}`}</Text>
          <Text style={styles.okText}>{`Labels: ${check.card.labels.join(', ')}`}</Text>
        </View>
      )}
    </ScrollView>
  );
}

const styles = StyleSheet.create({
  screen: { padding: 16 },
  title: { fontSize: 22, fontWeight: '700', color: colors.text, marginBottom: 8 },
  label: { fontSize: 15, fontWeight: '600', color: colors.text, marginTop: 8 },
  input: {
    minHeight: touchSize,
    borderWidth: 1,
    borderColor: colors.border,
    borderRadius: 8,
    paddingHorizontal: 12,
    fontSize: 16,
    backgroundColor: colors.surface,
    color: colors.text,
    marginVertical: 6,
  },
  help: { fontSize: 14, color: colors.muted, marginVertical: 6 },
  row: { flexDirection: 'row', alignItems: 'center', gap: 8 },
  ok: { backgroundColor: '#e8f5e9', borderLeftWidth: 4, borderLeftColor: colors.ok, padding: 12, borderRadius: 6, marginVertical: 8 },
  okTitle: { fontWeight: '700', color: colors.ok, fontSize: 16 },
  okText: { color: colors.text, fontSize: 15, marginTop: 2 },
});
