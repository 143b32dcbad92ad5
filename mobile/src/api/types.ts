/**
 * Request and response types of the nasfer HTTP API, as published by the service at /openapi.json
 * (a copy is committed as mobile/openapi.json). `SCHEMA_FIELDS` lists every field of every type with
 * whether it is required; the compiler holds it equal to the types below and schema.test.ts holds it
 * equal to the OpenAPI document, so the types cannot drift from the service unnoticed.
 */

/** x, y, width, height of a face in the pixels of the upright (EXIF-rotated) picture; origin top left. */
export type Box = [number, number, number, number];

/** One detected face (OpenAPI `Face`). */
export interface Face {
  box: Box;
  /** the face detector's own confidence, when it has one */
  detector_score: number | null;
  /** (x, y) landmarks when the detector gives them */
  landmarks: [number, number][] | null;
  /** probability of every label of the model (they sum to 1) */
  scores: Record<string, number>;
  /** the most likely label */
  label: string;
  /** probability of `label`, 0..1 */
  confidence: number;
  /** confidence is below the request's threshold */
  uncertain: boolean;
}

/** Size of the upright picture the service decoded, in pixels. */
export interface ImageSize {
  width: number;
  height: number;
}

/** The model that answered: its name and its labels, in the model's order (custom sets included). */
export interface ModelInfo {
  name: string;
  labels: string[];
}

/** Server-side time in milliseconds. */
export interface Timing {
  decode: number;
  detect_classify: number;
  total: number;
}

/** 200 answer of POST /v1/emotions (OpenAPI `EmotionsResponse`). */
export interface EmotionsResponse {
  faces: Face[];
  image: ImageSize;
  detector: string;
  threshold: number;
  model: ModelInfo;
  timing_ms: Timing;
  /** Only when no face was found and the picture looks like a face crop: how to classify it. */
  hint?: string;
}

/** Options of POST /v1/emotions (query or form fields). */
export interface EmotionOptions {
  detector?: string;
  threshold?: number;
  max_faces?: number;
}

/** Every error answer: `{"error": {"code", "message"}}` (OpenAPI `Error`). */
export interface ErrorDetail {
  code: string;
  message: string;
}
export interface ErrorBody {
  error: ErrorDetail;
}

/** The documented fields of GET /v1/model (OpenAPI `ModelCard`); the card may carry more. */
export interface ModelCardFields {
  name: string;
  labels: string[];
  format?: string;
  preprocessing?: Record<string, unknown>;
  architecture?: Record<string, unknown>;
  metrics?: Record<string, unknown>;
  limitations?: string[];
}
export type ModelCard = ModelCardFields & Record<string, unknown>;

/** 200 answer of GET /healthz (OpenAPI `Health`). */
export interface Health {
  status: 'ok';
}

type Requiredness<T> = { [K in keyof T]-?: undefined extends T[K] ? 'optional' : 'required' };

/** Every field of each API type and whether it is required; checked against the OpenAPI document. */
export const SCHEMA_FIELDS = {
  EmotionsResponse: {
    faces: 'required', image: 'required', detector: 'required', threshold: 'required', model: 'required',
    timing_ms: 'required', hint: 'optional',
  } satisfies Requiredness<EmotionsResponse>,
  Face: {
    box: 'required', detector_score: 'required', landmarks: 'required', scores: 'required', label: 'required',
    confidence: 'required', uncertain: 'required',
  } satisfies Requiredness<Face>,
  ImageSize: { width: 'required', height: 'required' } satisfies Requiredness<ImageSize>,
  ModelInfo: { name: 'required', labels: 'required' } satisfies Requiredness<ModelInfo>,
  Timing: { decode: 'required', detect_classify: 'required', total: 'required' } satisfies Requiredness<Timing>,
  EmotionOptions: {
    detector: 'optional', threshold: 'optional', max_faces: 'optional',
  } satisfies Requiredness<EmotionOptions>,
  ErrorBody: { error: 'required' } satisfies Requiredness<ErrorBody>,
  ErrorDetail: { code: 'required', message: 'required' } satisfies Requiredness<ErrorDetail>,
  ModelCard: {
    name: 'required', labels: 'required', format: 'optional', preprocessing: 'optional',
    architecture: 'optional', metrics: 'optional', limitations: 'optional',
  } satisfies Requiredness<ModelCardFields>,
  Health: { status: 'required' } satisfies Requiredness<Health>,
} as const;
