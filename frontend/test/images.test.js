import { describe, expect, it } from "vitest";
import { MAX_IMAGES, imageProblem, imagesFromClipboard } from "../src/images.js";

const file = (type, size, name = "a") => ({ type, size, name });

describe("imageProblem", () => {
  it("accepts a PNG, JPEG, WebP or GIF of at most 5 MB, up to 8 per message", () => {
    for (const type of ["image/png", "image/jpeg", "image/webp", "image/gif"]) expect(imageProblem(file(type, 5_000_000))).toBeNull();
  });

  it("says why in plain words otherwise, naming the file", () => {
    expect(imageProblem(file("image/bmp", 10, "x.bmp"))).toBe("x.bmp is not a PNG, JPEG, WebP or GIF image.");
    expect(imageProblem(file("application/pdf", 10, "doc.pdf"))).toMatch(/doc.pdf is not/);
    expect(imageProblem(file("image/png", 5_000_001, "big.png"))).toBe("big.png is 5.0 MB; at most 5 MB.");
    expect(imageProblem(file("image/png", 10), MAX_IMAGES)).toBe("At most 8 images per message.");
  });
});

describe("imagesFromClipboard", () => {
  it("takes the image files of a paste, and nothing from a paste of text", () => {
    const png = file("image/png", 1);
    expect(imagesFromClipboard({ files: [png, file("text/plain", 1)] })).toEqual([png]);
    expect(imagesFromClipboard({ files: [] })).toEqual([]);
    expect(imagesFromClipboard(null)).toEqual([]);
  });
});
