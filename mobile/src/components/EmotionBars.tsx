import { StyleSheet, Text, useWindowDimensions, View } from 'react-native';

import type { Face } from '../api/types';
import { colors, faceColor } from './theme';
import { faceCaption } from './FacePhoto';
import { uncertainLine, uncertainReason } from './uncertainty';

interface Props {
  face: Face;
  index: number;
  /** the model's labels in its own order (custom label sets are shown as they are) */
  labels: string[];
  /** the request's threshold: faces whose top emotion is below it are uncertain */
  threshold: number;
}

/** Width of the label and the value columns at the default text size; they grow with the system's. */
const LABEL_WIDTH = 84;
const VALUE_WIDTH = 44;

/** One face's card: its label and confidence, an "uncertain" mark with its reason, and a bar per label. */
export function EmotionBars({ face, index, labels, threshold }: Props) {
  const order = labels.length ? labels : Object.keys(face.scores);
  const { fontScale } = useWindowDimensions();
  const reason = uncertainReason(face, threshold);
  return (
    <View style={[styles.card, { borderLeftColor: faceColor(index) }]} testID={`face-card-${index + 1}`}>
      <Text style={styles.title} accessibilityRole="header">
        {`Face ${index + 1}: ${faceCaption(face.label, face.confidence, false)}`}
      </Text>
      {reason && (
        <Text style={styles.uncertain} testID={`face-uncertain-${index + 1}`}>
          {uncertainLine(reason, threshold)}
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
            <Text
              style={[styles.label, { flexBasis: LABEL_WIDTH * Math.max(1, fontScale) }, label === face.label && styles.top]}
              numberOfLines={2}
              testID="bar-label"
            >
              {label}
            </Text>
            <View style={styles.track}>
              <View style={[styles.fill, { width: `${Math.max(0, Math.min(100, p * 100))}%` }]} />
            </View>
            <Text style={[styles.value, { minWidth: VALUE_WIDTH * Math.max(1, fontScale) }]} testID="bar-value">{`${percent}%`}</Text>
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
  // at most 40% of the row however large the text: longer labels wrap to a second line
  label: { flexGrow: 0, flexShrink: 0, maxWidth: '40%', paddingRight: 4, fontSize: 14, color: colors.text },
  top: { fontWeight: '700' },
  track: { flex: 1, height: 12, backgroundColor: colors.barTrack, borderRadius: 6, overflow: 'hidden' },
  fill: { height: 12, backgroundColor: colors.bar },
  value: { textAlign: 'right', fontSize: 14, color: colors.muted },
});
