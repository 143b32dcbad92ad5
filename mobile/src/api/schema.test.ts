/**
 * The client's types against the OpenAPI document the service publishes (mobile/openapi.json, kept
 * equal to the live service's /openapi.json by tests/test_mobile_contract.py).
 */
import spec from '../../openapi.json';
import { httpErrorMessage, kindOfStatus } from './errors';
import { SCHEMA_FIELDS } from './types';

interface Schema {
  $ref?: string;
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
}

const schemas = (spec as unknown as { components: { schemas: Record<string, Schema> } }).components.schemas;
const emotionsPost = (spec as unknown as { paths: Record<string, Record<string, any>> }).paths['/v1/emotions'].post;
const multipart: Schema = emotionsPost.requestBody.content['multipart/form-data'].schema;

function resolve(schema: Schema): Schema {
  return schema.$ref ? schemas[schema.$ref.replace('#/components/schemas/', '')] : schema;
}

/** Where each client type lives in the document. */
const LOCATIONS: Record<keyof typeof SCHEMA_FIELDS, () => Schema> = {
  EmotionsResponse: () => schemas.EmotionsResponse,
  Face: () => schemas.Face,
  ImageSize: () => schemas.EmotionsResponse.properties!.image,
  ModelInfo: () => schemas.EmotionsResponse.properties!.model,
  Timing: () => schemas.EmotionsResponse.properties!.timing_ms,
  EmotionOptions: () => ({
    properties: Object.fromEntries(Object.entries(multipart.properties!).filter(([k]) => k !== 'image')),
    required: multipart.required!.filter((k) => k !== 'image'),
  }),
  ErrorBody: () => schemas.Error,
  ErrorDetail: () => schemas.Error.properties!.error,
  ModelCard: () => schemas.ModelCard,
  Health: () => schemas.Health,
};

describe.each(Object.keys(SCHEMA_FIELDS) as (keyof typeof SCHEMA_FIELDS)[])('type %s', (name) => {
  const fields = SCHEMA_FIELDS[name] as Record<string, 'required' | 'optional'>;
  const schema = LOCATIONS[name]();

  it('has exactly the fields of the OpenAPI schema', () => {
    expect(Object.keys(fields).sort()).toEqual(Object.keys(schema.properties ?? {}).sort());
  });

  it('requires exactly what the OpenAPI schema requires', () => {
    const required = Object.keys(fields).filter((k) => fields[k] === 'required').sort();
    expect(required).toEqual([...(schema.required ?? [])].sort());
  });
});

describe('POST /v1/emotions', () => {
  it('takes the photo as the multipart file field "image", as the client sends it', () => {
    expect(multipart.required).toContain('image');
    expect(multipart.properties!.image).toMatchObject({ type: 'string', format: 'binary' });
  });

  it('takes the same options in the query string', () => {
    const query = emotionsPost.parameters.map((p: { name: string }) => p.name).sort();
    expect(query).toEqual(Object.keys(SCHEMA_FIELDS.EmotionOptions).sort());
  });

  it('answers EmotionsResponse, and every error it documents has its own message', () => {
    expect(resolve(emotionsPost.responses['200'].content['application/json'].schema)).toBe(schemas.EmotionsResponse);
    const errors = Object.keys(emotionsPost.responses).filter((s) => s !== '200').map(Number);
    expect(errors.sort()).toEqual([400, 408, 413, 415, 422, 500, 503]);
    for (const status of errors) {
      expect(resolve(emotionsPost.responses[String(status)].content['application/json'].schema)).toBe(schemas.Error);
      expect(kindOfStatus(status)).not.toBe('http');
      expect(httpErrorMessage(status)).not.toMatch(/Is the address in Settings right/);
    }
  });

  it('gives each face a box of four integers and scores for every label', () => {
    expect(schemas.Face.properties!.box).toMatchObject({ type: 'array', minItems: 4, maxItems: 4, items: { type: 'integer' } });
    expect(schemas.Face.properties!.scores.type).toBe('object');
  });
});

it('uses the documented paths for the connection check', () => {
  const paths = Object.keys((spec as unknown as { paths: object }).paths);
  expect(paths).toEqual(expect.arrayContaining(['/healthz', '/v1/model', '/v1/emotions']));
});
