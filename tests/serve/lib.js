'use strict';
/* Helpers shared by the vkdiff serve tests (tests/serve/*_test.js, run by tests/serve/run.sh).
 *   const t = require('./lib');
 *   t.main('name', async () => { const s = await t.startServer(['--api-key', 'k']); ...; await s.stopClean(); });
 * Every test runs under a hard overall timeout (VKD_SERVE_TEST_TIMEOUT seconds, default 1200): when it
 * fires, the servers it started are killed and the test fails, so nothing can hang. Servers are started
 * from the source directory (argv[3]) so the shipped model in weights/ is found; their stderr is kept and
 * a stop() reports the exit code and any sanitizer report (the CI binary has ASan+UBSan: any
 * "ERROR: AddressSanitizer" or "runtime error:" line fails the test). Node 18 or later, no packages. */
const { spawn } = require('child_process');
const http = require('http');
const net = require('net');
const zlib = require('zlib');

const VKDIFF = process.argv[2];
const SRC = process.argv[3];
const VERBOSE = !!process.env.VKD_SERVE_TEST_VERBOSE;
/* a cold start on lavapipe compiles every pipeline (minutes); a warm one takes seconds */
const START_TIMEOUT_MS = 1000 * Number(process.env.VKD_SERVE_START_TIMEOUT || 400);
const TEST_TIMEOUT_S = Number(process.env.VKD_SERVE_TEST_TIMEOUT || 1200);

const servers = new Set(); /* started and not yet exited: killed on a failure or the hard timeout */
let failures = 0;

function log(...a) { console.log(...a); }

function killAll() {
    for (const s of servers)
        try { s.proc.kill('SIGKILL'); } catch (e) { /* gone */ }
}

/* a failed check: printed, counted; the test goes on unless it is fatal */
function fail(msg) {
    failures++;
    console.log('FAIL: ' + msg);
}
function check(cond, msg) {
    if (!cond)
        fail(msg);
    return !!cond;
}
/* a failed precondition: the rest of the test cannot run */
class Fatal extends Error {}
function must(cond, msg) {
    if (!cond)
        throw new Fatal(msg);
}

/* main(name, fn): runs fn under the hard timeout; exit 0 when every check passed */
function main(name, fn, timeoutS = TEST_TIMEOUT_S) {
    if (!VKDIFF || !SRC) {
        console.error(`usage: node ${process.argv[1]} VKDIFF SOURCE_DIR`);
        process.exit(2);
    }
    const t0 = Date.now();
    const timer = setTimeout(() => {
        console.log(`FAIL: ${name}: hard timeout after ${timeoutS} s; killing the servers`);
        for (const s of servers)
            console.log(`--- stderr of the server on port ${s.port}:\n${tail(s.stderr())}`);
        killAll();
        process.exit(1);
    }, timeoutS * 1000);
    process.on('uncaughtException', e => {
        console.log(`FAIL: ${name}: uncaught ${e && e.stack || e}`);
        killAll();
        process.exit(1);
    });
    Promise.resolve()
        .then(fn)
        .catch(e => {
            fail(`${name}: ${e instanceof Fatal ? e.message : (e && e.stack) || e}`);
            for (const s of servers)
                console.log(`--- stderr of the server on port ${s.port}:\n${tail(s.stderr())}`);
        })
        .finally(() => {
            clearTimeout(timer);
            killAll();
            const secs = ((Date.now() - t0) / 1000).toFixed(1);
            if (failures)
                console.log(`${name}: ${failures} failure(s) in ${secs} s`);
            else
                console.log(`${name}: passed in ${secs} s`);
            process.exit(failures ? 1 : 0);
        });
}

function tail(s, n = 4000) { return s.length > n ? '...' + s.slice(-n) : s; }
const sleep = ms => new Promise(r => setTimeout(r, ms));

const SANITIZER_RE = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:/;

/* startServer(extraArgs, {env, cwd}): spawns `VKDIFF serve --port 0 ...extra` in the source directory and
 * waits for "vkdiff serve: listening on http://127.0.0.1:PORT". Returns
 *   {url, port, proc, stderr(), exited (promise of {code, signal}), stop(), stopClean(name)} */
