import { detectEmotions } from '../api/client';
import { ApiError } from '../api/errors';
import { fakeFetch, recorded, takeUnexpectedRequests, UnexpectedRequest } from './network';

// The client takes any error thrown by fetch for a network failure: the fake must not let a request
// for a path it does not serve pass as "cannot reach the service".
it('records a request no route answers, so that the test making it fails', async () => {
  const fetchImpl = fakeFetch({ 'POST /v1/emotions': new TypeError('Network request failed') });
  await expect(fetchImpl('http://127.0.0.1:8000/v1/emotion', { method: 'POST' })).rejects.toThrow(UnexpectedRequest);

  // through the client, which would report it as a network failure and retry it
  const error = await detectEmotions({ uri: 'file:///p.jpg' }, { baseUrl: 'http://127.0.0.1:8000', fetchImpl: fakeFetch({}), retries: 1, sleep: async () => {} })
    .catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ApiError);
  expect((error as ApiError).kind).toBe('network');

  expect(takeUnexpectedRequests()).toEqual(['POST /v1/emotion', 'POST /v1/emotions', 'POST /v1/emotions']);
  expect(takeUnexpectedRequests()).toEqual([]); // taken: this test itself passes
});

it('answers the routes it has without recording anything', async () => {
  const fetchImpl = fakeFetch({ 'GET /healthz': recorded.healthz });
  const response = await fetchImpl('http://127.0.0.1:8000/healthz');
  expect(response.status).toBe(200);
  expect(takeUnexpectedRequests()).toEqual([]);
});
