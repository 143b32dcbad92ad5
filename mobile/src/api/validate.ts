/**
 * Runtime checks that a JSON answer has the documented shape (mobile/openapi.json), so an answer
 * from something that is not a nasfer service gives a clear error instead of a broken screen.
 * Each function returns the value typed, or throws `Invalid` naming the first field that is wrong.
 */
import type { EmotionsResponse, ErrorBody, Face, Health, ModelCard } from './types';

export class Invalid extends Error {}

type Json = Record<string, unknown>;

function object(value: unknown, where: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Invalid(`${where} is not an object`);
  return value as Json;
}

function number(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new Invalid(`${where} is not a number`);
  return value;
}

function string(value: unknown, where: string): string {
  if (typeof value !== 'string') throw new Invalid(`${where} is not a string`);
  return value;
}

function strings(value: unknown, where: string): string[] {
  if (!Array.isArray(value)) throw new Invalid(`${where} is not a list`);
  value.forEach((item, i) => string(item, `${where}[${i}]`));
  return value as string[];
}

function face(value: unknown, where: string): Face {
  const f = object(value, where);
  if (!Array.isArray(f.box) || f.box.length !== 4) throw new Invalid(`${where}.box is not [x, y, w, h]`);
  f.box.forEach((v, i) => number(v, `${where}.box[${i}]`));
  const scores = object(f.scores, `${where}.scores`);
  Object.entries(scores).forEach(([k, v]) => number(v, `${where}.scores.${k}`));
  string(f.label, `${where}.label`);
  number(f.confidence, `${where}.confidence`);
  if (typeof f.uncertain !== 'boolean') throw new Invalid(`${where}.uncertain is not true/false`);
  return f as unknown as Face;
}

export function emotionsResponse(value: unknown): EmotionsResponse {
  const r = object(value, 'the answer');
  if (!Array.isArray(r.faces)) throw new Invalid('faces is not a list');
  r.faces.forEach((f, i) => face(f, `faces[${i}]`));
  const image = object(r.image, 'image');
  number(image.width, 'image.width');
  number(image.height, 'image.height');
  string(r.detector, 'detector');
  number(r.threshold, 'threshold');
  const model = object(r.model, 'model');
  string(model.name, 'model.name');
  strings(model.labels, 'model.labels');
  object(r.timing_ms, 'timing_ms');
  return r as unknown as EmotionsResponse;
}

export function modelCard(value: unknown): ModelCard {
  const card = object(value, 'the model card');
  string(card.name, 'name');
  strings(card.labels, 'labels');
  return card as ModelCard;
}

export function health(value: unknown): Health {
  const h = object(value, 'the answer');
  if (h.status !== 'ok') throw new Invalid('status is not "ok"');
  return h as unknown as Health;
}

/** The `{"error": {...}}` body of an error answer, or undefined when the body is not one. */
export function errorBody(value: unknown): ErrorBody | undefined {
  try {
    const detail = object(object(value, 'body').error, 'error');
    return { error: { code: string(detail.code, 'code'), message: string(detail.message, 'message') } };
  } catch {
    return undefined;
  }
}
