import * as ImagePicker from 'expo-image-picker';
import { useState } from 'react';
import { ActivityIndicator, ScrollView, StyleSheet, Text, View } from 'react-native';

import { detectEmotions } from '../api/client';
import { describeError } from '../api/errors';
import { Button } from '../components/Button';
import { ErrorMessage } from '../components/ErrorMessage';
import { colors } from '../components/theme';
import { preparePhoto } from '../image/prepare';
import type { HistoryEntry } from '../storage/history';
import { CameraPanel } from './CameraPanel';

interface Props {
  serviceUrl: string;
  /** a new result, with the URI of the photo that was sent */
  onResult: (entry: HistoryEntry, photoUri: string) => void;
  onOpenSettings: () => void;
}

type Stage = 'idle' | 'camera' | 'preparing' | 'uploading';

let counter = 0;
function newId(): string {
  counter += 1;
  return `${Date.now().toString(36)}-${counter}`;
}

/** Take a photo or pick one, send it to the service, hand the result on. */
export function CaptureScreen({ serviceUrl, onResult, onOpenSettings }: Props) {
  const [stage, setStage] = useState<Stage>('idle');
  const [error, setError] = useState<string | null>(null);
  const [lastUri, setLastUri] = useState<string | null>(null);

  const analyse = async (uri: string) => {
    setError(null);
    setLastUri(uri);
    try {
      setStage('preparing');
      const photo = await preparePhoto(uri);
      setStage('uploading');
      const response = await detectEmotions({ uri: photo.uri, name: 'photo.jpg', type: 'image/jpeg' }, { baseUrl: serviceUrl });
      setStage('idle');
      onResult({ id: newId(), createdAt: new Date().toISOString(), thumbnailUri: photo.thumbnailUri, response }, photo.uri);
    } catch (e) {
      setStage('idle');
      setError(describeError(e));
    }
  };

  const pick = async () => {
    setError(null);
    try {
      const picked = await ImagePicker.launchImageLibraryAsync({ mediaTypes: ['images'], quality: 1 });
      if (!picked.canceled && picked.assets?.[0]?.uri) await analyse(picked.assets[0].uri);
    } catch (e) {
      setError(`The gallery could not be opened (${e instanceof Error ? e.message : String(e)}).`);
    }
  };

  if (!serviceUrl) {
    return (
      <View style={styles.screen}>
        <Text style={styles.title} accessibilityRole="header">Set up the service</Text>
        <Text style={styles.text}>
          nasfer sends your photo to a nasfer service, which finds the faces and their emotions. Enter its address first.
        </Text>
        <Button title="Open settings" onPress={onOpenSettings} />
      </View>
    );
  }

  const busy = stage === 'preparing' || stage === 'uploading';
  return (
    <ScrollView contentContainerStyle={styles.screen}>
      <Text style={styles.title} accessibilityRole="header">How do they feel?</Text>
      <Text style={styles.text}>Take a photo of one or more faces, or pick one from your gallery.</Text>
      {stage === 'camera' ? (
        <CameraPanel onPhoto={(uri) => void analyse(uri)} onClose={() => setStage('idle')} />
      ) : (
        <>
          <Button title="Take a photo" onPress={() => setStage('camera')} disabled={busy} accessibilityHint="Opens the camera" />
          <Button title="Pick from gallery" kind="secondary" onPress={() => void pick()} disabled={busy} />
        </>
      )}
      {busy && (
        <View style={styles.busy} accessibilityLiveRegion="polite" testID="busy">
          <ActivityIndicator color={colors.primary} />
          <Text style={styles.text}>{stage === 'preparing' ? 'Preparing the photo…' : `Sending to ${serviceUrl}…`}</Text>
        </View>
      )}
      {error && (
        <>
          <ErrorMessage message={error} />
          {lastUri && <Button title="Try again" kind="secondary" onPress={() => void analyse(lastUri)} />}
        </>
      )}
    </ScrollView>
  );
}

const styles = StyleSheet.create({
  screen: { padding: 16 },
  title: { fontSize: 22, fontWeight: '700', color: colors.text, marginBottom: 6 },
  text: { fontSize: 15, color: colors.muted, marginVertical: 6 },
  busy: { flexDirection: 'row', alignItems: 'center', gap: 8, marginVertical: 8 },
});
