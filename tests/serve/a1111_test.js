'use strict';
/* vkdiff serve's A1111 API (stable-diffusion-webui's /sdapi/v1, issue 23), every endpoint of the contract:
 * txt2img (batch_size 1 x n_iter 2: 64x64 PNGs whose tEXt "parameters" is info's infotexts[i], all_seeds
 * seed, seed+1; seed -1; hires fix), img2img (from txt2img's output, with and without a mask), samplers,
 * schedulers, sd-models, loras, options GET/POST, progress (values rise, a current_image preview while a
 * job runs, finished/unknown ids), interrupt (the job answers quickly with fewer images, info.interrupted),
 * an unknown sampler (400).
 *   node tests/serve/a1111_test.js VKDIFF SOURCE_DIR */
const fs = require('fs');
const os = require('os');
const path = require('path');
const t = require('./lib');

const PROMPT = 'a large red circle in the center on a blue background';
const BASE = { prompt: PROMPT, negative_prompt: '', width: 64, height: 64, steps: 10, cfg_scale: 5,
               sampler_name: 'DPM++ 2M', scheduler: 'Karras' };

function parseInfo(r, what) {
    let info;
    try {
        info = JSON.parse(r.json.info);
    } catch (e) {
        t.fail(`${what}: info is not a JSON string: ${JSON.stringify(r.json && r.json.info)}`);
        return null;
    }
    return info;
}

/* a minimal LoRA .safetensors: one kohya-named F32 tensor [1, 1] (the server tells LoRAs from other
 * files by their key names), with metadata */
function writeLora(file) {
    let hdr = JSON.stringify({
        __metadata__: { ss_network_module: 'networks.lora' },
        'lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight': { dtype: 'F32', shape: [1, 1], data_offsets: [0, 4] },
    });
    while ((hdr.length + 8) % 8)
        hdr += ' ';
    const b = Buffer.alloc(8 + hdr.length + 4);
    b.writeBigUInt64LE(BigInt(hdr.length), 0);
    b.write(hdr, 8, 'latin1');
    fs.writeFileSync(file, b);
}