function startServer(extra = [], opts = {}) {
    const args = ['serve', '--port', '0', ...extra];
    const proc = spawn(VKDIFF, args, {
        cwd: opts.cwd || SRC,
        env: { ...process.env, ...(opts.env || {}) },
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '', out = '';
    const s = { proc, port: 0, url: '', args, stderr: () => err, stdout: () => out };
    servers.add(s);
    s.exited = new Promise(resolve => {
        proc.on('exit', (code, signal) => {
            servers.delete(s);
            s.exit = { code, signal };
            resolve(s.exit);
        });
        proc.on('error', e => {
            servers.delete(s);
            err += `\n(spawn failed: ${e.message})`;
            s.exit = { code: null, signal: null, error: e };
            resolve(s.exit);
        });
    });
    proc.stdout.on('data', d => { out += d; });
    const ready = new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
            reject(new Fatal(`server (${args.join(' ')}) not listening after ${START_TIMEOUT_MS / 1000} s; ` +
                             `stderr:\n${tail(err)}`));
        }, START_TIMEOUT_MS);
        proc.stderr.on('data', d => {
            const chunk = d.toString();
            err += chunk;
            if (VERBOSE)
                process.stderr.write(chunk.replace(/^/gm, `[serve ${s.port || '?'}] `));
            const m = /vkdiff serve: listening on (http:\/\/127\.0\.0\.1:(\d+))\b/.exec(err);
            if (m && !s.port) {
                s.port = Number(m[2]);
                s.url = m[1];
                clearTimeout(timer);
                resolve(s);
            }
        });
        s.exited.then(e => {
            clearTimeout(timer);
            reject(new Fatal(`server (${args.join(' ')}) exited (code ${e.code}, signal ${e.signal}) before ` +
                             `listening; stderr:\n${tail(err)}`));
        });
    });
    /* stop(): SIGTERM, wait for the exit (60 s, then SIGKILL) ->
     *   {code, signal, killed, sanitizer: [lines], stderr} */
    s.stop = async (waitMs = 60000) => {
        if (!s.exit)
            try { proc.kill('SIGTERM'); } catch (e) { /* gone */ }
        let killed = false;
        const t = setTimeout(() => { killed = true; try { proc.kill('SIGKILL'); } catch (e) { /* gone */ } }, waitMs);
        const e = await s.exited;
        clearTimeout(t);
        const sanitizer = err.split('\n').filter(l => SANITIZER_RE.test(l));
        return { code: e.code, signal: e.signal, killed, sanitizer, stderr: err };
    };
    /* stopClean(name): stop() and check: exit 0 on SIGTERM, no sanitizer report */
    s.stopClean = async (name = `server on port ${s.port}`) => {
        const r = await s.stop();
        check(!r.killed, `${name}: did not exit within 60 s of SIGTERM (killed)`);
        check(r.code === 0, `${name}: exit code ${r.code} (signal ${r.signal}) after SIGTERM, expected 0`);
        check(r.sanitizer.length === 0, `${name}: sanitizer report:\n${r.sanitizer.join('\n')}\n${tail(r.stderr)}`);
        if (r.code === 0 && !r.sanitizer.length && !r.killed)
            log(`ok: ${name} exited 0 on SIGTERM, no sanitizer report`);
        return r;
    };
    return ready;
}

/* ---------------------------------------------------------------- HTTP */

/* request(baseUrl, method, path, {headers, body (Buffer|string|object: JSON), timeoutMs, agent, onRequest})
 *   -> {status, headers, body (Buffer), text, json (undefined when not JSON)}
 * A new connection per request (no keep-alive) unless an agent is given. Rejects on a network error
 * (err.code, e.g. ECONNRESET) or after timeoutMs (err.code 'TIMEOUT'). */
