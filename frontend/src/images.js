// Images a user attaches or pastes, checked here against the server's rules (docs/protocol.md, "The request") so a
// wrong file is refused at once, in plain words, instead of after an upload; sent as data: URLs.

export const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp", "image/gif"];
export const MAX_IMAGE_BYTES = 5_000_000; // the server's MAX_IMAGE_BYTES default
export const MAX_IMAGES = 8; // the server's MAX_IMAGES default, per request

/** Why this file cannot be sent as an image, or null when it can. */
export function imageProblem(file, alreadyAttached = 0) {
  if (!IMAGE_TYPES.includes(file.type)) return `${file.name || "This file"} is not a PNG, JPEG, WebP or GIF image.`;
  if (file.size > MAX_IMAGE_BYTES) {
    return `${file.name || "This image"} is ${(file.size / 1e6).toFixed(1)} MB; at most ${MAX_IMAGE_BYTES / 1e6} MB.`;
  }
  if (alreadyAttached >= MAX_IMAGES) return `At most ${MAX_IMAGES} images per message.`;
  return null;
}

/** The image files of a paste (a screenshot, or files copied), in order; none when it holds only text. */
export function imagesFromClipboard(clipboardData) {
  return Array.from(clipboardData?.files ?? []).filter((file) => file.type.startsWith("image/"));
}

/** The file as a data: URL. */
export function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error ?? new Error("The file could not be read."));
    reader.readAsDataURL(file);
  });
}
