import { StyleSheet, Text, View } from 'react-native';

import { colors } from './theme';

/** An error shown in place, announced by screen readers. */
export function ErrorMessage({ message }: { message: string }) {
  return (
    <View accessible accessibilityRole="alert" accessibilityLiveRegion="polite" style={styles.box} testID="error-message">
      <Text style={styles.text}>{message}</Text>
    </View>
  );
}

const styles = StyleSheet.create({
  box: {
    backgroundColor: colors.errorBackground,
    borderLeftWidth: 4,
    borderLeftColor: colors.error,
    padding: 12,
    borderRadius: 6,
    marginVertical: 8,
  },
  text: { color: colors.error, fontSize: 15 },
});
