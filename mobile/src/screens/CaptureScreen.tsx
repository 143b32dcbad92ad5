import * as ImagePicker from 'expo-image-picker';
import { useState } from 'react';
import { ActivityIndicator, Platform, ScrollView, StyleSheet, Text, View } from 'react-native';

import { Button } from '../components/Button';
import { ErrorMessage } from '../components/ErrorMessage';
import { colors } from '../components/theme';
import type { Upload } from '../upload/useUpload';
import { CameraPanel } from './CameraPanel';

interface Props {
  serviceUrl: string;
  /** the photo being sent, kept by AppShell so that it survives a switch of tabs */
  upload: Upload;
  onOpenSettings: () => void;
}

/** Take a photo or pick one and send it; shows the sending and what went wrong. */
export function CaptureScreen({ serviceUrl, upload, onOpenSettings }: Props) {
  const [camera, setCamera] = useState(false);
  const [pickError, setPickError] = useState<string | null>(null);

  const pick = async () => {
    setPickError(null);
    upload.dismiss();
    try {
      const picked = await ImagePicker.launchImageLibraryAsync({ mediaTypes: ['images'], quality: 1 });
      if (!picked.canceled && picked.assets?.[0]?.uri) upload.start(picked.assets[0].uri);
    } catch (e) {
      setPickError(`The gallery could not be opened (${e instanceof Error ? e.message : String(e)}).`);
    }
  };

  if (!serviceUrl) {
    return (
      <View style={styles.screen}>
        <Text style={styles.title} accessibilityRole="header">Set up the service</Text>
        <Text style={styles.text}>
          {Platform.OS === 'web'
            ? 'nasfer sends your photo to a nasfer service, which finds the faces and their emotions. This web page is not served by one, so enter the address of your nasfer service in Settings first.'
            : 'nasfer sends your photo to a nasfer service, which finds the faces and their emotions. Enter its address first.'}
        </Text>
        <Button title="Open settings" onPress={onOpenSettings} />
      </View>
    );
  }

  const { stage, failure } = upload;
  const busy = stage !== 'idle';
  return (
    <ScrollView contentContainerStyle={styles.screen}>
      <Text style={styles.title} accessibilityRole="header">How do they feel?</Text>
      <Text style={styles.text}>Take a photo of one or more faces, or pick one from your gallery.</Text>
      {camera && !busy ? (
        <CameraPanel
          onPhoto={(uri) => {
            setCamera(false);
            upload.start(uri);
          }}
          onClose={() => setCamera(false)}
        />
      ) : (
        <>
          <Button title="Take a photo" onPress={() => setCamera(true)} disabled={busy} accessibilityHint="Opens the camera" />
          <Button title="Pick from gallery" kind="secondary" onPress={() => void pick()} disabled={busy} />
        </>
      )}
      {busy && (
        <>
          <View style={styles.busy} accessibilityLiveRegion="polite" testID="busy">
            <ActivityIndicator color={colors.primary} />
            <Text style={styles.busyText}>{stage === 'preparing' ? 'Preparing the photo…' : `Sending to ${serviceUrl}…`}</Text>
          </View>
          <Button title="Cancel" kind="secondary" onPress={upload.cancel} accessibilityHint="Stops sending this photo" />
        </>
      )}
      {pickError && <ErrorMessage message={pickError} />}
      {failure && !busy && (
        <>
          <ErrorMessage message={failure.message} />
          {failure.action === 'retry' && <Button title="Try again" kind="secondary" onPress={upload.retry} />}
          {failure.action === 'settings' && <Button title="Open settings" kind="secondary" onPress={onOpenSettings} />}
          {failure.action === 'another' && <Button title="Pick another photo" kind="secondary" onPress={() => void pick()} />}
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
  busyText: { flexShrink: 1, fontSize: 15, color: colors.muted },
});
