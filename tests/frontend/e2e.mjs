// Drives the playground in headless Chromium through the gateway: every page makes a real
// request, bad input shows the server's message next to its field, the progress bar moves
// during a streamed job, and screenshots of each page go to OUT_DIR (laptop and phone sizes).
// Run by tests/frontend/test_e2e.py, which reads the JSON it prints; nothing is asserted here.
//
// env: BASE_URL, OUT_DIR, FRONTEND_DIR (for playwright-core), CHROMIUM, PHOTO, TEXTURE, NOT_IMAGE,
//      SECRETS (comma-separated strings that must never reach the browser)
import { createRequire } from "node:module";
import { writeFileSync } from "node:fs";
import path from "node:path";

const env = process.env;
const require = createRequire(path.resolve(env.FRONTEND_DIR, "package.json"));
const { chromium } = require("playwright-core");

const WAIT_MS = 60_000;
const LAPTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const results = {};
const seenText = []; // every text body the browser received, to look for secrets in

async function scenario(name, work) {
  const started = Date.now();
  try {
    results[name] = { ok: true, ...(await work()) };
  } catch (error) {
    results[name] = { ok: false, error: String(error?.stack || error) };
  }
  results[name].ms = Date.now() - started;
}

const shot = (page, name) => page.screenshot({ path: path.join(env.OUT_DIR, `${name}.png`), fullPage: true });
const fieldErrorText = (page, field) =>
  page.locator(`[data-field-error="${field}"]`).first().textContent({ timeout: WAIT_MS });

/** Every aria-valuenow the progress bar takes, recorded in the page as React renders it. */
async function watchProgress(page) {
  await page.evaluate(() => {
    window.__progress = [];
    new MutationObserver(() => {
      const bar = document.querySelector('[role="progressbar"]');
      const now = bar && Number(bar.getAttribute("aria-valuenow"));
      if (bar && window.__progress.at(-1) !== now) window.__progress.push(now);
    }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["aria-valuenow"] });
  });
}

async function imageSize(locator) {
  await locator.waitFor({ timeout: WAIT_MS });
  await locator.evaluate((img) => img.complete || new Promise((done) => (img.onload = done)));
  return locator.evaluate((img) => ({ width: img.naturalWidth, height: img.naturalHeight, src: img.src.slice(0, 5) }));
}