function request(base, method, path, opts = {}) {
    const u = new URL(path, base);
    let body = opts.body;
    const headers = { ...(opts.headers || {}) };
    if (body !== undefined && !Buffer.isBuffer(body) && typeof body !== 'string') {
        body = JSON.stringify(body);
        if (!Object.keys(headers).some(h => h.toLowerCase() === 'content-type'))
            headers['Content-Type'] = 'application/json';
    }
    if (body !== undefined)
        headers['Content-Length'] = Buffer.byteLength(body);
    const timeoutMs = opts.timeoutMs || 120000;
    return new Promise((resolve, reject) => {
        const req = http.request({
            host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers,
            agent: opts.agent || false,
        });
        let done = false;
        const finish = (f, v) => { if (!done) { done = true; clearTimeout(timer); f(v); } };
        const timer = setTimeout(() => {
            const e = new Error(`${method} ${path}: no answer within ${timeoutMs} ms`);
            e.code = 'TIMEOUT';
            req.destroy();
            finish(reject, e);
        }, timeoutMs);
        req.on('error', e => finish(reject, e));
        req.on('response', res => {
            const parts = [];
            res.on('data', d => parts.push(d));
            res.on('error', e => finish(reject, e));
            res.on('end', () => {
                const buf = Buffer.concat(parts);
                const r = { status: res.statusCode, headers: res.headers, body: buf, text: buf.toString('utf8') };
                try { r.json = JSON.parse(r.text); } catch (e) { r.json = undefined; }
                finish(resolve, r);
            });
        });
        if (opts.onRequest)
            opts.onRequest(req);
        req.end(body);
    });
}
const get = (base, path, opts) => request(base, 'GET', path, opts);
const post = (base, path, body, opts = {}) => request(base, 'POST', path, { ...opts, body });

/* short description of a response for failure messages */
function desc(r) {
    if (!r)
        return '(no response)';
    return `HTTP ${r.status} ${tail(r.text.replace(/"[A-Za-z0-9+/=]{200,}"/g, '"<base64>"'), 600)}`;
}

/* the two error shapes of the contract */
function isOpenAIError(r) {
    const e = r.json && r.json.error;
    return !!e && typeof e === 'object' && typeof e.message === 'string' && typeof e.type === 'string' &&
           'param' in e && 'code' in e;
}
function isSdError(r) {
    return !!r.json && typeof r.json.error === 'string' && typeof r.json.detail === 'string';
}

/* ---------------------------------------------------------------- PNG */

const PNG_SIG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const CRC_TABLE = (() => {
    const t = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
        let c = n;
        for (let k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
        t[n] = c >>> 0;
    }
    return t;
})();
function crc32(buf) {
    let c = 0xffffffff;
    for (let i = 0; i < buf.length; i++)
        c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
}

/* parsePNG(buf) -> {width, height, bitDepth, colorType, interlace, text: {keyword: value} (tEXt chunks),
 *                   chunks: [type...], idat: Buffer}; throws on a malformed file (signature, CRC, order) */
function parsePNG(buf) {
    if (!Buffer.isBuffer(buf) || buf.length < 8 + 25 || !buf.subarray(0, 8).equals(PNG_SIG))
        throw new Error('not a PNG (signature)');
    const png = { text: {}, chunks: [], idat: [] };
    let off = 8;
    while (off < buf.length) {
        if (off + 12 > buf.length)
            throw new Error('PNG: truncated chunk');
        const len = buf.readUInt32BE(off);
        const type = buf.toString('latin1', off + 4, off + 8);
        if (off + 12 + len > buf.length)
            throw new Error(`PNG: chunk ${type} runs past the end`);
        const data = buf.subarray(off + 8, off + 8 + len);
        if (crc32(buf.subarray(off + 4, off + 8 + len)) !== buf.readUInt32BE(off + 8 + len))
            throw new Error(`PNG: bad CRC in ${type}`);
        png.chunks.push(type);
        if (type === 'IHDR') {
            png.width = data.readUInt32BE(0);
            png.height = data.readUInt32BE(4);
            png.bitDepth = data[8];
            png.colorType = data[9];
            png.interlace = data[12];
        } else if (type === 'tEXt') {
            const z = data.indexOf(0);
            if (z > 0)
                png.text[data.toString('latin1', 0, z)] = data.toString('latin1', z + 1);
        } else if (type === 'IDAT') {
            png.idat.push(data);
        }
        off += 12 + len;
        if (type === 'IEND')
            break;
    }
    if (png.chunks[0] !== 'IHDR' || png.chunks[png.chunks.length - 1] !== 'IEND')
        throw new Error(`PNG: chunks ${png.chunks.join(',')} (IHDR first and IEND last expected)`);
    png.idat = Buffer.concat(png.idat);
    return png;
}

