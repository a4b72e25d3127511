'use strict';
/* vkdiff serve under bad requests and bad clients (issue 23). Each case gets its error status (or the
 * connection cut), then a normal small txt2img must still succeed (the server keeps serving):
 * malformed JSON, wrong field types, a 50 MB body, an unknown sampler, a 1 MB prompt, limits (steps,
 * size, images), path tricks in model names, 10000-deep JSON, bad init images, a client that disconnects
 * mid-job (the job is cancelled), slow clients (cut within --read-timeout while others are served), a
 * full queue (429 + Retry-After), unknown paths (404), wrong methods (405). At the end the server exits 0
 * on SIGTERM without a sanitizer report. The server runs with --read-timeout 3 --queue 1.
 *   node tests/serve/faults_test.js VKDIFF SOURCE_DIR */
const net = require('net');
const t = require('./lib');

const READ_TIMEOUT = 3;
const SMALL = { prompt: 'a small green square in the top left on a white background', width: 64, height: 64,
                steps: 2, cfg_scale: 1, seed: 1 };

/* raw(port, fn(sock), timeoutMs): a raw TCP exchange; fn writes (it may be async and keep writing until the
 * socket closes) -> {data (string), status (number|null), closed (the server ended or reset it), error,
 *                    closeMs (ms from connect to close|null)} */
function raw(port, fn, timeoutMs = 30000) {
    return new Promise(resolve => {
        const sock = net.connect(port, '127.0.0.1');
        let data = '', closed = false, error = null, closeMs = null, t0 = 0;
        const timer = setTimeout(() => { sock.destroy(); finish(); }, timeoutMs);
        let done = false;
        function finish() {
            if (done)
                return;
            done = true;
            clearTimeout(timer);
            const m = /^HTTP\/1\.[01] (\d{3})/.exec(data);
            resolve({ data, status: m ? Number(m[1]) : null, closed, error, closeMs });
        }
        sock.on('connect', () => {
            t0 = Date.now();
            Promise.resolve(fn(sock, () => closed)).catch(e => { error = error || e; });
        });
        sock.on('data', d => { if (data.length < 65536) data += d.toString('latin1'); });
        sock.on('error', e => { error = e; });
        sock.on('end', () => { closed = true; closeMs = Date.now() - t0; sock.end(); });
        sock.on('close', () => {
            if (!closed)
                closed = true, closeMs = Date.now() - t0;
            finish();
        });
    });
}

