import { StyleSheet, Text, View } from 'react-native';

import type { Face } from '../api/types';
import { colors, faceColor } from './theme';
import { faceCaption } from './FacePhoto';

interface Props {
  face: Face;
  index: number;
  /** the model's labels in its own order (custom label sets are shown as they are) */
  labels: string[];
}

/** One face's card: its label and confidence, an "uncertain" mark, and a bar per label. */
export function EmotionBars({ face, index, labels }: Props) {
  const order = labels.length ? labels : Object.keys(face.scores);
  return (
    <View style={[styles.card, { borderLeftColor: faceColor(index) }]} testID={`face-card-${index + 1}`}>
      <Text style={styles.title} accessibilityRole="header">
        {`Face ${index + 1}: ${faceCaption(face.label, face.confidence, false)}`}
      </Text>
      {face.uncertain && (
        <Text style={styles.uncertain} testID={`face-uncertain-${index + 1}`}>
          Uncertain: no emotion is clearly ahead
        </Text>
      )}
      {order.map((label) => {
        const p = face.scores[label] ?? 0;
        const percent = Math.round(p * 100);
        return (
          <View
            key={label}
            style={styles.row}
            accessible
            accessibilityLabel={`${label} ${percent} percent`}
          >
            <Text style={[styles.label, label === face.label && styles.top]} numberOfLines={1}>
              {label}
            </Text>
            <View style={styles.track}>
              <View style={[styles.fill, { width: `${Math.max(0, Math.min(100, p * 100))}%` }]} />
            </View>
            <Text style={styles.value}>{`${percent}%`}</Text>
          </View>
        );
      })}
    </View>
  );
}

const styles = StyleSheet.create({
  card: {
    backgroundColor: colors.surface,
    borderRadius: 8,
    borderLeftWidth: 6,
    padding: 12,
    marginVertical: 6,
  },
  title: { fontSize: 17, fontWeight: '700', color: colors.text, marginBottom: 4 },
  uncertain: { color: colors.uncertain, fontWeight: '600', marginBottom: 4 },
  row: { flexDirection: 'row', alignItems: 'center', marginVertical: 2 },
  label: { width: 84, fontSize: 14, color: colors.text },
  top: { fontWeight: '700' },
  track: { flex: 1, height: 12, backgroundColor: colors.barTrack, borderRadius: 6, overflow: 'hidden' },
  fill: { height: 12, backgroundColor: colors.bar },
  value: { width: 44, textAlign: 'right', fontSize: 14, color: colors.muted },
});
