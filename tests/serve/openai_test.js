'use strict';
/* vkdiff serve through the official OpenAI Node client (issue 23, /v1):
 * - --api-key k: /v1/* and /sdapi/* without the key or with a wrong one get 401 (OpenAI's error shape
 *   on /v1); GET /health and GET / stay open
 * - images.generate n=2 64x64 b64_json: two 64x64 PNGs, judged like tests/test_adherence.c (simpler):
 *   the centre red, the border blue for "a large red circle in the center on a blue background"
 * - models.list() lists "shapes"
 * - response_format "url": 400 in OpenAI's shape (the client throws BadRequestError)
 * - images.edit with an image and a mask made here (RGBA: transparent = repaint; grey: white = repaint)
 *   node tests/serve/openai_test.js VKDIFF SOURCE_DIR */
const t = require('./lib');
const { default: OpenAI, toFile } = require('openai');

const KEY = 'k';
const PROMPT = 'a large red circle in the center on a blue background';

t.main('openai', async () => {
    const s = await t.startServer(['--api-key', KEY]);
    t.log(`server at ${s.url}`);
    const client = new OpenAI({ baseURL: s.url + '/v1', apiKey: KEY, maxRetries: 0, timeout: 300000 });

    /* --- the key */
    for (const [what, headers] of [['no key', {}], ['a wrong key', { Authorization: 'Bearer wrong' }],
                                   ['a key without Bearer', { Authorization: KEY }]]) {
        const r = await t.get(s.url, '/v1/models', { headers });
        if (t.check(r.status === 401, `GET /v1/models with ${what}: ${t.desc(r)}, expected 401`) &&
            t.check(t.isOpenAIError(r), `GET /v1/models with ${what}: not OpenAI's error shape: ${t.desc(r)}`))
            t.log(`ok: /v1/models with ${what}: 401 ${r.json.error.type}`);
        const r2 = await t.post(s.url, '/v1/images/generations', { prompt: PROMPT, size: '64x64' }, { headers });
        t.check(r2.status === 401, `POST /v1/images/generations with ${what}: ${t.desc(r2)}, expected 401`);
        const r3 = await t.get(s.url, '/sdapi/v1/samplers', { headers });
        t.check(r3.status === 401, `GET /sdapi/v1/samplers with ${what}: ${t.desc(r3)}, expected 401`);
        t.check(r3.status !== 401 || t.isSdError(r3), `GET /sdapi/v1/samplers with ${what}: not {error, detail}: ${t.desc(r3)}`);
    }
    try {
        const bad = new OpenAI({ baseURL: s.url + '/v1', apiKey: 'wrong', maxRetries: 0, timeout: 60000 });
        await bad.models.list();
        t.fail('models.list() with a wrong key succeeded');
    } catch (e) {
        if (t.check(e instanceof OpenAI.AuthenticationError, `models.list() with a wrong key: ${e.constructor.name} ${e.message}`))
            t.log('ok: models.list() with a wrong key throws AuthenticationError');
    }
    let r = await t.get(s.url, '/health');
    t.check(r.status === 200 && r.json && r.json.status === 'ok', `GET /health without a key: ${t.desc(r)}`);
    r = await t.get(s.url, '/');
    t.check(r.status === 200 && /text\/html/.test(r.headers['content-type'] || ''),
            `GET / without a key: HTTP ${r.status} ${r.headers['content-type']}`);
    r = await t.get(s.url, '/sdapi/v1/samplers', { headers: { Authorization: 'Bearer ' + KEY } });
    t.check(r.status === 200, `GET /sdapi/v1/samplers with the key: ${t.desc(r)}`);

    /* --- models.list() */
    try {
        const page = await client.models.list();
        const ids = page.data.map(m => m.id);
        const m = page.data.find(x => x.id === 'shapes');
        if (t.check(m, `models.list(): no "shapes" in ${JSON.stringify(ids)}`) &&
            t.check(m.object === 'model' && m.owned_by === 'vkdiff' && typeof m.created === 'number',
                    `models.list(): shapes is ${JSON.stringify(m)}`))
            t.log(`ok: models.list(): ${JSON.stringify(ids)}`);
    } catch (e) {
        t.fail(`models.list(): ${e.message}`);
    }
    r = await t.get(s.url, '/v1/models', { headers: { Authorization: 'Bearer ' + KEY } });
    t.check(r.status === 200 && r.json && r.json.object === 'list', `GET /v1/models: ${t.desc(r)}`);

    /* --- images.generate: 2 PNGs, the picture judged */
    let first = null;
    try {
        const t0 = Date.now();
        const res = await client.images.generate({
            prompt: PROMPT, size: '64x64', n: 2, response_format: 'b64_json', steps: 10, seed: 5,
            cfg_scale: 5, sampler: 'DPM++ 2M', scheduler: 'Karras', /* tests/test_adherence.c's settings */
        });
        t.log(`images.generate: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        t.check(typeof res.created === 'number' && Math.abs(res.created - Date.now() / 1000) < 3600,
                `images.generate: created ${res.created}`);
        t.must(Array.isArray(res.data) && res.data.length === 2,
               `images.generate n=2: data ${JSON.stringify(res.data && res.data.length)}`);
        const pngs = [];
        res.data.forEach((d, i) => {
            t.check(d.revised_prompt === PROMPT, `image ${i}: revised_prompt ${JSON.stringify(d.revised_prompt)}`);
            t.check(!d.url, `image ${i}: a url with response_format b64_json`);
            const buf = Buffer.from(d.b64_json || '', 'base64');
            pngs.push(buf);
            let img;
            try {
                img = t.decodePNG(buf);
            } catch (e) {
                return t.fail(`image ${i}: ${e.message}`);
            }
            if (!t.check(img.width === 64 && img.height === 64, `image ${i}: ${img.width}x${img.height}, expected 64x64`))
                return;
            const j = t.judgeShapes(img);
            if (t.check(j.centre === 'red' && t.dominant(j.centreRGB, 0) && j.corners === 'blue' && t.dominant(j.cornersRGB, 2),
                        `image ${i}: centre ${j.centre} ${JSON.stringify(j.centreRGB)}, border ${j.corners} ` +
                        `${JSON.stringify(j.cornersRGB)}; expected a red centre on blue`))
                t.log(`ok: image ${i}: 64x64, red centre ${JSON.stringify(j.centreRGB)} on blue ${JSON.stringify(j.cornersRGB)}`);
            if (i === 0)
                first = img;
        });
        if (pngs.length === 2 && pngs[0].equals(pngs[1]))
            t.log('note: the two images of n=2 are the same bytes (one seed for both?)');
    } catch (e) {
        t.fail(`images.generate: ${e.message}`);
    }

    /* --- response_format url: 400 */
    try {
        await client.images.generate({ prompt: PROMPT, size: '64x64', response_format: 'url', steps: 2 });
        t.fail('images.generate response_format url succeeded');
    } catch (e) {
        if (t.check(e instanceof OpenAI.BadRequestError, `response_format url: ${e.constructor.name} ${e.status} ${e.message}`))
            t.log(`ok: response_format url: BadRequestError (${e.message})`);
    }
    r = await t.post(s.url, '/v1/images/generations', { prompt: PROMPT, size: '64x64', response_format: 'url', steps: 2 },
                     { headers: { Authorization: 'Bearer ' + KEY } });
    t.check(r.status === 400 && t.isOpenAIError(r) && r.json.error.type === 'invalid_request_error',
            `POST /v1/images/generations response_format url: ${t.desc(r)}, expected 400 invalid_request_error`);
    /* a missing prompt, a bad size, a string for a number: 400 in the same shape */
    for (const [what, body] of [['no prompt', { size: '64x64' }], ['size "big"', { prompt: PROMPT, size: 'big' }],
                                ['steps "ten"', { prompt: PROMPT, size: '64x64', steps: 'ten' }]]) {
        r = await t.post(s.url, '/v1/images/generations', body, { headers: { Authorization: 'Bearer ' + KEY } });
        t.check(r.status === 400 && t.isOpenAIError(r), `POST /v1/images/generations ${what}: ${t.desc(r)}, expected 400`);
    }

    /* --- images.edit: the first picture, its background repainted as yellow, the circle kept */
    if (first) {
        const n = 64 * 64, rgb = new Uint8Array(n * 3), rgba = new Uint8Array(n * 4), grey = new Uint8Array(n);
        const red = t.PALETTE.red, blue = t.PALETTE.blue;
        let repaint = 0;
        for (let p = 0; p < n; p++) {
            const px = [0, 1, 2].map(c => first.data[p * first.channels + c]);
            const d = c => (px[0] - c[0]) ** 2 + (px[1] - c[1]) ** 2 + (px[2] - c[2]) ** 2;
            const bg = d(blue) < d(red); /* background: repaint */
            repaint += bg;
            rgb.set(px, p * 3);
            rgba.set([0, 0, 0, bg ? 0 : 255], p * 4);
            grey[p] = bg ? 255 : 0;
        }
        t.log(`edit mask: ${repaint} of ${n} pixels to repaint`);
        const image = t.encodePNG(64, 64, 3, rgb);
        const masks = [['RGBA mask (transparent = repaint)', t.encodePNG(64, 64, 4, rgba)],
                       ['grey mask (white = repaint)', t.encodePNG(64, 64, 1, grey)]];
        const EDIT = 'a large red circle in the center on a yellow background';
        for (const [what, mask] of masks) {
            try {
                const res = await client.images.edit({
                    image: await toFile(image, 'image.png', { type: 'image/png' }),
                    mask: await toFile(mask, 'mask.png', { type: 'image/png' }),
                    prompt: EDIT, n: 1, size: '64x64', response_format: 'b64_json',
                    steps: 10, seed: 1, cfg_scale: 5, strength: 1,
                });
                t.must(Array.isArray(res.data) && res.data.length === 1, `images.edit ${what}: data ${JSON.stringify(res.data && res.data.length)}`);
                const img = t.decodePNG(Buffer.from(res.data[0].b64_json || '', 'base64'));
                t.check(img.width === 64 && img.height === 64, `images.edit ${what}: ${img.width}x${img.height}`);
                const j = t.judgeShapes(img);
                if (t.check(j.centre === 'red' && j.corners === 'yellow',
                            `images.edit ${what}: centre ${j.centre} ${JSON.stringify(j.centreRGB)}, border ${j.corners} ` +
                            `${JSON.stringify(j.cornersRGB)}; expected the red centre kept on yellow`))
                    t.log(`ok: images.edit ${what}: red centre ${JSON.stringify(j.centreRGB)} kept, background ` +
                          `repainted yellow ${JSON.stringify(j.cornersRGB)}`);
            } catch (e) {
                t.fail(`images.edit ${what}: ${e.message}`);
            }
        }
        /* without a mask (img2img): an answer of the right size */
        try {
            const res = await client.images.edit({
                image: await toFile(image, 'image.png', { type: 'image/png' }),
                prompt: PROMPT, n: 1, size: '64x64', steps: 4, seed: 2, strength: 0.5,
            });
            const img = t.decodePNG(Buffer.from(res.data[0].b64_json || '', 'base64'));
            if (t.check(img.width === 64 && img.height === 64, `images.edit without a mask: ${img.width}x${img.height}`))
                t.log('ok: images.edit without a mask: a 64x64 PNG');
        } catch (e) {
            t.fail(`images.edit without a mask: ${e.message}`);
        }
    } else {
        t.fail('images.edit not tried: no picture from images.generate');
    }

    await s.stopClean('openai server');
});