/* decodePNG(buf) -> {width, height, channels, data (Uint8Array, row-major, `channels` bytes a pixel), text}
 * 8-bit, non-interlaced, grey/grey+alpha/RGB/RGBA (the server writes 8-bit RGB) */
function decodePNG(buf) {
    const png = parsePNG(buf);
    const ch = { 0: 1, 2: 3, 4: 2, 6: 4 }[png.colorType];
    if (png.bitDepth !== 8 || !ch || png.interlace !== 0)
        throw new Error(`PNG: depth ${png.bitDepth} colour type ${png.colorType} interlace ${png.interlace} ` +
                        'not decoded here (8-bit non-interlaced grey/RGB/RGBA only)');
    const { width: w, height: h } = png;
    const raw = zlib.inflateSync(png.idat);
    const stride = w * ch;
    if (raw.length !== h * (stride + 1))
        throw new Error(`PNG: ${raw.length} bytes of image data, expected ${h * (stride + 1)}`);
    const out = new Uint8Array(h * stride);
    for (let y = 0; y < h; y++) {
        const f = raw[y * (stride + 1)];
        const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
        const row = y * stride, prev = (y - 1) * stride;
        for (let i = 0; i < stride; i++) {
            const a = i >= ch ? out[row + i - ch] : 0;
            const b = y > 0 ? out[prev + i] : 0;
            const c = i >= ch && y > 0 ? out[prev + i - ch] : 0;
            let p;
            switch (f) {
            case 0: p = 0; break;
            case 1: p = a; break;
            case 2: p = b; break;
            case 3: p = (a + b) >> 1; break;
            case 4: {
                const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
                p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
                break;
            }
            default: throw new Error(`PNG: filter ${f} in row ${y}`);
            }
            out[row + i] = (src[i] + p) & 0xff;
        }
    }
    return { width: w, height: h, channels: ch, data: out, text: png.text };
}

