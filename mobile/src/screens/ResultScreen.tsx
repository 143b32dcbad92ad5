import { ScrollView, StyleSheet, Text } from 'react-native';

import { Button } from '../components/Button';
import { EmotionBars } from '../components/EmotionBars';
import { FacePhoto } from '../components/FacePhoto';
import { colors } from '../components/theme';
import { uncertainNote } from '../components/uncertainty';
import type { HistoryEntry } from '../storage/history';
import { summarize } from '../storage/history';

interface Props {
  entry: HistoryEntry;
  /** the full photo when the result is fresh; a history entry shows its thumbnail */
  photoUri?: string;
  onBack: () => void;
  backTitle: string;
}

/**
 * Said when no face was found in a photo the service takes for a close-up face crop (its `hint`, which
 * is written for developers: CLI flags and Python), in words fit for the app.
 */
export const CROP_HINT_TEXT =
  'This photo looks like a close-up crop of a single face, and the face finder needs to see the whole face with some space around it. ' +
  'A wider photo that shows the whole face and some background works better.';
export const NO_FACE_TEXT = 'Try a brighter photo where the faces look at the camera and are not too small.';

/** The photo with every face boxed and labelled, and each face's emotion bars. */
export function ResultScreen({ entry, photoUri, onBack, backTitle }: Props) {
  const { response } = entry;
  const uncertain = response.faces.filter((f) => f.uncertain).length;
  return (
    <ScrollView contentContainerStyle={styles.screen} testID="result-screen">
      <Text style={styles.title} accessibilityRole="header">
        {summarize(response)}
      </Text>
      <FacePhoto uri={photoUri ?? entry.thumbnailUri} response={response} />
      {response.faces.length === 0 && (
        <Text style={styles.text}>
          {response.hint ? CROP_HINT_TEXT : NO_FACE_TEXT}
        </Text>
      )}
      {uncertain > 0 && (
        <Text style={styles.text}>
          {uncertainNote(response.threshold)}
        </Text>
      )}
      {response.faces.map((face, i) => (
        <EmotionBars key={i} face={face} index={i} labels={response.model.labels} threshold={response.threshold} />
      ))}
      <Text style={styles.meta}>
        {`Model ${response.model.name} · detector ${response.detector} · ${Math.round(response.timing_ms.total)} ms on the server · ${new Date(entry.createdAt).toLocaleString()}`}
      </Text>
      <Button title={backTitle} onPress={onBack} />
    </ScrollView>
  );
}

const styles = StyleSheet.create({
  screen: { padding: 16 },
  title: { fontSize: 20, fontWeight: '700', color: colors.text, marginBottom: 8 },
  text: { fontSize: 15, color: colors.muted, marginVertical: 6 },
  meta: { fontSize: 12, color: colors.muted, marginVertical: 8 },
});
