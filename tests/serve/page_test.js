#!/usr/bin/env node
// The web page of `vkdiff serve` (host/serve/page.html), driven in headless
// Chromium: it must load the server's lists, generate an image through
// /sdapi/v1/txt2img, show the progress and put the result in the gallery.
//
//   node tests/serve/page_test.js URL OUTDIR
//
// URL is the server's base URL (http://127.0.0.1:PORT); OUTDIR gets page.png
// (a screenshot at the end, pass or fail). Prints "page test: ok" and exits 0,
// or prints why and exits 1. Needs /usr/bin/chromium (Debian's `chromium`)
// and `npm install` in tests/serve (puppeteer-core, which downloads no browser).
'use strict';

const fs = require('fs');
const path = require('path');

const HARD_TIMEOUT_MS = 360e3;   // the whole test, so it can never hang
const GENERATE_TIMEOUT_MS = 300e3;
const PROMPT = 'a large red circle in the center on a blue background';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

function fail(msg) {
  console.error('page test: FAIL: ' + msg);
  process.exit(1);
}

// Inside the test a failure throws, so that the screenshot is still taken
// and the browser closed on the way out.
class Failure extends Error {}
function bad(msg) { throw new Failure(msg); }

const [url, outdir] = process.argv.slice(2);
if (!url || !outdir) {
  console.error('usage: node page_test.js URL OUTDIR');
  process.exit(2);
}

let puppeteer;
try {
  puppeteer = require('puppeteer-core');
} catch (e) {
  fail('puppeteer-core is missing: run `npm install --no-audit --no-fund` in tests/serve (' + e.message + ')');
}
if (!fs.existsSync(CHROMIUM)) fail(CHROMIUM + ' not found: apt-get install -y chromium');

// A timer that ends the process whatever Chromium or the server does; unref'd
// so that it does not keep a finished test alive.
const hard = setTimeout(() => fail('hard timeout: ' + HARD_TIMEOUT_MS / 1000 + ' s'), HARD_TIMEOUT_MS);
hard.unref();