t.main('a1111', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vkd-a1111-'));
    const loraDir = path.join(tmp, 'loras');
    fs.mkdirSync(loraDir);
    writeLora(path.join(loraDir, 'x.safetensors'));
    const s = await t.startServer(['--lora-dir', loraDir]);
    t.log(`server at ${s.url}`);
    const u = s.url;

    /* --- listings */
    let r = await t.get(u, '/sdapi/v1/samplers');
    if (t.check(r.status === 200 && Array.isArray(r.json), `GET samplers: ${t.desc(r)}`)) {
        const ea = r.json.find(x => x.name === 'Euler a');
        t.check(ea && Array.isArray(ea.aliases) && ea.aliases.includes('euler_a') && ea.options && typeof ea.options === 'object',
                `samplers: "Euler a" with alias euler_a and options: ${JSON.stringify(ea)}`);
        t.check(r.json.some(x => x.name === 'DPM++ 2M'), `samplers: no "DPM++ 2M" in ${r.text}`);
        t.check(r.json.every(x => typeof x.name === 'string' && Array.isArray(x.aliases)), `samplers: entries ${r.text}`);
        t.log(`ok: samplers: ${r.json.map(x => x.name).join(', ')}`);
    }
    r = await t.get(u, '/sdapi/v1/schedulers');
    if (t.check(r.status === 200 && Array.isArray(r.json), `GET schedulers: ${t.desc(r)}`)) {
        const a = r.json.find(x => x.name === 'automatic');
        t.check(a && a.label === 'Automatic' && 'aliases' in a, `schedulers: automatic/Automatic: ${r.text}`);
        t.check(r.json.some(x => x.label === 'Karras'), `schedulers: no Karras in ${r.text}`);
        t.log(`ok: schedulers: ${r.json.map(x => x.label).join(', ')}`);
    }
    r = await t.get(u, '/sdapi/v1/sd-models');
    if (t.check(r.status === 200 && Array.isArray(r.json), `GET sd-models: ${t.desc(r)}`)) {
        const m = r.json.find(x => x.title === 'shapes.safetensors');
        if (t.check(m && m.model_name === 'shapes' && typeof m.filename === 'string' && 'hash' in m && 'sha256' in m && 'config' in m,
                    `sd-models: shapes.safetensors entry: ${r.text}`))
            t.log(`ok: sd-models: ${r.json.map(x => x.title).join(', ')}`);
    }
    r = await t.get(u, '/sdapi/v1/loras');
    if (t.check(r.status === 200 && Array.isArray(r.json), `GET loras: ${t.desc(r)}`)) {
        const x = r.json.find(e => e.name === 'x');
        if (t.check(x && x.alias === 'x' && typeof x.path === 'string' && x.path.endsWith('x.safetensors') &&
                    x.metadata && typeof x.metadata === 'object', `loras (--lora-dir with x.safetensors): ${r.text}`))
            t.log(`ok: loras: ${r.text}`);
    }

    /* --- options */
    r = await t.get(u, '/sdapi/v1/options');
    if (t.check(r.status === 200 && r.json && typeof r.json === 'object', `GET options: ${t.desc(r)}`)) {
        const o = r.json;
        t.check(o.sd_model_checkpoint === 'shapes.safetensors', `options.sd_model_checkpoint ${JSON.stringify(o.sd_model_checkpoint)}`);
        t.check(o.CLIP_stop_at_last_layers === 1, `options.CLIP_stop_at_last_layers ${JSON.stringify(o.CLIP_stop_at_last_layers)}`);
        t.check(typeof o.show_progress_every_n_steps === 'number', `options.show_progress_every_n_steps ${JSON.stringify(o.show_progress_every_n_steps)}`);
        t.check(o.randn_source === 'CPU', `options.randn_source ${JSON.stringify(o.randn_source)}`);
    }
    r = await t.post(u, '/sdapi/v1/options', { show_progress_every_n_steps: 1 });
    t.check(r.status === 200 && r.json && typeof r.json === 'object' && Object.keys(r.json).length === 0,
            `POST options {show_progress_every_n_steps: 1}: ${t.desc(r)}, expected 200 {}`);
    r = await t.get(u, '/sdapi/v1/options');
    if (t.check(r.status === 200 && r.json && r.json.show_progress_every_n_steps === 1,
                `GET options after POST: ${t.desc(r)}`))
        t.log('ok: options GET/POST');

    /* --- idle progress */
    r = await t.get(u, '/sdapi/v1/progress');
    t.check(r.status === 200 && r.json && r.json.progress === 0 && r.json.state && r.json.state.job_count === 0,
            `GET progress while idle: ${t.desc(r)}, expected progress 0, job_count 0`);

    /* --- txt2img: batch_size 1 x n_iter 2 */
    let t2i = null;
    r = await t.post(u, '/sdapi/v1/txt2img', { ...BASE, seed: 7, batch_size: 1, n_iter: 2 }, { timeoutMs: 300000 });
    if (t.check(r.status === 200 && r.json && Array.isArray(r.json.images), `txt2img: ${t.desc(r)}`)) {
        t2i = r.json;
        const info = parseInfo(r, 'txt2img');
        t.check(r.json.images.length === 2, `txt2img n_iter 2: ${r.json.images.length} images`);
        t.check(r.json.parameters && r.json.parameters.prompt === PROMPT && r.json.parameters.n_iter === 2,
                `txt2img: parameters ${JSON.stringify(r.json.parameters)}`);
        if (info) {
            t.check(JSON.stringify(info.all_seeds) === '[7,8]' && info.seed === 7,
                    `txt2img seed 7: seed ${info.seed}, all_seeds ${JSON.stringify(info.all_seeds)}, expected [7,8]`);
            t.check(info.prompt === PROMPT && Array.isArray(info.all_prompts) && info.all_prompts.length === 2,
                    `txt2img: info.prompt/all_prompts ${JSON.stringify([info.prompt, info.all_prompts])}`);
            t.check(info.width === 64 && info.height === 64 && info.steps === 10 && info.cfg_scale === 5 &&
                    info.batch_size === 1 && typeof info.sampler_name === 'string' && typeof info.sd_model_name === 'string' &&
                    'negative_prompt' in info && 'job_timestamp' in info,
                    `txt2img: info fields ${JSON.stringify({ ...info, infotexts: undefined })}`);
            t.check(info.interrupted === false, `txt2img: info.interrupted ${info.interrupted}`);
            t.check(Array.isArray(info.infotexts) && info.infotexts.length === 2, `txt2img: infotexts ${JSON.stringify(info.infotexts)}`);
        }
        r.json.images.forEach((b64, i) => {
            let img;
            try {
                img = t.decodePNG(Buffer.from(b64, 'base64'));
            } catch (e) {
                return t.fail(`txt2img image ${i}: ${e.message}`);
            }
            t.check(img.width === 64 && img.height === 64, `txt2img image ${i}: ${img.width}x${img.height}`);
            t.check(info && info.infotexts && img.text.parameters === info.infotexts[i],
                    `txt2img image ${i}: tEXt parameters ${JSON.stringify(img.text.parameters)} != infotexts[${i}] ` +
                    `${JSON.stringify(info && info.infotexts && info.infotexts[i])}`);
            t.check(/Seed: /.test(img.text.parameters || '') && (img.text.parameters || '').startsWith(PROMPT),
                    `txt2img image ${i}: infotext ${JSON.stringify(img.text.parameters)}`);
            const j = t.judgeShapes(img);
            t.check(j.centre === 'red' && j.corners === 'blue',
                    `txt2img image ${i}: centre ${j.centre} ${JSON.stringify(j.centreRGB)} on ${j.corners} ` +
                    `${JSON.stringify(j.cornersRGB)}, expected red on blue`);
        });
        if (r.json.images.length === 2 && r.json.images[0] === r.json.images[1])
            t.fail('txt2img: both images are the same (seeds 7 and 8)');
        t.log(`ok: txt2img: ${r.json.images.length} images, infotexts[0] ${JSON.stringify(info && info.infotexts && info.infotexts[0])}`);
    }

    /* seed -1: a random seed, reported */
    r = await t.post(u, '/sdapi/v1/txt2img', { ...BASE, steps: 2, seed: -1 });
    if (t.check(r.status === 200, `txt2img seed -1: ${t.desc(r)}`)) {
        const info = parseInfo(r, 'txt2img seed -1');
        t.check(info && Number.isInteger(info.seed) && info.seed >= 0 && info.all_seeds[0] === info.seed,
                `txt2img seed -1: info.seed ${info && info.seed}, all_seeds ${JSON.stringify(info && info.all_seeds)}`);
    }
    /* hires fix: 64 -> 128 */
    r = await t.post(u, '/sdapi/v1/txt2img', { ...BASE, steps: 2, seed: 3, enable_hr: true, hr_scale: 2,
                                               hr_second_pass_steps: 2, denoising_strength: 0.5, hr_upscaler: 'Latent' });
    if (t.check(r.status === 200 && r.json && r.json.images && r.json.images.length === 1, `txt2img hires: ${t.desc(r)}`)) {
        const p = t.parsePNG(Buffer.from(r.json.images[0], 'base64'));
        if (t.check(p.width === 128 && p.height === 128, `txt2img hires x2 of 64x64: ${p.width}x${p.height}`))
            t.log('ok: txt2img hires fix: 128x128');
    }
    /* the loaded model by name */
    r = await t.post(u, '/sdapi/v1/txt2img', { ...BASE, steps: 2, seed: 3,
                                               override_settings: { sd_model_checkpoint: 'shapes.safetensors', CLIP_stop_at_last_layers: 1 } });
    t.check(r.status === 200, `txt2img override_settings sd_model_checkpoint shapes.safetensors: ${t.desc(r)}`);
    /* an unknown sampler: 400 */
    r = await t.post(u, '/sdapi/v1/txt2img', { ...BASE, steps: 2, sampler_name: 'no such sampler' });
    if (t.check(r.status === 400 && t.isSdError(r), `txt2img unknown sampler: ${t.desc(r)}, expected 400 {error, detail}`))
        t.log(`ok: unknown sampler: 400 ${r.json.detail}`);
    r = await t.post(u, '/sdapi/v1/txt2img', { ...BASE, steps: 2, sampler_name: 'euler_a' });
    t.check(r.status === 200, `txt2img sampler alias euler_a: ${t.desc(r)}`);

    /* --- img2img from txt2img's first image */
    if (t2i && t2i.images.length) {
        r = await t.post(u, '/sdapi/v1/img2img', { ...BASE, prompt: 'a large yellow circle in the center on a blue background',
                                                   seed: 11, init_images: ['data:image/png;base64,' + t2i.images[0]],
                                                   denoising_strength: 0.5 });
        if (t.check(r.status === 200 && r.json && Array.isArray(r.json.images) && r.json.images.length === 1, `img2img: ${t.desc(r)}`)) {
            const img = t.decodePNG(Buffer.from(r.json.images[0], 'base64'));
            const info = parseInfo(r, 'img2img');
            t.check(img.width === 64 && img.height === 64, `img2img: ${img.width}x${img.height}`);
            t.check(info && img.text.parameters === info.infotexts[0], `img2img: tEXt parameters != infotexts[0]`);
            t.check(/Denoising strength: 0\.5/.test(img.text.parameters || ''), `img2img: infotext without "Denoising strength: 0.5": ${JSON.stringify(img.text.parameters)}`);
            const j = t.judgeShapes(img);
            t.check(j.corners === 'blue', `img2img: border ${j.corners} ${JSON.stringify(j.cornersRGB)}, expected blue kept`);
            t.log(`ok: img2img strength 0.5: centre ${j.centre}, border ${j.corners}`);
        }
        /* with a mask: white (repaint) where the background was, black on the circle */
        const src = t.decodePNG(Buffer.from(t2i.images[0], 'base64'));
        const mask = new Uint8Array(64 * 64);
        for (let p = 0; p < mask.length; p++) {
            const px = [0, 1, 2].map(c => src.data[p * src.channels + c]);
            const d = c => (px[0] - c[0]) ** 2 + (px[1] - c[1]) ** 2 + (px[2] - c[2]) ** 2;
            mask[p] = d(t.PALETTE.blue) < d(t.PALETTE.red) ? 255 : 0;
        }
        r = await t.post(u, '/sdapi/v1/img2img', { ...BASE, prompt: 'a large red circle in the center on a yellow background',
                                                   seed: 1, init_images: [t2i.images[0]], mask: t.encodePNG(64, 64, 1, mask).toString('base64'),
                                                   denoising_strength: 1, mask_blur: 4 });
        if (t.check(r.status === 200 && r.json && Array.isArray(r.json.images) && r.json.images.length === 1, `img2img with a mask: ${t.desc(r)}`)) {
            const img = t.decodePNG(Buffer.from(r.json.images[0], 'base64'));
            t.check(img.width === 64 && img.height === 64, `img2img with a mask: ${img.width}x${img.height}`);
            const j = t.judgeShapes(img);
            if (t.check(j.centre === 'red' && j.corners === 'yellow',
                        `img2img with a mask: centre ${j.centre} ${JSON.stringify(j.centreRGB)}, border ${j.corners} ` +
                        `${JSON.stringify(j.cornersRGB)}; expected the red centre kept, the background yellow`))
                t.log('ok: img2img with a mask: the circle kept, the background repainted yellow');
        }
    } else {
        t.fail('img2img not tried: no txt2img image');
    }

    /* --- progress: a longer job polled every 100 ms */
    const STEPS = 100;
    const id = 'vkd-progress-' + process.pid;
    const polls = [];
    let jobDone = false, jobMs = 0;
    const t0 = Date.now();
    const job = t.post(u, '/sdapi/v1/txt2img', { ...BASE, steps: STEPS, seed: 2, force_task_id: id }, { timeoutMs: 600000 })
        .then(x => { jobDone = true; jobMs = Date.now() - t0; return x; },
              e => { jobDone = true; throw e; });
    while (!jobDone && Date.now() - t0 < 600000) {
        const p = await t.get(u, `/sdapi/v1/progress?id_task=${id}`).catch(e => ({ status: 0, text: e.message }));
        if (!jobDone && p.status === 200 && p.json)
            polls.push({ ms: Date.now() - t0, ...p.json });
        await t.sleep(100);
    }
    r = await job;
    if (t.check(r.status === 200 && r.json && r.json.images && r.json.images.length === 1, `progress job (steps ${STEPS}): ${t.desc(r)}`)) {
        const vals = polls.map(p => p.progress);
        const running = polls.filter(p => p.progress > 0 && p.progress < 1);
        t.log(`progress: ${polls.length} polls over ${jobMs} ms; values ${vals.map(v => +v.toFixed(2)).join(' ')}`);
        t.check(running.length >= 2, `progress: fewer than 2 polls with 0 < progress < 1 during a ${jobMs} ms job`);
        let mono = true;
        for (let i = 1; i < vals.length; i++)
            mono = mono && vals[i] >= vals[i - 1];
        t.check(mono, `progress: values fell: ${vals.join(' ')}`);
        t.check(running.length < 2 || running[running.length - 1].progress > running[0].progress,
                'progress: did not rise while the job ran');
        const steps = running.map(p => p.state && p.state.sampling_step);
        t.check(running.every(p => p.state && p.state.sampling_steps > 0 && p.state.job === id),
                `progress: state.sampling_steps / state.job (${id}): ${JSON.stringify(running[0] && running[0].state)}`);
        t.check(running.every(p => p.current_task === id), `progress: current_task ${JSON.stringify(running.map(p => p.current_task))}`);
        t.check(steps.length < 2 || steps[steps.length - 1] > steps[0], `progress: sampling_step did not rise: ${steps.join(' ')}`);
        t.check(running.every(p => typeof p.eta_relative === 'number'), 'progress: eta_relative not a number');
        const prev = polls.filter(p => typeof p.current_image === 'string' && p.current_image.length);
        if (t.check(prev.length > 0, 'progress: no current_image preview while the job ran')) {
            try {
                const pi = t.decodePNG(Buffer.from(prev[prev.length - 1].current_image, 'base64'));
                t.log(`ok: progress: ${running.length} polls while running, ${prev.length} with a preview ` +
                      `(${pi.width}x${pi.height} PNG)`);
            } catch (e) {
                t.fail(`progress: current_image is not a PNG: ${e.message}`);
            }
        }
    }
    r = await t.get(u, `/sdapi/v1/progress?id_task=${id}`);
    t.check(r.status === 200 && r.json && r.json.progress === 1, `progress of a finished job: ${t.desc(r)}, expected progress 1`);
    r = await t.get(u, '/sdapi/v1/progress?id_task=no-such-task');
    t.check(r.status === 200 && r.json && r.json.progress === 0 && r.json.current_task === null,
            `progress of an unknown job: ${t.desc(r)}, expected progress 0, current_task null`);
    r = await t.get(u, '/sdapi/v1/progress');
    t.check(r.status === 200 && r.json && r.json.state && r.json.state.job_count === 0, `progress when idle again: ${t.desc(r)}`);

    /* --- interrupt: a job of 4 x 150 steps, interrupted once it runs */
    const perStep = jobMs / STEPS, N_ITER = 4, LONG = 150;
    const id2 = 'vkd-interrupt-' + process.pid;
    const t1 = Date.now();
    let done2 = false;
    const job2 = t.post(u, '/sdapi/v1/txt2img', { ...BASE, steps: LONG, seed: 4, n_iter: N_ITER, force_task_id: id2 },
                        { timeoutMs: 900000 }).finally(() => { done2 = true; });
    const started = await t.waitFor(async () => {
        const p = await t.get(u, `/sdapi/v1/progress?id_task=${id2}`).catch(() => null);
        return done2 || (p && p.json && p.json.progress > 0);
    }, 300000, 100);
    t.must(started && !done2, 'interrupt: the long job never showed progress > 0 (or ended first)');
    const ti = Date.now();
    r = await t.post(u, '/sdapi/v1/interrupt', '');
    t.check(r.status === 200 && r.json && Object.keys(r.json).length === 0, `POST interrupt: ${t.desc(r)}, expected 200 {}`);
    r = await job2;
    const after = Date.now() - ti, full = perStep * LONG * N_ITER;
    t.log(`interrupt: the job answered ${after} ms after the interrupt (${Date.now() - t1} ms in all; ` +
          `uninterrupted it would take about ${Math.round(full)} ms)`);
    if (t.check(r.status === 200 && r.json && Array.isArray(r.json.images), `interrupted job: ${t.desc(r)}, expected 200`)) {
        const info = parseInfo(r, 'interrupted job');
        t.check(r.json.images.length < N_ITER, `interrupted job: ${r.json.images.length} images of ${N_ITER}`);
        t.check(info && info.interrupted === true, `interrupted job: info.interrupted ${info && info.interrupted}`);
        t.check(after < Math.max(10000, 0.25 * full), `interrupted job: answered ${after} ms after the interrupt`);
        r.json.images.forEach((b64, i) => {
            try {
                const p = t.parsePNG(Buffer.from(b64, 'base64'));
                t.check(p.width === 64 && p.height === 64, `interrupted job image ${i}: ${p.width}x${p.height}`);
            } catch (e) {
                t.fail(`interrupted job image ${i}: ${e.message}`);
            }
        });
        t.log(`ok: interrupt: ${r.json.images.length} of ${N_ITER} images, interrupted ${info && info.interrupted}`);
    }
    r = await t.get(u, `/sdapi/v1/progress?id_task=${id2}`);
    t.check(r.status === 200 && r.json && r.json.state && (r.json.progress === 1 || r.json.state.interrupted === true),
            `progress of the interrupted job: ${t.desc(r)}`);
    /* the next job is not interrupted */
    r = await t.post(u, '/sdapi/v1/txt2img', { ...BASE, steps: 4, seed: 9 });
    if (t.check(r.status === 200 && r.json && r.json.images && r.json.images.length === 1, `txt2img after an interrupt: ${t.desc(r)}`)) {
        const info = parseInfo(r, 'txt2img after an interrupt');
        t.check(info && info.interrupted === false, `txt2img after an interrupt: info.interrupted ${info && info.interrupted}`);
    }

    /* --- unknown endpoints under /sdapi */
    r = await t.get(u, '/sdapi/v1/no-such-endpoint');
    t.check(r.status === 404 && t.isSdError(r), `GET /sdapi/v1/no-such-endpoint: ${t.desc(r)}, expected 404 {error, detail}`);
    r = await t.get(u, '/sdapi/v1/txt2img');
    t.check(r.status === 405 && t.isSdError(r), `GET /sdapi/v1/txt2img: ${t.desc(r)}, expected 405 {error, detail}`);

    await s.stopClean('a1111 server');
    fs.rmSync(tmp, { recursive: true, force: true });
});