/* the command refuses (exit 2, a message, never listening) */
async function refused(args, what) {
    const { spawn } = require('child_process');
    const p = spawn(t.VKDIFF, ['serve', '--port', '0', ...args], { cwd: t.SRC, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', d => { err += d; });
    const killer = setTimeout(() => p.kill('SIGKILL'), 60000);
    const code = await new Promise(r => p.on('exit', c => r(c)));
    clearTimeout(killer);
    if (t.check(code === 2 && !/listening on/.test(err) && err.trim().length > 0,
                `${what}: exit ${code}, expected 2 with a message; stderr: ${t.tail(err, 400)}`))
        t.log(`ok: ${what}: exit 2 (${err.trim().split('\n')[0]})`);
}

t.main('faults', async () => {
    await refused(['--listen', '0.0.0.0'], '--listen 0.0.0.0 without --api-key');
    await refused(['--queue', 'x'], '--queue x');
    await refused(['--no-such-option'], 'an unknown option');
    const s = await t.startServer(['--read-timeout', String(READ_TIMEOUT), '--queue', '1']);
    t.log(`server at ${s.url}`);
    const u = s.url;
    await t.stillServes(u, 'the start');

    /* expect(what, r, statuses, shape): r's status is one of statuses and its body has the error shape */
    const expect = (what, r, statuses, shape = t.isSdError) => {
        const ok = statuses.includes(r.status) && shape(r);
        if (t.check(ok, `${what}: ${t.desc(r)}, expected ${statuses.join(' or ')} with the error shape`))
            t.log(`ok: ${what}: ${r.status} ${r.json && JSON.stringify(r.json.detail || r.json.error && r.json.error.message)}`);
        return ok;
    };
    const txt2img = (body, opts) => t.post(u, '/sdapi/v1/txt2img', body, opts);
    const jsonHdr = { headers: { 'Content-Type': 'application/json' } };

    /* --- malformed JSON */
    expect('malformed JSON (sdapi)', await txt2img('{"prompt": "a", "steps": ', jsonHdr), [400]);
    expect('malformed JSON (v1)', await t.post(u, '/v1/images/generations', '{"prompt": ', jsonHdr), [400], t.isOpenAIError);
    expect('a JSON array for the body', await txt2img('[1,2]', jsonHdr), [400]);
    expect('an empty body', await txt2img('', jsonHdr), [400]);
    {   /* not in the contract: any answer but a 5xx */
        const r = await txt2img(Buffer.from('{"prompt":"\xff\xfe","width":64,"height":64,"steps":2,"cfg_scale":1}', 'latin1'), jsonHdr);
        t.check(r.status === 200 || r.status === 400, `invalid UTF-8 in the prompt: ${t.desc(r)}, expected 400 or 200`);
    }
    await t.stillServes(u, 'malformed JSON');

    /* --- wrong types */
    expect('"steps":"ten"', await txt2img({ ...SMALL, steps: 'ten' }), [400]);
    expect('"width":"64"', await txt2img({ ...SMALL, width: '64' }), [400]);
    expect('"prompt":42', await txt2img({ ...SMALL, prompt: 42 }), [400]);
    {   /* a seed out of range: rejected or taken somehow, never a 5xx */
        const r = await txt2img({ ...SMALL, seed: 1.5e300 });
        t.check(r.status === 200 || r.status === 400, `"seed":1.5e300: ${t.desc(r)}, expected 400 or 200`);
    }
    expect('"n_iter":[2]', await txt2img({ ...SMALL, n_iter: [2] }), [400]);
    expect('v1 "n":"2"', await t.post(u, '/v1/images/generations', { prompt: 'x', size: '64x64', n: '2' }), [400], t.isOpenAIError);
    await t.stillServes(u, 'wrong types');

    /* --- values over the limits (defaults: --max-steps 150, --max-side 2048, --max-images 16) */
    expect('steps 151', await txt2img({ ...SMALL, steps: 151 }), [400]);
    expect('steps -1', await txt2img({ ...SMALL, steps: -1 }), [400]);
    expect('width 4096', await txt2img({ ...SMALL, width: 4096 }), [400]);
    expect('height 0', await txt2img({ ...SMALL, height: 0 }), [400]);
    expect('batch_size 4 x n_iter 5', await txt2img({ ...SMALL, batch_size: 4, n_iter: 5 }), [400]);
    expect('v1 n 17', await t.post(u, '/v1/images/generations', { prompt: 'x', size: '64x64', n: 17 }), [400], t.isOpenAIError);
    expect('v1 size 99999x64', await t.post(u, '/v1/images/generations', { prompt: 'x', size: '99999x64' }), [400], t.isOpenAIError);
    await t.stillServes(u, 'limits');

    /* --- a 50 MB body (--max-body-mb 32): 413 or the connection closed; one 1 MB chunk written 50 times */
    {
        const MB = 1 << 20, chunk = Buffer.alloc(MB, 0x20);
        const r = await raw(s.port, async (sock, isClosed) => {
            sock.write('POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
                       `Content-Length: ${50 * MB}\r\nConnection: close\r\n\r\n`);
            for (let i = 0; i < 50 && !isClosed() && !sock.destroyed; i++)
                if (!sock.write(chunk))
                    await new Promise(res => { sock.once('drain', res); sock.once('close', res); });
        }, 60000);
        if (t.check(r.status === 413 || (r.status === null && r.closed),
                    `a 50 MB body: status ${r.status}, closed ${r.closed}, error ${r.error && r.error.code}: ${r.data.slice(0, 300)}`))
            t.log(`ok: a 50 MB body: ${r.status ? 'HTTP ' + r.status : 'connection closed'} (${r.error ? r.error.code : 'no error'})`);
        if (r.status === 413)
            t.check(/\{"error":"[^"]*","detail":/.test(r.data), `a 50 MB body: 413 body not {error, detail}: ${r.data.slice(0, 300)}`);
        /* the same announced, nothing sent: the header alone must be refused without reading */
        const r2 = await raw(s.port, sock => {
            sock.write('POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
                       `Content-Length: ${50 * MB}\r\n\r\n`);
        }, 20000);
        t.check(r2.status === 413 || r2.closed, `Content-Length 50 MB without the body: status ${r2.status}, closed ${r2.closed}`);
        if (r2.status !== 413)
            t.log(`note: Content-Length 50 MB without the body: no 413 before reading (closed after ${r2.closeMs} ms)`);
    }
    await t.stillServes(u, 'a 50 MB body');

    /* --- an unknown sampler, a 1 MB prompt (--max-prompt 65536) */
    expect('an unknown sampler', await txt2img({ ...SMALL, sampler_name: 'Euler z' }), [400]);
    expect('an unknown scheduler', await txt2img({ ...SMALL, scheduler: 'no such schedule' }), [400]);
    expect('a 1 MB prompt', await txt2img({ ...SMALL, prompt: 'red '.repeat(1 << 18) }), [400]);
    expect('a 1 MB prompt (v1)', await t.post(u, '/v1/images/generations', { prompt: 'red '.repeat(1 << 18), size: '64x64' }),
           [400], t.isOpenAIError);
    await t.stillServes(u, 'an unknown sampler and a 1 MB prompt');

    /* --- path tricks in model names: 400 or 404, never 200 */
    for (const name of ['../../etc/passwd', '/etc/passwd', '..\\x', 'sub/../../x', '../weights/shapes.safetensors',
                        'shapes.safetensors/../../../etc/passwd']) {
        const r = await txt2img({ ...SMALL, override_settings: { sd_model_checkpoint: name } });
        expect(`sd_model_checkpoint ${JSON.stringify(name)}`, r, [400, 404]);
        const r2 = await t.post(u, '/v1/images/generations', { prompt: 'x', size: '64x64', steps: 2, model: name });
        expect(`v1 model ${JSON.stringify(name)}`, r2, [400, 404], t.isOpenAIError);
    }
    /* not in the contract, only reported: an empty name, a name with a NUL (a C string stops there) */
    for (const name of ['', 'shapes.safetensors\u0000/../../etc/passwd']) {
        const r = await txt2img({ ...SMALL, override_settings: { sd_model_checkpoint: name } });
        t.log(`note: sd_model_checkpoint ${JSON.stringify(name)}: ${t.desc(r).slice(0, 200)}`);
        t.check(r.status < 500, `sd_model_checkpoint ${JSON.stringify(name)}: ${t.desc(r)}`);
    }
    {
        const r = await t.post(u, '/sdapi/v1/options', { sd_model_checkpoint: '../../etc/passwd' });
        t.check(r.status === 400 || r.status === 404, `POST options sd_model_checkpoint ../../etc/passwd: ${t.desc(r)}, expected 400 or 404`);
        const o = await t.get(u, '/sdapi/v1/options');
        t.check(o.json && o.json.sd_model_checkpoint === 'shapes.safetensors', `options after a bad checkpoint: ${t.desc(o)}`);
        /* a LoRA tag with a path (not in the contract: only reported) */
        const l = await txt2img({ ...SMALL, prompt: 'a red circle <lora:../../../etc/passwd:1>' });
        t.log(`note: a prompt with <lora:../../../etc/passwd:1>: HTTP ${l.status} ${l.json && l.json.detail || ''}`);
        t.check(l.status < 500, `<lora:../../../etc/passwd:1>: ${t.desc(l)}`);
    }
    await t.stillServes(u, 'path tricks');

    /* --- deep JSON nesting */
    const deep = n => '['.repeat(n) + ']'.repeat(n);
    expect('[[[...]]] 10000 deep', await txt2img(deep(10000), jsonHdr), [400]);
    expect('a prompt of [[[...]]] 10000 deep', await txt2img(`{"prompt":${deep(10000)}}`, jsonHdr), [400]);
    expect('{"a":{"a":...}} 10000 deep', await txt2img('{"a":'.repeat(10000) + '1' + '}'.repeat(10000), jsonHdr), [400]);
    expect('[[[...]]] 10000 deep (v1)', await t.post(u, '/v1/images/generations', deep(10000), jsonHdr), [400], t.isOpenAIError);
    await t.stillServes(u, 'deep JSON');

    /* --- bad init images / masks */
    expect('img2img without init_images', await t.post(u, '/sdapi/v1/img2img', { ...SMALL }), [400]);
    expect('img2img init_images not base64', await t.post(u, '/sdapi/v1/img2img', { ...SMALL, init_images: ['%%%not base64%%%'] }), [400]);
    expect('img2img init_images not an image', await t.post(u, '/sdapi/v1/img2img',
                                                            { ...SMALL, init_images: [Buffer.from('hello world, no picture').toString('base64')] }), [400]);
    {
        const png = t.encodePNG(64, 64, 3, new Uint8Array(64 * 64 * 3).fill(128));
        expect('img2img a truncated PNG', await t.post(u, '/sdapi/v1/img2img',
                                                       { ...SMALL, init_images: [png.subarray(0, 60).toString('base64')] }), [400]);
        expect('img2img a mask that is not an image', await t.post(u, '/sdapi/v1/img2img',
                                                                   { ...SMALL, init_images: [png.toString('base64')], mask: 'AAAA' }), [400]);
    }
    await t.stillServes(u, 'bad images');

    /* --- unknown paths, wrong methods */
    expect('GET /nope', await t.get(u, '/nope'), [404]);
    expect('GET /v1/nope', await t.get(u, '/v1/nope'), [404], t.isOpenAIError);
    expect('GET /sdapi/v1/nope', await t.get(u, '/sdapi/v1/nope'), [404]);
    expect('GET /../../etc/passwd', await t.get(u, '/%2e%2e/%2e%2e/etc/passwd'), [400, 404]);
    expect('DELETE /sdapi/v1/txt2img', await t.request(u, 'DELETE', '/sdapi/v1/txt2img'), [405]);
    expect('GET /sdapi/v1/txt2img', await t.get(u, '/sdapi/v1/txt2img'), [405]);
    expect('GET /v1/images/generations', await t.get(u, '/v1/images/generations'), [405], t.isOpenAIError);
    expect('POST /sdapi/v1/samplers', await t.post(u, '/sdapi/v1/samplers', {}), [405]);
    expect('PUT /health', await t.request(u, 'PUT', '/health', { body: '' }), [405]);
    expect('POST /', await t.post(u, '/', '{}', jsonHdr), [405]);
    expect('DELETE /v1/models', await t.request(u, 'DELETE', '/v1/models'), [405], t.isOpenAIError);
    {
        const r = await raw(s.port, sock => sock.write('HELLO WORLD\r\n\r\n'), 15000);
        t.check(r.status === 400 || (r.closed && r.status === null), `a garbage request line: status ${r.status}, closed ${r.closed}: ${r.data.slice(0, 200)}`);
        const r2 = await raw(s.port, sock => sock.write('GET /health HTTP/1.1\r\nHost: x\r\n' + 'X-Big: ' + 'a'.repeat(200000) + '\r\n\r\n'), 15000);
        t.check(r2.status !== 200 && (r2.status === null ? r2.closed : r2.status >= 400 && r2.status < 500),
                `a 200 kB header: status ${r2.status}, closed ${r2.closed}`);
        t.log(`ok: a garbage request line: ${r.status || 'closed'}; a 200 kB header: ${r2.status || 'closed'}`);
    }
    await t.stillServes(u, 'unknown paths and methods');

    /* --- a client that disconnects mid-job: the job is cancelled */
    {
        const id = 'vkd-disconnect-' + process.pid;
        let req = null;
        const p = t.post(u, '/sdapi/v1/txt2img', { ...SMALL, steps: 150, n_iter: 4, cfg_scale: 5, force_task_id: id },
                         { timeoutMs: 600000, onRequest: q => { req = q; } }).then(() => 'answered', e => e.code || e.message);
        const t0 = Date.now();
        const running = await t.waitFor(async () => {
            const r = await t.get(u, `/sdapi/v1/progress?id_task=${id}`).catch(() => null);
            return r && r.json && r.json.progress > 0;
        }, 120000, 100);
        t.must(running, 'disconnect: the long job never showed progress > 0');
        await t.sleep(Math.max(0, 1000 - (Date.now() - t0)));
        req.destroy();
        const td = Date.now();
        t.log(`disconnect: socket destroyed ${td - t0} ms after the request (${await p})`);
        const idle = await t.waitFor(async () => {
            const r = await t.get(u, '/sdapi/v1/progress').catch(() => null);
            return r && r.json && r.json.state && r.json.state.job_count === 0 && r.json.current_task === null && r;
        }, 10000, 200);
        if (t.check(idle, `disconnect: /sdapi/v1/progress still shows a job 10 s after the client went away: ` +
                          `${t.desc(await t.get(u, '/sdapi/v1/progress'))}`))
            t.log(`ok: disconnect: no running job ${Date.now() - td} ms after the client went away`);
        const r = await t.get(u, `/sdapi/v1/progress?id_task=${id}`);
        t.log(`disconnect: progress?id_task of the cancelled job: ${t.desc(r)}`);
    }
    await t.stillServes(u, 'a client that disconnected mid-job');

    /* --- slow clients (--read-timeout 3): cut within the timeout; others served meanwhile */
    {
        const header = 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: one-byte-a-second\r\n\r\n';
        const slowHeader = raw(s.port, async (sock, isClosed) => {
            for (let i = 0; i < header.length && !isClosed() && !sock.destroyed; i++) {
                sock.write(header[i]);
                await t.sleep(1000);
            }
        }, 60000);
        const slowBody = raw(s.port, async (sock, isClosed) => {
            sock.write('POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
                       'Content-Length: 100\r\n\r\n');
            for (let i = 0; i < 100 && !isClosed() && !sock.destroyed; i++) {
                sock.write(' ');
                await t.sleep(1000);
            }
        }, 60000);
        /* an idle connection that sends nothing at all */
        const silent = raw(s.port, () => {}, 60000);
        let served = 0, slowest = 0, failed = 0;
        const t0 = Date.now();
        while (Date.now() - t0 < (READ_TIMEOUT + 3) * 1000) {
            const a = Date.now();
            const r = await t.get(u, '/health', { timeoutMs: 10000 }).catch(e => ({ status: 0, text: e.message }));
            slowest = Math.max(slowest, Date.now() - a);
            if (r.status === 200)
                served++;
            else
                failed++;
            await t.sleep(250);
        }
        const small = await t.smallTxt2img(u).catch(e => ({ status: 0, text: e.message }));
        const [h, b, z] = await Promise.all([slowHeader, slowBody, silent]);
        const limit = (READ_TIMEOUT + 3) * 1000;
        for (const [what, r] of [['one header byte a second', h], ['one body byte a second', b], ['a silent connection', z]])
            if (t.check(r.closed && r.closeMs !== null && r.closeMs <= limit,
                        `${what}: ${r.closed ? `cut after ${r.closeMs} ms` : 'not cut'} (--read-timeout ${READ_TIMEOUT}; ` +
                        `limit ${limit} ms); answer ${JSON.stringify(r.data.slice(0, 100))}`))
                t.log(`ok: ${what}: cut after ${r.closeMs} ms${r.status ? ` with HTTP ${r.status}` : ''}`);
        t.check(failed === 0 && served > 0 && slowest < 3000,
                `slow clients: /health meanwhile: ${served} served, ${failed} failed, slowest ${slowest} ms`);
        t.check(small.status === 200, `slow clients: a small txt2img meanwhile: ${t.desc(small)}`);
        t.log(`ok: meanwhile /health answered ${served} times (slowest ${slowest} ms), a txt2img ${small.status}`);
    }
    await t.stillServes(u, 'slow clients');

    /* --- the queue full (--queue 1): 4 long jobs at once; at least one 429 with Retry-After, the others 200 */
    {
        const jobs = [0, 1, 2, 3].map(i => t.post(u, '/sdapi/v1/txt2img', { ...SMALL, steps: 40, cfg_scale: 5, seed: 10 + i },
                                                  { timeoutMs: 600000 }).catch(e => ({ status: 0, text: e.message, headers: {} })));
        const rs = await Promise.all(jobs);
        const n429 = rs.filter(r => r.status === 429), n200 = rs.filter(r => r.status === 200);
        t.log(`queue full: statuses ${rs.map(r => r.status).join(' ')}`);
        t.check(n429.length >= 1, 'queue full: no 429 of 4 jobs at once with --queue 1');
        t.check(n200.length >= 1, 'queue full: no 200 of 4 jobs at once with --queue 1');
        t.check(n429.length + n200.length === 4, `queue full: other statuses: ${rs.map(t.desc).join('; ')}`);
        for (const r of n429) {
            const ra = r.headers['retry-after'];
            t.check(ra !== undefined && /^\d+$/.test(ra), `429 without a Retry-After in seconds: ${JSON.stringify(ra)}`);
            t.check(t.isSdError(r), `429 body not {error, detail}: ${t.desc(r)}`);
        }
        for (const r of n200)
            t.check(r.json && r.json.images && r.json.images.length === 1, `queue full: a 200 without its image: ${t.desc(r)}`);
        /* the same on /v1: OpenAI's shape */
        const v1 = await Promise.all([0, 1, 2, 3].map(i => t.post(u, '/v1/images/generations',
            { prompt: SMALL.prompt, size: '64x64', steps: 40, seed: 20 + i }, { timeoutMs: 600000 })
            .catch(e => ({ status: 0, text: e.message, headers: {} }))));
        t.log(`queue full (v1): statuses ${v1.map(r => r.status).join(' ')}`);
        t.check(v1.every(r => r.status === 200 || r.status === 429), `queue full (v1): ${v1.map(t.desc).join('; ')}`);
        t.check(v1.some(r => r.status === 429), 'queue full (v1): no 429 of 4 jobs at once with --queue 1');
        for (const r of v1.filter(x => x.status === 429))
            t.check(t.isOpenAIError(r) && r.headers['retry-after'] !== undefined, `429 on /v1: ${t.desc(r)}, Retry-After ${r.headers['retry-after']}`);
    }
    await t.stillServes(u, 'a full queue');

    await s.stopClean('faults server');
});
