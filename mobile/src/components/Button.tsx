import { Pressable, StyleSheet, Text } from 'react-native';

import { colors, touchSize } from './theme';

interface Props {
  title: string;
  onPress: () => void;
  /** what a screen reader says, when the title alone is not enough */
  accessibilityLabel?: string;
  accessibilityHint?: string;
  kind?: 'primary' | 'secondary';
  disabled?: boolean;
  testID?: string;
}

/** A large, accessible button. */
export function Button({ title, onPress, accessibilityLabel, accessibilityHint, kind = 'primary', disabled, testID }: Props) {
  const primary = kind === 'primary';
  return (
    <Pressable
      accessibilityRole="button"
      accessibilityLabel={accessibilityLabel ?? title}
      accessibilityHint={accessibilityHint}
      accessibilityState={{ disabled: !!disabled }}
      disabled={disabled}
      onPress={onPress}
      testID={testID}
      style={({ pressed }) => [
        styles.button,
        primary ? styles.primary : styles.secondary,
        (pressed || disabled) && styles.dimmed,
      ]}
    >
      <Text style={[styles.text, primary ? styles.primaryText : styles.secondaryText]}>{title}</Text>
    </Pressable>
  );
}

const styles = StyleSheet.create({
  button: {
    minHeight: touchSize,
    paddingHorizontal: 16,
    borderRadius: 8,
    alignItems: 'center',
    justifyContent: 'center',
    marginVertical: 4,
  },
  primary: { backgroundColor: colors.primary },
  secondary: { backgroundColor: colors.surface, borderWidth: 1, borderColor: colors.primary },
  dimmed: { opacity: 0.6 },
  text: { fontSize: 16, fontWeight: '600' },
  primaryText: { color: colors.onPrimary },
  secondaryText: { color: colors.primary },
});
