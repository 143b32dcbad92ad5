import { FlatList, Image, Pressable, StyleSheet, Text, View } from 'react-native';

import { Button } from '../components/Button';
import { colors, touchSize } from '../components/theme';
import type { History, HistoryEntry } from '../storage/history';
import { summarize } from '../storage/history';

interface Props {
  history: History;
  onOpen: (entry: HistoryEntry) => void;
}

/** Recent results kept on this device, newest first. */
export function HistoryScreen({ history, onOpen }: Props) {
  if (history.loaded && history.entries.length === 0) {
    return (
      <View style={styles.screen}>
        <Text style={styles.title} accessibilityRole="header">History</Text>
        <Text style={styles.text}>No results yet. They stay on this device only.</Text>
      </View>
    );
  }
  return (
    <FlatList
      contentContainerStyle={styles.screen}
      data={history.entries}
      keyExtractor={(entry) => entry.id}
      ListHeaderComponent={
        <Text style={styles.title} accessibilityRole="header">History</Text>
      }
      renderItem={({ item }) => {
        const when = new Date(item.createdAt).toLocaleString();
        const summary = summarize(item.response);
        return (
          <View style={styles.row}>
            <Pressable
              style={styles.open}
              accessibilityRole="button"
              accessibilityLabel={`${summary}, ${when}`}
              accessibilityHint="Shows this result"
              onPress={() => onOpen(item)}
            >
              <Image source={{ uri: item.thumbnailUri }} style={styles.thumb} accessibilityIgnoresInvertColors />
              <View style={styles.info}>
                <Text style={styles.summary} numberOfLines={2}>{summary}</Text>
                <Text style={styles.when}>{when}</Text>
              </View>
            </Pressable>
            <Pressable
              style={styles.remove}
              accessibilityRole="button"
              accessibilityLabel={`Delete the result from ${when}`}
              onPress={() => void history.remove(item.id)}
            >
              <Text style={styles.removeText}>✕</Text>
            </Pressable>
          </View>
        );
      }}
      ListFooterComponent={
        history.entries.length > 0 ? (
          <Button title="Clear history" kind="secondary" onPress={() => void history.clear()} accessibilityHint="Deletes every saved result" />
        ) : null
      }
    />
  );
}

const styles = StyleSheet.create({
  screen: { padding: 16 },
  title: { fontSize: 22, fontWeight: '700', color: colors.text, marginBottom: 8 },
  text: { fontSize: 15, color: colors.muted },
  row: {
    flexDirection: 'row',
    alignItems: 'center',
    backgroundColor: colors.surface,
    borderRadius: 8,
    marginVertical: 4,
    overflow: 'hidden',
  },
  open: { flex: 1, flexDirection: 'row', alignItems: 'center', minHeight: touchSize, padding: 8 },
  thumb: { width: 56, height: 56, borderRadius: 4, backgroundColor: colors.barTrack },
  info: { flex: 1, marginLeft: 10 },
  summary: { fontSize: 15, fontWeight: '600', color: colors.text },
  when: { fontSize: 13, color: colors.muted },
  remove: { width: touchSize, height: touchSize, alignItems: 'center', justifyContent: 'center' },
  removeText: { fontSize: 18, color: colors.muted },
});