async function main() {
  fs.mkdirSync(outdir, { recursive: true });
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // As root in a container: no sandbox (it needs user namespaces), and
    // /dev/shm is often 64 MB, too small for Chromium's shared memory.
    args: ['--no-sandbox', '--headless=new', '--disable-gpu', '--disable-dev-shm-usage',
           '--no-first-run', '--no-default-browser-check', '--disable-extensions',
           '--disable-background-networking', '--disable-component-update'],
    timeout: 60e3,
    protocolTimeout: GENERATE_TIMEOUT_MS + 30e3,
  });
  const consoleErrors = [];
  let page;
  try {
    page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 900 });
    page.on('console', (m) => {
      const loc = m.location();
      const where = loc && loc.url ? ' (' + loc.url + (loc.lineNumber !== undefined ? ':' + loc.lineNumber : '') + ')' : '';
      if (m.type() === 'error') {
        consoleErrors.push(m.text() + where);
        console.error('page console error: ' + m.text() + where);
      } else if (m.type() === 'warning') {
        console.error('page console warning: ' + m.text() + where);
      }
    });
    page.on('pageerror', (e) => {
      consoleErrors.push('uncaught: ' + e.message);
      console.error('page uncaught exception: ' + e.message);
    });
    page.on('requestfailed', (r) => {
      // A request the page dropped on purpose would show here too; the page
      // makes none, so any is worth seeing.
      console.error('request failed: ' + r.method() + ' ' + r.url() + ': ' + (r.failure() || {}).errorText);
    });

    const resp = await page.goto(url.replace(/\/+$/, '') + '/', { waitUntil: 'load', timeout: 30e3 });
    if (!resp || !resp.ok()) bad('GET / answered ' + (resp ? resp.status() : 'nothing'));
    const ctype = resp.headers()['content-type'] || '';
    if (!/^text\/html/.test(ctype)) bad('GET / content-type is "' + ctype + '", not text/html');

    // The lists load after the page: wait for the samplers (and the rest:
    // the page marks body[data-ready] when all have answered).
    await page.waitForFunction(() => document.querySelectorAll('#sampler option').length > 0 &&
                               document.body.dataset.ready, { timeout: 30e3 })
      .catch(() => bad('the sampler list never loaded'));
    const ready = await page.$eval('body', (b) => b.dataset.ready);
    const errText = await page.$eval('#error', (e) => (e.hidden ? '' : e.textContent));
    if (ready !== 'yes' || errText) bad('loading the lists failed: ' + (errText || ready));
    const lists = await page.evaluate(() => ({
      samplers: [...document.querySelectorAll('#sampler option')].map((o) => o.value),
      schedulers: [...document.querySelectorAll('#scheduler option')].map((o) => o.value),
      models: [...document.querySelectorAll('#model option')].map((o) => o.value),
      model: document.querySelector('#model').value,
      width: document.querySelector('#width').value,
    }));
    console.log('samplers: ' + lists.samplers.join(', '));
    console.log('schedulers: ' + lists.schedulers.join(', '));
    console.log('models: ' + lists.models.join(', ') + ' (selected: ' + lists.model + ', default width ' + lists.width + ')');
    if (!lists.schedulers.length) bad('the scheduler list is empty');
    if (!lists.models.length || !lists.model) bad('no model listed or selected');

    // Set the fields as a user would: clear, then type.
    async function setField(sel, text) {
      await page.$eval(sel, (e) => { e.value = ''; });
      await page.type(sel, text);
    }
    await setField('#prompt', PROMPT);
    await setField('#width', '64');
    await setField('#height', '64');
    await setField('#steps', '4');

    // Watch the progress text the page shows while it runs (polled every 400
    // ms by the page; a fast server may finish before the first poll).
    await page.evaluate(() => {
      window.__progressSeen = [];
      const t = document.getElementById('progresstext');
      new MutationObserver(() => window.__progressSeen.push(t.textContent))
        .observe(t, { childList: true, characterData: true, subtree: true });
    });

    const t0 = Date.now();
    await page.click('#generate');
    const disabled = await page.$eval('#generate', (b) => b.disabled);
    // Generate must be off while the job runs (unless it already finished).
    const already = await page.$$eval('#gallery img.result', (l) => l.length);
    if (!disabled && !already) bad('Generate is not disabled while the job runs');

    await page.waitForFunction(() => document.querySelector('#gallery .item img.result') ||
                               !document.getElementById('error').hidden,
                               { timeout: GENERATE_TIMEOUT_MS, polling: 250 })
      .catch(() => bad('no image in the gallery after ' + GENERATE_TIMEOUT_MS / 1000 + ' s'));
    const err = await page.$eval('#error', (e) => (e.hidden ? '' : e.textContent));
    if (err) bad('the page shows an error: ' + err);
    // Wait for the image to decode before looking at its pixels.
    await page.waitForFunction(() => {
      const i = document.querySelector('#gallery img.result');
      return i.complete && i.naturalWidth > 0;
    }, { timeout: 10e3 }).catch(() => bad('the result image never decoded'));
    console.log('generated in ' + ((Date.now() - t0) / 1000).toFixed(1) + ' s');

    const r = await page.evaluate(() => {
      const img = document.querySelector('#gallery img.result');
      const item = img.closest('.item');
      const w = img.naturalWidth, h = img.naturalHeight;
      const c = document.createElement('canvas');
      c.width = w; c.height = h;
      const ctx = c.getContext('2d');
      ctx.drawImage(img, 0, 0);
      const d = ctx.getImageData(0, 0, w, h).data;
      // Luma variance over the whole picture: a flat (blank, NaN-black or
      // single-colour) picture has about none.
      let s = 0, s2 = 0;
      for (let i = 0; i < d.length; i += 4) {
        const y = 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
        s += y; s2 += y * y;
      }
      const n = w * h;
      const variance = s2 / n - (s / n) * (s / n);
      // "Redness" R - B averaged over a box.
      function red(x0, y0, x1, y1) {
        let t = 0, k = 0;
        for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) {
          const o = 4 * (y * w + x);
          t += d[o] - d[o + 2]; k++;
        }
        return t / k;
      }
      const q = Math.max(1, Math.floor(w / 5));
      const centre = red(Math.floor(w / 2 - q), Math.floor(h / 2 - q), Math.ceil(w / 2 + q), Math.ceil(h / 2 + q));
      const corners = (red(0, 0, q, q) + red(w - q, 0, w, q) + red(0, h - q, q, h) + red(w - q, h - q, w, h)) / 4;
      const a = item.querySelector('a[download]');
      const prog = document.getElementById('progress');
      return {
        w, h, variance, centre, corners,
        items: document.querySelectorAll('#gallery .item').length,
        params: (item.querySelector('.params') || {}).textContent || '',
        download: a ? a.getAttribute('download') : null,
        href: a ? a.getAttribute('href').slice(0, 22) : null,
        progress: prog.tagName === 'PROGRESS' ? prog.value / prog.max : parseFloat(prog.style.width) / 100,
        progressText: document.getElementById('progresstext').textContent,
        seen: window.__progressSeen,
        generateDisabled: document.getElementById('generate').disabled,
        previewShown: !document.getElementById('preview').hidden,
      };
    });
    const steps = [...new Set(r.seen.filter((t) => /^step /.test(t)))];
    console.log('progress texts seen: ' + (steps.length ? steps.join(' | ') : '(none: finished before a poll)') +
                ' | final: ' + r.progressText);
    console.log('image ' + r.w + 'x' + r.h + ', luma variance ' + r.variance.toFixed(1) +
                ', redness (R-B) centre ' + r.centre.toFixed(1) + ' vs corners ' + r.corners.toFixed(1));
    console.log('parameters: ' + JSON.stringify(r.params));

    if (r.w !== 64 || r.h !== 64) bad('image is ' + r.w + 'x' + r.h + ', not 64x64');
    if (!(r.variance > 20)) bad('the image is flat: luma variance ' + r.variance.toFixed(2));
    if (!(r.centre > r.corners + 20)) bad('the centre is not redder than the corners (' + r.centre.toFixed(1) + ' vs ' + r.corners.toFixed(1) + ')');
    if (r.items !== 1) bad('the gallery has ' + r.items + ' items, expected 1');
    if (!r.params.includes(PROMPT)) bad('the parameters text does not show the prompt: ' + JSON.stringify(r.params));
    if (!/^vkdiff-\d+\.png$/.test(r.download || '')) bad('bad download link name: ' + r.download);
    if (r.href !== 'data:image/png;base64,') bad('the download link is not a PNG data URL: ' + r.href);
    if (!(r.progress >= 1)) bad('the progress bar ended at ' + r.progress + ', not complete (' + r.progressText + ')');
    if (r.generateDisabled) bad('Generate stayed disabled after the job');
    for (const t of steps) {
      const m = /^step (\d+)\/(\d+)/.exec(t);
      if (!m || Number(m[2]) !== 4 || Number(m[1]) > 4) bad('odd progress text "' + t + '" for a 4-step job');
    }
    if (consoleErrors.length) bad(consoleErrors.length + ' console error(s): ' + consoleErrors.join(' | '));
  } finally {
    if (page) {
      await page.screenshot({ path: path.join(outdir, 'page.png'), fullPage: true })
        .then(() => console.log('screenshot: ' + path.join(outdir, 'page.png')))
        .catch((e) => console.error('screenshot failed: ' + e.message));
    }
    await browser.close().catch(() => {});
  }
}

main().then(() => {
  console.log('page test: ok');
  process.exit(0);
}, (e) => fail(e instanceof Failure ? e.message : (e && e.stack) || String(e)));