const browser = await chromium.launch({
  executablePath: env.CHROMIUM,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"],
});
try {
  const context = await browser.newContext({ viewport: LAPTOP, acceptDownloads: true });
  const page = await context.newPage();
  const requestsWithAuth = [];
  page.on("request", (request) => {
    if (request.headers()["authorization"]) requestsWithAuth.push(request.url());
  });
  page.on("response", async (response) => {
    const type = response.headers()["content-type"] || "";
    if (/json|text|javascript|ndjson/.test(type)) seenText.push((await response.text().catch(() => "")) + JSON.stringify(response.headers()));
  });
  const consoleErrors = [];
  page.on("pageerror", (error) => consoleErrors.push(String(error)));

  await scenario("fast_style", async () => {
    await page.goto(`${env.BASE_URL}/#/fast-style`);
    await page.locator("#f-style").waitFor({ timeout: WAIT_MS });
    const styles = await page.locator("#f-style option").allTextContents();
    await page.setInputFiles("#f-image", env.PHOTO);
    await page.selectOption("#f-style", "mosaic");
    await page.fill("#f-max_side_px", "128");
    await page.getByRole("button", { name: "Stylise" }).click();
    const result = await imageSize(page.locator('img[alt="Photo in the mosaic style"]'));
    const original = await imageSize(page.locator('img[alt="Original photo"]'));
    const download = await page.getByRole("link", { name: "Download" }).getAttribute("download");
    await shot(page, "laptop-fast-style");
    return { styles, result, original, download };
  });

  await scenario("fast_style_bad_image", async () => {
    await page.setInputFiles("#f-image", env.NOT_IMAGE);
    await page.getByRole("button", { name: "Stylise" }).click();
    const message = await fieldErrorText(page, "image");
    const describedBy = await page.locator("#f-image").getAttribute("aria-describedby");
    const invalid = await page.locator("#f-image").getAttribute("aria-invalid");
    await shot(page, "laptop-fast-style-error");
    return { message, describedBy, invalid };
  });

  await scenario("custom_style", async () => {
    await page.goto(`${env.BASE_URL}/#/custom-style`);
    await page.setInputFiles("#f-content", env.PHOTO);
    await page.setInputFiles("#f-style_image", env.TEXTURE);
    await page.fill("#f-steps", "12");
    await page.fill("#f-max_side_px", "64");
    await watchProgress(page);
    await page.getByRole("button", { name: "Transfer style" }).click();
    const result = await imageSize(page.locator('img[alt="The content image in the style image\'s style"]'));
    const progress = await page.evaluate(() => window.__progress);
    const progressMax = await page.locator('[role="progressbar"]').getAttribute("aria-valuemax");
    const caption = await page.locator("figcaption").first().textContent();
    await shot(page, "laptop-custom-style");
    return { result, progress, progressMax, caption };
  });

  await scenario("custom_style_cancel", async () => {
    // 1000 steps: uncancelled, the worker would be busy with it long after this scenario.
    await page.fill("#f-steps", "1000");
    await page.getByRole("button", { name: "Transfer style" }).click();
    const bar = page.locator('[role="progressbar"]');
    await page.waitForFunction(() => Number(document.querySelector('[role="progressbar"]')?.getAttribute("aria-valuenow")) >= 1,
      null, { timeout: WAIT_MS });
    const cancelCall = page.waitForResponse((r) => r.url().includes("/api/cancel/") && r.request().method() === "POST",
      { timeout: WAIT_MS });
    await page.getByRole("button", { name: "Cancel" }).click();
    const cancelResponse = await cancelCall;
    const cancel = { status: cancelResponse.status(), body: await cancelResponse.json() };
    const message = await page.locator("[data-form-error]").textContent({ timeout: WAIT_MS });
    const atCancel = await bar.count() ? await bar.getAttribute("aria-valuenow") : null;
    await page.waitForTimeout(1000);
    const later = await bar.count() ? await bar.getAttribute("aria-valuenow") : null;
    const submitEnabled = await page.getByRole("button", { name: "Transfer style" }).isEnabled();
    // The next job runs on the same single worker: it finishes only if the cancelled one stopped.
    await page.fill("#f-steps", "3");
    await page.getByRole("button", { name: "Transfer style" }).click();
    await page.waitForFunction(() => document.querySelector("figcaption")?.textContent.startsWith("Result: 3 steps"),
      null, { timeout: WAIT_MS });
    const nextCaption = await page.locator("figcaption").first().textContent();
    return { message, atCancel, later, submitEnabled, cancel, nextCaption };
  });

  await scenario("txt2img", async () => {
    await page.goto(`${env.BASE_URL}/#/text-to-image`);
    await page.locator("#f-scheduler").waitFor({ timeout: WAIT_MS });
    const schedulers = await page.locator("#f-scheduler option").allTextContents();
    await page.fill("#f-prompt", "a lighthouse on a cliff at dusk");
    await page.fill("#f-steps", "3");
    await page.getByRole("button", { name: "Roll a random seed" }).click();
    const seed = await page.inputValue("#f-seed");
    await watchProgress(page);
    await page.getByRole("button", { name: "Generate" }).click();
    const result = await imageSize(page.locator("[data-result] img").first());
    const progress = await page.evaluate(() => window.__progress);
    const details = await page.locator("[data-result] dl").first().textContent();
    const seedHint = await page.locator("#f-seed-hint").textContent();
    await shot(page, "laptop-text-to-image");
    return { schedulers, seed, result, progress, details, seedHint };
  });

  await scenario("txt2img_bad_width", async () => {
    await page.fill("#f-width", "100");
    await page.getByRole("button", { name: "Generate" }).click();
    const message = await fieldErrorText(page, "width");
    const invalid = await page.locator("#f-width").getAttribute("aria-invalid");
    await shot(page, "laptop-text-to-image-error");
    return { message, invalid };
  });

  await scenario("live_preview", async () => {
    // Both diffusion pages offer the checkbox; on txt2img it streams previews beside the bar.
    await page.goto(`${env.BASE_URL}/#/animals`);
    const animalsLabel = await page.locator('label[for="f-preview"]').textContent({ timeout: WAIT_MS });
    await page.goto(`${env.BASE_URL}/#/text-to-image`);
    await page.locator("#f-preview").waitFor({ timeout: WAIT_MS });
    const offByDefault = !(await page.isChecked("#f-preview"));
    await page.fill("#f-prompt", "a harbour at dawn");
    await page.fill("#f-steps", "8");
    await page.check("#f-preview");
    await page.evaluate(() => {
      window.__previews = []; // every preview image the page shows, in order
      new MutationObserver(() => {
        const img = document.querySelector('[data-testid="live-preview"]');
        if (img && window.__previews.at(-1)?.src !== img.src) {
          window.__previews.push({ src: img.src, step: Number(img.dataset.step), alt: img.alt });
        }
      }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["src"] });
    });
    await page.getByRole("button", { name: "Generate" }).click();
    const result = await imageSize(page.locator("[data-result] img").first());
    const previews = await page.evaluate(() => Promise.all(window.__previews.map(async ({ src, step, alt }) => {
      const img = new Image();
      img.src = src;
      await img.decode();
      return { step, alt, mime: src.slice(5, src.indexOf(";")), width: img.naturalWidth, height: img.naturalHeight };
    })));
    const shownAfter = await page.locator('[data-testid="live-preview"]').count();
    return { animalsLabel, offByDefault, result, previews, shownAfter };
  });

  await scenario("animals", async () => {
    await page.goto(`${env.BASE_URL}/#/animals`);
    await page.locator("#animal-options").waitFor({ timeout: WAIT_MS });
    const classCount = await page.locator('#animal-options input[type="radio"]').count();
    await page.fill("#f-animal-search", "tig");
    const filtered = await page.locator('#animal-options input[type="radio"]').count();
    await page.press("#f-animal-search", "Enter"); // picks the first match from the keyboard
    await page.fill("#f-animal-search", "");
    await page.fill("#f-steps", "2");
    await page.fill("#f-seed", "11");
    await page.getByRole("button", { name: "Generate" }).click();
    const canvas = page.locator('canvas[aria-label="Generated tiger"]');
    const asMade = "brightness=1 contrast=1 saturation=1";
    await page.locator(`[data-saved-factors="${asMade}"]`).waitFor({ timeout: WAIT_MS });
    const result = await canvas.evaluate((c) => ({ width: c.width, height: c.height }));
    const madePng = await canvas.evaluate((c) => c.toDataURL("image/png"));
    // The sliders act on the picture already made: no request, the canvas redraws.
    let requestsAfter = 0;
    const count = (request) => request.url().includes("/predictions/") && requestsAfter++;
    page.on("request", count);
    await page.fill("#f-contrast", "1.5");
    await page.fill("#f-saturation", "0.8");
    await page.fill("#f-brightness", "1.1");
    const adjusted = "brightness=1.1 contrast=1.5 saturation=0.8";
    await page.locator(`canvas[data-adjusted="${adjusted}"]`).waitFor({ timeout: WAIT_MS });
    await page.locator(`[data-saved-factors="${adjusted}"]`).waitFor({ timeout: WAIT_MS });
    const shownPng = await canvas.evaluate((c) => c.toDataURL("image/png"));
    const [download] = await Promise.all([
      page.waitForEvent("download", { timeout: WAIT_MS }),
      page.getByRole("link", { name: "Save image" }).click(),
    ]);
    const saved = path.join(env.OUT_DIR, "animals-saved.png");
    await download.saveAs(saved);
    page.off("request", count);
    await shot(page, "laptop-animals");
    return { classCount, filtered, result, madePng, shownPng, saved, save: download.suggestedFilename(), requestsAfter };
  });

  await scenario("animals_compare_steps", async () => {
    await page.fill("#f-compare-steps", "2, 3");
    await page.getByRole("button", { name: "Compare" }).click();
    const cells = page.locator("[data-comparison] [data-cell]");
    // One generation after the other: each gets its own wait (a loaded machine is slow).
    await cells.nth(0).locator("img").waitFor({ timeout: WAIT_MS });
    await cells.nth(1).locator("img").waitFor({ timeout: WAIT_MS });
    const labels = await cells.locator("figcaption").allTextContents();
    const images = [];
    for (let i = 0; i < 2; i++) images.push(await imageSize(cells.nth(i).locator("img")));
    const alts = await cells.locator("img").evaluateAll((all) => all.map((img) => img.alt));
    await shot(page, "laptop-animals-compare");
    return { labels, images, alts };
  });

  await scenario("animals_settings", async () => {
    // The model-settings panel: a non-default version, the ranges following the scheduler,
    // the device and dtype read-only; the request goes to /predictions/animals/{version}.
    await page.waitForFunction(() => document.querySelectorAll("#f-version option").length >= 2, null, { timeout: WAIT_MS });
    const versions = await page.locator("#f-version option").evaluateAll((all) => all.map((o) => o.value));
    const defaultVersion = await page.locator("[data-model-settings]").getAttribute("data-version");
    const other = versions.find((v) => v !== defaultVersion);
    await page.selectOption("#f-version", other);
    await page.locator(`[data-model-settings][data-version="${other}"]`).waitFor({ timeout: WAIT_MS });
    const range = async () => ({
      min: await page.getAttribute("#f-steps", "min"), max: await page.getAttribute("#f-steps", "max"),
      value: await page.inputValue("#f-steps"), guidanceMax: await page.getAttribute("#f-guidance", "max"),
    });
    await page.selectOption("#f-scheduler", "dpmpp");
    const dpmpp = await range();
    await page.selectOption("#f-scheduler", "lcm");
    const lcm = await range();
    await page.fill("#f-steps", "2");
    const device = await page.locator("[data-device]").textContent();
    const dtype = await page.locator("[data-dtype]").textContent();
    const sent = [];
    const record = (request) => request.url().includes("/predictions/") && sent.push(new URL(request.url()).pathname);
    page.on("request", record);
    await page.getByRole("button", { name: "Generate" }).click();
    const served = page.locator("[data-served-by]");
    await page.locator(`[data-served-by="${other}"]`).waitFor({ timeout: WAIT_MS });
    page.off("request", record);
    const servedText = await served.textContent();
    await shot(page, "laptop-animals-settings");
    return { versions, defaultVersion, other, dpmpp, lcm, device, dtype, sent, servedText };
  });

  await scenario("animals_no_class", async () => {
    // No class picked: the server names the field and what it accepts.
    // Leave the page and wait until it is really gone: two hash changes in a row can reach
    // React as one, keeping the previous scenario's form (a class already picked).
    await page.goto(`${env.BASE_URL}/#/models`);
    await page.locator("[data-model]").first().waitFor({ timeout: WAIT_MS });
    await page.goto(`${env.BASE_URL}/#/animals`);
    await page.locator("#animal-options").waitFor({ timeout: WAIT_MS });
    if (await page.locator('input[name="animal"]:checked').count()) throw new Error("a class is already picked");
    await page.fill("#f-steps", "2");
    await page.getByRole("button", { name: "Generate" }).click();
    const message = await fieldErrorText(page, "animal");
    return { message };
  });

  await scenario("models", async () => {
    await page.goto(`${env.BASE_URL}/#/models`);
    await page.locator("[data-model]").nth(3).waitFor({ timeout: WAIT_MS });
    const models = await page.locator("[data-model] h2").allTextContents();
    const defaults = await page.locator("[data-model] >> text=default").count();
    const weights = await page.locator('[data-model="fast_style"] tbody').nth(1).locator("tr").count();
    await shot(page, "laptop-models");
    return { models, defaults, weights };
  });

  await scenario("phone", async () => {
    const phone = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true, deviceScaleFactor: 1 });
    const small = await phone.newPage();
    const overflow = {};
    for (const name of ["fast-style", "custom-style", "text-to-image", "animals", "models"]) {
      await small.goto(`${env.BASE_URL}/#/${name}`);
      await small.locator("form, [data-model]").first().waitFor({ timeout: WAIT_MS });
      // Wider than the screen means sideways scrolling on a phone.
      overflow[name] = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      await shot(small, `phone-${name}`);
    }
    await small.goto(`${env.BASE_URL}/#/fast-style`);
    await small.setInputFiles("#f-image", env.PHOTO);
    await small.fill("#f-max_side_px", "96");
    await small.getByRole("button", { name: "Stylise" }).click();
    await imageSize(small.locator('img[alt^="Photo in the"]'));
    await shot(small, "phone-fast-style-result");
    await phone.close();
    return { overflow };
  });

  await scenario("keyboard", async () => {
    await page.goto("about:blank");
    await page.goto(`${env.BASE_URL}/#/fast-style`);
    await page.locator("#f-style").waitFor({ timeout: WAIT_MS });
    const focused = [];
    for (let i = 0; i < 11; i++) {
      await page.keyboard.press("Tab");
      focused.push(await page.evaluate(() => {
        const el = document.activeElement;
        return el.id || el.getAttribute("aria-label") || el.textContent.trim().slice(0, 30);
      }));
    }
    return { focused };
  });

  const secrets = (env.SECRETS || "").split(",").filter(Boolean);
  results.secrets = {
    ok: true,
    requestsWithAuth,
    leaked: secrets.filter((secret) => seenText.some((text) => text.includes(secret))).length,
    bodiesChecked: seenText.length,
    consoleErrors,
  };
} finally {
  await browser.close();
}
const report = JSON.stringify(results, null, 2);
writeFileSync(path.join(env.OUT_DIR, "results.json"), report);
console.log(report);
