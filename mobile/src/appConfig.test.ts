/**
 * The native app's configuration (app.json) and the toolchain it needs (package.json), checked with
 * the same code `expo prebuild` runs.
 */
import { AndroidConfig } from 'expo/config-plugins';
import type { AndroidManifest } from 'expo/config-plugins';

import app from '../app.json';
import pkg from '../package.json';

// What Expo's Android template (expo/template.tgz, android/app/src/main/AndroidManifest.xml) asks for.
function templateManifest(): AndroidManifest {
  const permission = (name: string) => ({ $: { 'android:name': `android.permission.${name}` } });
  return {
    manifest: {
      $: { 'xmlns:android': 'http://schemas.android.com/apk/res/android', 'xmlns:tools': 'http://schemas.android.com/tools' },
      'uses-permission': ['INTERNET', 'SYSTEM_ALERT_WINDOW', 'VIBRATE'].map(permission),
    },
  } as AndroidManifest;
}

it("removes the template's SYSTEM_ALERT_WINDOW (draw over other apps) from the Android app", () => {
  const blocked = (app.expo.android as { blockedPermissions?: string[] }).blockedPermissions ?? [];
  const manifest = AndroidConfig.Permissions.addBlockedPermissions(templateManifest(), blocked);
  const entries = manifest.manifest['uses-permission'] ?? [];
  const overlay = entries.find((p) => p.$['android:name'] === 'android.permission.SYSTEM_ALERT_WINDOW');
  expect(overlay?.$).toMatchObject({ 'tools:node': 'remove' });
  const internet = entries.find((p) => p.$['android:name'] === 'android.permission.INTERNET');
  expect(internet?.$).not.toHaveProperty('tools:node'); // the app still talks to the service
});

it('asks for the Node.js versions React Native and Metro need', () => {
  const needed = require('react-native/package.json').engines.node;
  expect(pkg.engines.node).toBe(needed);
  expect(require('metro/package.json').engines.node).toBe(needed);
});
