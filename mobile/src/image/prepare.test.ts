import { ApiError } from '../api/errors';
import { fitWithin, MAX_SIDE, preparePhoto, THUMB_SIDE } from './prepare';

// expo-image-manipulator is a native module: a fake with the same API records what is asked of it.
const mock = { calls: [] as string[], source: { width: 4000, height: 3000 }, failWith: null as Error | null };

jest.mock('expo-image-manipulator', () => {
  class Context {
    size: { width: number; height: number };
    constructor(uri: string) {
      this.size = { ...(uri.startsWith('file:///saved') ? savedSize : mock.source) };
    }
    resize(size: { width: number; height: number }) {
      mock.calls.push(`resize ${size.width}x${size.height}`);
      this.size = size;
      return this;
    }
    async renderAsync() {
      if (mock.failWith) throw mock.failWith;
      const size = { ...this.size };
      return {
        ...size,
        saveAsync: async (options: { format: string; compress: number; base64?: boolean }) => {
          mock.calls.push(`save ${options.format} ${size.width}x${size.height}${options.base64 ? ' base64' : ''}`);
          savedSize = size;
          return { uri: `file:///saved/${size.width}x${size.height}.jpg`, ...size, base64: options.base64 ? 'QUJD' : undefined };
        },
      };
    }
  }
  let savedSize = { width: 0, height: 0 };
  return {
    SaveFormat: { JPEG: 'jpeg', PNG: 'png' },
    ImageManipulator: { manipulate: (uri: string) => new Context(uri) },
  };
});

beforeEach(() => {
  mock.calls.length = 0;
  mock.failWith = null;
});

describe('fitWithin', () => {
  it.each([
    [4000, 3000, 1600, { width: 1600, height: 1200 }],
    [3000, 4000, 1600, { width: 1200, height: 1600 }],
    [1600, 900, 1600, null],
    [800, 600, 1600, null],
    [10000, 10, 1600, { width: 1600, height: 2 }],
    [10, 100000, 1600, { width: 1, height: 1600 }],
  ])('%i x %i within %i', (w, h, max, expected) => expect(fitWithin(w, h, max)).toEqual(expected));
});

describe('preparePhoto', () => {
  it('downscales a large photo to MAX_SIDE, saves a JPEG and a small thumbnail', async () => {
    mock.source = { width: 4000, height: 3000 };
    const photo = await preparePhoto('file:///camera/big.jpg');
    expect(MAX_SIDE).toBe(1600);
    expect(mock.calls).toEqual([
      'resize 1600x1200', 'save jpeg 1600x1200',
      `resize ${THUMB_SIDE}x270`, `save jpeg ${THUMB_SIDE}x270 base64`,
    ]);
    expect(photo).toEqual({
      uri: 'file:///saved/1600x1200.jpg', width: 1600, height: 1200, thumbnailUri: 'data:image/jpeg;base64,QUJD',
    });
  });

  it('keeps the size of a photo that fits, and still re-encodes it upright as JPEG', async () => {
    mock.source = { width: 640, height: 480 };
    const photo = await preparePhoto('file:///gallery/small.heic');
    expect(mock.calls[0]).toBe('save jpeg 640x480');
    expect(photo.width).toBe(640);
  });

  it('reports a photo that cannot be decoded', async () => {
    mock.failWith = new Error('Could not load the image');
    await expect(preparePhoto('file:///broken.jpg')).rejects.toThrow(ApiError);
    await expect(preparePhoto('file:///broken.jpg')).rejects.toThrow(/could not be opened on the device \(Could not load the image\)/);
  });
});