/* encodePNG(width, height, channels (1 grey, 3 RGB, 4 RGBA), data) -> Buffer (filter 0, zlib deflate) */
function encodePNG(w, h, ch, data) {
    const colorType = { 1: 0, 3: 2, 4: 6 }[ch];
    const raw = Buffer.alloc(h * (w * ch + 1));
    for (let y = 0; y < h; y++)
        Buffer.from(data.buffer, data.byteOffset + y * w * ch, w * ch).copy(raw, y * (w * ch + 1) + 1);
    const chunk = (type, body) => {
        const b = Buffer.alloc(12 + body.length);
        b.writeUInt32BE(body.length, 0);
        b.write(type, 4, 'latin1');
        body.copy(b, 8);
        b.writeUInt32BE(crc32(b.subarray(4, 8 + body.length)), 8 + body.length);
        return b;
    };
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(w, 0);
    ihdr.writeUInt32BE(h, 4);
    ihdr[8] = 8;
    ihdr[9] = colorType;
    return Buffer.concat([PNG_SIG, chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

/* ---------------------------------------------------------------- judging a picture (shapes model) */

/* the training palette (tools/shapes/data.py, tests/test_adherence.c) */
const PALETTE = {
    red: [220, 30, 30], green: [30, 170, 50], blue: [30, 70, 220], yellow: [245, 225, 40],
    orange: [245, 135, 20], purple: [140, 50, 180], white: [245, 245, 245], black: [20, 20, 20],
};
function nearestColor(rgb) {
    let best = null, bd = Infinity;
    for (const [name, c] of Object.entries(PALETTE)) {
        const d = (rgb[0] - c[0]) ** 2 + (rgb[1] - c[1]) ** 2 + (rgb[2] - c[2]) ** 2;
        if (d < bd)
            bd = d, best = name;
    }
    return best;
}
/* per-channel median of the pixels (x, y) with sel(x, y) */
function medianRGB(img, sel) {
    const chs = [[], [], []];
    for (let y = 0; y < img.height; y++)
        for (let x = 0; x < img.width; x++)
            if (sel(x, y))
                for (let c = 0; c < 3; c++)
                    chs[c].push(img.data[(y * img.width + x) * img.channels + c]);
    return chs.map(a => {
        a.sort((p, q) => p - q);
        const n = a.length;
        return n ? (n % 2 ? a[n >> 1] : (a[n / 2 - 1] + a[n / 2]) / 2) : NaN;
    });
}
/* judgeShapes(img) -> {centre: name, corners: name, centreRGB, cornersRGB}: a simpler version of
 * tests/test_adherence.c's judge: the median colour of the centre quarter (the middle 16x16 of 64x64)
 * and of the two outermost pixel rings, each named by the nearest palette colour */
function judgeShapes(img) {
    const w = img.width, h = img.height;
    const cx0 = Math.floor(w * 3 / 8), cx1 = Math.ceil(w * 5 / 8), cy0 = Math.floor(h * 3 / 8), cy1 = Math.ceil(h * 5 / 8);
    const centreRGB = medianRGB(img, (x, y) => x >= cx0 && x < cx1 && y >= cy0 && y < cy1);
    const cornersRGB = medianRGB(img, (x, y) => x < 2 || y < 2 || x >= w - 2 || y >= h - 2);
    return { centre: nearestColor(centreRGB), corners: nearestColor(cornersRGB), centreRGB, cornersRGB };
}
/* dominant(rgb, channel, margin): that channel exceeds the other two by margin */
function dominant(rgb, c, margin = 30) {
    return [0, 1, 2].every(k => k === c || rgb[c] >= rgb[k] + margin);
}

/* ---------------------------------------------------------------- misc */

/* a free loopback port (bind port 0, close) */
function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.on('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const p = srv.address().port;
            srv.close(() => resolve(p));
        });
    });
}

/* waitFor(fn, timeoutMs, everyMs): polls the async fn until it returns a truthy value -> that value, or null */
async function waitFor(fn, timeoutMs, everyMs = 100) {
    const end = Date.now() + timeoutMs;
    for (;;) {
        const v = await fn();
        if (v)
            return v;
        if (Date.now() >= end)
            return null;
        await sleep(everyMs);
    }
}

/* a normal small request that must still succeed (the server keeps serving after a fault) */
async function smallTxt2img(base, headers = {}) {
    return post(base, '/sdapi/v1/txt2img',
                { prompt: 'a small green square in the top left on a white background', width: 64, height: 64,
                  steps: 2, cfg_scale: 1, seed: 1 },
                { headers, timeoutMs: 180000 });
}
async function stillServes(base, what, headers = {}) {
    let r;
    try {
        r = await smallTxt2img(base, headers);
    } catch (e) {
        return fail(`after ${what}: a small txt2img failed: ${e.message}`);
    }
    if (check(r.status === 200 && r.json && Array.isArray(r.json.images) && r.json.images.length === 1,
              `after ${what}: a small txt2img: ${desc(r)}`))
        log(`ok: after ${what}, a small txt2img still answers 200`);
}

module.exports = {
    VKDIFF, SRC, main, fail, check, must, Fatal, log, sleep, tail, startServer, request, get, post, desc,
    isOpenAIError, isSdError, parsePNG, decodePNG, encodePNG, crc32, judgeShapes, nearestColor, dominant,
    PALETTE, freePort, waitFor, smallTxt2img, stillServes,
    failures: () => failures,
};
