import { StyleSheet, Text, View } from 'react-native';

import { Button } from './Button';
import { colors } from './theme';

interface Props {
  message: string;
  action: string;
  onPress: () => void;
  kind?: 'info' | 'error';
  testID?: string;
}

/** A one-line notice above the tabs, with a button: news from a screen that is not shown. */
export function Notice({ message, action, onPress, kind = 'info', testID }: Props) {
  const error = kind === 'error';
  return (
    <View style={[styles.box, error && styles.error]} accessibilityLiveRegion="polite" testID={testID}>
      <Text style={[styles.text, error && styles.errorText]} accessibilityRole={error ? 'alert' : 'text'}>{message}</Text>
      <Button title={action} kind="secondary" onPress={onPress} />
    </View>
  );
}

const styles = StyleSheet.create({
  box: {
    flexDirection: 'row',
    flexWrap: 'wrap',
    alignItems: 'center',
    justifyContent: 'space-between',
    gap: 8,
    paddingHorizontal: 16,
    paddingVertical: 6,
    backgroundColor: '#e3ecfa',
    borderTopWidth: 1,
    borderTopColor: colors.border,
  },
  error: { backgroundColor: colors.errorBackground },
  text: { flexShrink: 1, fontSize: 15, color: colors.text },
  errorText: { color: colors.error },
});
