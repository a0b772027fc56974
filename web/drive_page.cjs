// Drives index.html in headless Chromium (Debian's /usr/bin/chromium through playwright-core):
//   node drive_page.cjs URL MODEL IMAGE GOLDEN_INPUT GOLDEN_OUTPUT [SCREENSHOT]
// and prints one JSON line: the page's window.vitstem state and the texts a person would read.
"use strict";
const { chromium } = require("playwright-core");

(async () => {
  const [url, model, image, goldenIn, goldenOut, screenshot] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
                                          args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(url);
    await page.setInputFiles("#model", model);
    await page.waitForFunction(() => window.vitstem && window.vitstem.ready, null, { timeout: 60000 });
    await page.setInputFiles("#image", image);
    await page.waitForFunction(() => window.vitstem.z0 !== null, null, { timeout: 60000 });
    await page.setInputFiles("#golden-input", goldenIn);
    await page.setInputFiles("#golden-output", goldenOut);
    await page.waitForFunction(() => window.vitstem.verdict !== null, null, { timeout: 60000 });
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    const result = await page.evaluate(() => ({
      state: { z0: window.vitstem.z0, verdict: window.vitstem.verdict, spec: window.vitstem.spec },
      texts: { model: document.getElementById("model-info").textContent,
               z0: document.getElementById("z0-info").textContent,
               verdict: document.getElementById("verdict").textContent,
               verdictClass: document.getElementById("verdict").className },
    }));
    process.stdout.write(JSON.stringify({ ...result, errors }) + "\n");
  } finally {
    await browser.close();
  }
})().catch((e) => { process.stderr.write(String(e.stack || e) + "\n"); process.exit(1); });
