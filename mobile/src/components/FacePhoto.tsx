import { useState } from 'react';
import { Image, LayoutChangeEvent, StyleSheet, Text, useWindowDimensions, View } from 'react-native';

import type { EmotionsResponse } from '../api/types';
import { faceColor } from './theme';

/** Height of a face's caption at the default text size; it grows with the system's text size. */
const CAPTION_HEIGHT = 20;

/** "happy 90%", with a question mark when the face is uncertain. */
export function faceCaption(label: string, confidence: number, uncertain: boolean): string {
  return `${label} ${Math.round(confidence * 100)}%${uncertain ? ' ?' : ''}`;
}

interface Props {
  uri: string;
  response: EmotionsResponse;
  /** the tallest the photo may be drawn, in layout pixels */
  maxHeight?: number;
}

/**
 * The photo with every face boxed and labelled. Boxes come in the pixels of the picture the service
 * decoded (`response.image`), which has the photo's aspect ratio, so they are scaled to the drawn size.
 */
export function FacePhoto({ uri, response, maxHeight = 480 }: Props) {
  const [available, setAvailable] = useState(0);
  const captionHeight = Math.ceil(CAPTION_HEIGHT * Math.max(1, useWindowDimensions().fontScale));
  const { width: imageW, height: imageH } = response.image;
  const scale = available > 0 ? Math.min(available / imageW, maxHeight / imageH) : 0;
  const drawnW = imageW * scale;
  const drawnH = imageH * scale;

  return (
    <View onLayout={(e: LayoutChangeEvent) => setAvailable(e.nativeEvent.layout.width)} style={styles.frame} testID="face-photo-frame">
      {scale > 0 && (
        <View
          style={{ width: drawnW, height: drawnH }}
          accessible
          accessibilityRole="image"
          accessibilityLabel={`Photo with ${response.faces.length} face${response.faces.length === 1 ? '' : 's'} marked`}
          testID="face-photo"
        >
          <Image source={{ uri }} style={{ width: drawnW, height: drawnH }} resizeMode="stretch" />
          {response.faces.map((face, i) => {
            const [x, y, w, h] = face.box;
            const color = faceColor(i);
            const left = x * scale;
            const top = y * scale;
            const right = (x + w) * scale;
            // the caption sits above the box (inside it at the top edge), anchored to the side with more room
            const anchor = left + right > drawnW ? { right: drawnW - right, maxWidth: right } : { left, maxWidth: drawnW - left };
            return (
              <View key={i} pointerEvents="none" style={StyleSheet.absoluteFill}>
                <View
                  testID={`face-box-${i + 1}`}
                  style={[
                    styles.box,
                    { left, top, width: w * scale, height: h * scale, borderColor: color },
                    face.uncertain && styles.uncertainBox,
                  ]}
                />
                <Text
                  testID={`face-caption-${i + 1}`}
                  numberOfLines={1}
                  style={[
                    styles.caption,
                    anchor,
                    { minHeight: captionHeight, top: top >= captionHeight ? top - captionHeight : top, backgroundColor: color },
                  ]}
                >
                  {`${i + 1} ${faceCaption(face.label, face.confidence, face.uncertain)}`}
                </Text>
              </View>
            );
          })}
        </View>
      )}
    </View>
  );
}

const styles = StyleSheet.create({
  frame: { width: '100%', alignItems: 'center' },
  box: { position: 'absolute', borderWidth: 3, borderRadius: 2 },
  uncertainBox: { borderStyle: 'dashed' },
  caption: {
    position: 'absolute',
    paddingVertical: 1,
    color: '#000',
    fontSize: 13,
    fontWeight: '700',
    paddingHorizontal: 4,
    overflow: 'hidden',
  },
});
