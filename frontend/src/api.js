// Everything the playground asks the server goes through the gateway's same-origin /api/...;
// the gateway adds TorchServe's keys, so none is ever in this code or the browser.
// The gateway takes a POST or PUT only with this header (gateway/guard.py): no cross-site page can add it.
const CLIENT = { "X-Imagelab-Client": "playground" };

/** A refusal in the server's shape: {code, type, message, field}. */
export class ApiError extends Error {
  constructor({ code, type, message, field }) {
    super(message || `request failed (${code})`);
    this.code = code;
    this.type = type;
    this.field = field || null;
  }
}

async function toApiError(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    return new ApiError({ code: body.code ?? response.status, type: body.type, message: body.message, field: body.field });
  } catch {
    return new ApiError({ code: response.status, type: response.statusText, message: text.trim() || response.statusText });
  }
}

async function getJson(path, signal) {
  const response = await fetch(path, { signal, headers: { Accept: "application/json" } });
  if (!response.ok) throw await toApiError(response);
  return response.json();
}

/** The model's own description: styles or classes, fields with limits and defaults, manifest. */
export async function describeModel(model, version, signal) {
  const path = version ? `/api/models/${model}/${version}` : `/api/models/${model}`;
  const [entry] = await getJson(`${path}?customized=true`, signal);
  const meta = entry.customizedMetadata;
  return { ...(typeof meta === "string" ? JSON.parse(meta) : meta), entry };
}

export const listModels = (signal) => getJson("/api/models", signal).then((body) => body.models);
export const modelVersions = (model, signal) => getJson(`/api/models/${model}/all`, signal);
export const gatewayInfo = (signal) => getJson("/api/gateway", signal);

export async function setDefaultVersion(model, version) {
  const response = await fetch(`/api/models/${model}/${version}/set-default`, { method: "PUT", headers: CLIENT });
  if (!response.ok) throw await toApiError(response);
  return response.json();
}

/**
 * Stop a running job by the job_id of its first progress event. The busy worker takes no call,
 * so the gateway writes a cancel marker that the job checks at its next step; its stream then
 * ends with {"type":"error","code":499,"error_type":"Cancelled"}.
 */
export async function cancelJob(jobId) {
  const response = await fetch(`/api/cancel/${encodeURIComponent(jobId)}`, { method: "POST", headers: CLIENT });
  if (!response.ok) throw await toApiError(response);
  return response.json();
}

/** A model's predictions, of one version when given (else TorchServe's default version). */
const predictionsPath = (model, version) => `/api/predictions/${model}${version ? `/${encodeURIComponent(version)}` : ""}`;

/** One request, one image back as itself. -> {blob, contentType} */
export async function predictImage(model, form, signal) {
  const response = await fetch(`/api/predictions/${model}`, { method: "POST", body: form, signal, headers: CLIENT });
  if (!response.ok) throw await toApiError(response);
  return { blob: await response.blob(), contentType: response.headers.get("Content-Type") };
}

/**
 * A streamed job: NDJSON lines {"type":"progress","step","of",...} as they happen, then
 * {"type":"result","images":[base64],...} or {"type":"error","code","message","field"}.
 * Chunks need not end on line boundaries, so lines are cut from a running buffer.
 */
export async function predictStream(model, form, { onProgress, signal, version }) {
  form.set("stream", "true");
  form.set("response_format", "json");
  const response = await fetch(predictionsPath(model, version), { method: "POST", body: form, signal, headers: CLIENT });
  if (!response.ok) throw await toApiError(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let result = null;
  const handle = (line) => {
    if (!line.trim()) return;
    const event = JSON.parse(line);
    if (event.type === "progress") onProgress?.(event);
    else if (event.type === "error") throw new ApiError({ ...event, type: event.error_type || event.type });
    else if (event.type === "result") result = event;
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      handle(buffer.slice(0, newline));
      buffer = buffer.slice(newline + 1);
    }
  }
  handle(buffer + decoder.decode());
  if (!result) throw new ApiError({ code: 502, type: "IncompleteStream", message: "the server's stream ended without a result" });
  return result;
}

const MIME = { png: "image/png", jpeg: "image/jpeg", webp: "image/webp" };

/** Base64 images of a JSON result -> Blobs. */
export function decodeImages(result) {
  const type = MIME[result.format] || "image/png";
  return result.images.map((encoded) => {
    const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
    return new Blob([bytes], { type });
  });
}

export function extensionOf(blob) {
  return Object.entries(MIME).find(([, mime]) => blob.type.startsWith(mime))?.[0] || "png";
}
