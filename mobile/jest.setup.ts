// AsyncStorage's own in-memory mock (the native module is absent under Jest).
jest.mock('@react-native-async-storage/async-storage', () =>
  require('@react-native-async-storage/async-storage/jest/async-storage-mock'),
);

// On Android and iOS the app runs with React Native's FormData (a {uri, name, type} object is a file
// part); Jest's Node environment would otherwise supply Node's, which only takes Blobs.
globalThis.FormData = require('react-native/Libraries/Network/FormData').default;
