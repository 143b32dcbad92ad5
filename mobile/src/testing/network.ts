/**
 * The network boundary for tests: a fake `fetch` that answers from responses recorded from a real
 * `nasfer serve` (src/api/__fixtures__, written by scripts/record_fixtures.py).
 *
 * A request no route answers is recorded and fails the test that made it (see the afterEach below):
 * the client would otherwise take the fake's error for a network failure, so a client asking for a
 * wrong path would pass the "cannot reach the service" tests.
 */
import astronaut from '../api/__fixtures__/emotions_astronaut.json';
import custom from '../api/__fixtures__/emotions_custom.json';
import noface from '../api/__fixtures__/emotions_noface.json';
import uncertain from '../api/__fixtures__/emotions_uncertain.json';
import error400 from '../api/__fixtures__/error_400.json';
import error413 from '../api/__fixtures__/error_413.json';
import error415 from '../api/__fixtures__/error_415.json';
import error422 from '../api/__fixtures__/error_422.json';
import error503 from '../api/__fixtures__/error_503.json';
import healthz from '../api/__fixtures__/healthz.json';
import model from '../api/__fixtures__/model.json';
import modelCustom from '../api/__fixtures__/model_custom.json';

export interface Recorded {
  status: number;
  headers: Record<string, string | null>;
  body: unknown;
}

export const recorded = {
  astronaut, custom, noface, uncertain, error400, error413, error415, error422, error503, healthz, model, modelCustom,
} as Record<string, Recorded>;

/** What fetch tells besides status and body: the final URL after redirects, and the response type. */
export interface Delivery {
  url?: string;
  redirected?: boolean;
  type?: string;
}

/** A fetch Response built from a recorded answer (or any status and raw text). */
export function responseOf(rec: (Recorded | { status: number; text: string; headers?: Record<string, string> }) & Delivery): Response {
  const text = 'text' in rec ? rec.text : JSON.stringify(rec.body);
  const headers = Object.fromEntries(Object.entries(rec.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  return {
    status: rec.status,
    ok: rec.status >= 200 && rec.status < 300,
    url: rec.url ?? '',
    redirected: rec.redirected ?? false,
    type: rec.type ?? 'basic',
    headers: { get: (name: string) => headers[name.toLowerCase()] ?? null },
    text: async () => text,
    json: async () => JSON.parse(text),
  } as unknown as Response;
}

/** The error the fake fetch throws for a request that no route answers. */
export class UnexpectedRequest extends Error {}

const unexpected: string[] = [];

/** The unexpected requests made since the last call (and forgets them). */
export function takeUnexpectedRequests(): string[] {
  return unexpected.splice(0);
}

afterEach(() => {
  const made = takeUnexpectedRequests();
  if (made.length) throw new UnexpectedRequest(`the code under test made requests no route answers: ${made.join(', ')}`);
});

/** An answer given later, by calling `resolve` (a Recorded answer) or `reject` (a network failure). */
export interface Later {
  promise: Promise<Recorded>;
  resolve: (answer: Recorded) => void;
  reject: (error: Error) => void;
}

export function later(): Later {
  let resolve!: (answer: Recorded) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<Recorded>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

type Answer = (Recorded & Delivery) | Error | 'hang' | Later;

/**
 * A fake fetch: `routes` maps "METHOD /path" to the answers given in turn (the last one repeats);
 * an Error is thrown as a network failure, 'hang' waits until the request is aborted, a `later()`
 * answers when the test says so (ignoring aborts, as a request already answered would).
 */
export function fakeFetch(routes: Record<string, Answer | Answer[]>) {
  const served: Record<string, number> = {};
  const fetchFake = jest.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const key = `${init.method ?? 'GET'} ${new URL(String(input)).pathname}`;
    const answers = routes[key];
    if (!answers) {
      unexpected.push(key);
      throw new UnexpectedRequest(`unexpected request ${key}`);
    }
    const list = Array.isArray(answers) ? answers : [answers];
    const n = served[key] ?? 0;
    served[key] = n + 1;
    const answer = list[Math.min(n, list.length - 1)];
    if (answer === 'hang') {
      return new Promise<Response>((_, reject) => {
        init.signal?.addEventListener('abort', () => reject(new Error('aborted')));
      });
    }
    if (answer instanceof Error) throw answer;
    if ('promise' in answer) return responseOf(await answer.promise);
    return responseOf(answer);
  });
  return fetchFake as typeof fetchFake & typeof fetch;
}
