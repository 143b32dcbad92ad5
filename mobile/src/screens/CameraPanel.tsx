import { CameraType, CameraView, useCameraPermissions } from 'expo-camera';
import { useRef, useState } from 'react';
import { Linking, Platform, StyleSheet, Text, View } from 'react-native';

import { Button } from '../components/Button';
import { ErrorMessage } from '../components/ErrorMessage';
import { colors } from '../components/theme';
import { BROWSER_CAMERA_MESSAGES, browserCameraProblem } from './browserCamera';

interface Props {
  /** called with the URI of the photo taken */
  onPhoto: (uri: string) => void;
  onClose: () => void;
}

/** The live camera with a shutter and a front/back switch, after asking for permission. */
export function CameraPanel({ onPhoto, onClose }: Props) {
  const [permission, requestPermission] = useCameraPermissions();
  const [facing, setFacing] = useState<CameraType>('back');
  const [ready, setReady] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [refused, setRefused] = useState(false);
  const camera = useRef<CameraView>(null);

  const problem = browserCameraProblem();
  if (problem) {
    return (
      <View>
        <ErrorMessage message={BROWSER_CAMERA_MESSAGES[problem]} />
        <Button title="Close camera" kind="secondary" onPress={onClose} />
      </View>
    );
  }
  if (!permission) {
    return <Text style={styles.note}>Checking camera permission…</Text>;
  }
  if (!permission.granted) {
    const ask = async () => {
      setError(null);
      try {
        const answer = await requestPermission();
        setRefused(!answer?.granted);
      } catch (e) {
        setError(`The camera could not be requested (${e instanceof Error ? e.message : String(e)}).`);
      }
    };
    // a browser always says "can ask again", and a refusal there is otherwise silent
    const blockedInBrowser = Platform.OS === 'web' && (refused || permission.status === 'denied');
    return (
      <View>
        <Text style={styles.note}>
          nasfer needs the camera to take a photo. Photos are sent only to the service set in Settings.
        </Text>
        {blockedInBrowser && <ErrorMessage message={BROWSER_CAMERA_MESSAGES.denied} />}
        {error && <ErrorMessage message={error} />}
        {permission.canAskAgain ? (
          <Button title="Allow camera" onPress={() => void ask()} />
        ) : (
          <>
            <Text style={styles.note}>Camera access was turned off for this app. Turn it on in the system settings.</Text>
            <Button title="Open system settings" onPress={() => void Linking.openSettings()} />
          </>
        )}
        <Button title="Cancel" kind="secondary" onPress={onClose} />
      </View>
    );
  }

  const shoot = async () => {
    setError(null);
    try {
      const photo = await camera.current?.takePictureAsync({ quality: 1 });
      if (photo?.uri) onPhoto(photo.uri);
    } catch (e) {
      setError(`The photo could not be taken (${e instanceof Error ? e.message : String(e)}).`);
    }
  };

  return (
    <View>
      <View
        style={styles.preview}
        accessible
        accessibilityLabel={`Camera preview, ${facing === 'back' ? 'back' : 'front'} camera`}
        testID="camera-preview"
      >
        {/* a new camera view per side: onCameraReady fires once per mount (not on a switch, on the web) */}
        <CameraView
          key={facing}
          ref={camera}
          style={StyleSheet.absoluteFill}
          facing={facing}
          onCameraReady={() => setReady(true)}
          onMountError={(e) => setError(`The camera could not start: ${e.message}`)}
        />
      </View>
      {error && <ErrorMessage message={error} />}
      <Button title="Take photo" onPress={() => void shoot()} disabled={!ready} />
      <View style={styles.row}>
        <View style={styles.half}>
          <Button
            title={facing === 'back' ? 'Front camera' : 'Back camera'}
            accessibilityLabel={`Switch to the ${facing === 'back' ? 'front' : 'back'} camera`}
            kind="secondary"
            onPress={() => {
              setReady(false);
              setFacing(facing === 'back' ? 'front' : 'back');
            }}
          />
        </View>
        <View style={styles.half}>
          <Button title="Close camera" kind="secondary" onPress={onClose} />
        </View>
      </View>
    </View>
  );
}

const styles = StyleSheet.create({
  preview: { width: '100%', aspectRatio: 3 / 4, maxHeight: 420, backgroundColor: '#000', borderRadius: 8, overflow: 'hidden' },
  note: { color: colors.muted, fontSize: 15, marginVertical: 8 },
  row: { flexDirection: 'row', gap: 8 },
  half: { flex: 1 },
});
